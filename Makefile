# Two entry points for a newcomer: `make demo` and `make test`. Both create (or reuse) a local
# virtual environment in .venv with everything the project needs; python3 and make suffice.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Test processes (pytest-xdist): one per core, at most four (each holds its own compiled
# programs). Most of the suite is compilation, which runs on one thread: a second process
# keeps a second core busy.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(max(1, min(4, n or 1)))")
# The shared data folder, always exported as an absolute path (tests and studies change
# directory); a value given on the command line or in the environment may be relative.
override HYBRIDLAND_DATA := $(abspath $(or $(HYBRIDLAND_DATA),../shared/data))
export HYBRIDLAND_DATA

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/hybridland demo --out out/demo

# Whole test files go to one process (--dist loadfile): a file's shared fixtures run once.
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
