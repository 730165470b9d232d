# Two entry points for a newcomer: `make demo` and `make test`. Both create (or reuse) a local
# virtual environment in .venv with everything the project needs; python3 and make suffice.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
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

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
