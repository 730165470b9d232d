"""Shared test settings: hypothesis profiles sized for a 2-core CI machine."""

import os
import shutil
import tempfile

import jax
import pytest
from hypothesis import HealthCheck, settings

from hybridland.io import mopex_path
from hybridland.train import release_compiled, use_compilation_cache

# Many tests compile the same programs (the same model in another test, the same evaluation
# after ``release_compiled``): a compilation cache for the session reads them back instead of
# compiling them again. A fresh folder per session (removed at its end) unless the caller
# chose one with JAX_COMPILATION_CACHE_DIR. The folder is put in the environment, so the test
# workers (pytest-xdist starts them after this file is read) and the commands the tests run
# (hybridland train, the README's commands) share it: a program compiled by one is read back
# by the others.
_OWN_CACHE = None if os.environ.get("JAX_COMPILATION_CACHE_DIR") else tempfile.mkdtemp(
    prefix="hybridland-test-jax-cache-")
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
use_compilation_cache(os.environ["JAX_COMPILATION_CACHE_DIR"])
# every program, whatever its compile time (JAX skips those under a second in a folder chosen
# by the environment)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def mopex_file():
    """Path of the shared MOPEX file; a test needing it fails (never skips) when it is absent."""
    try:
        return mopex_path()
    except FileNotFoundError as err:
        pytest.fail(f"The shared MOPEX data is needed for this test: {err}")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """After each test module, the compiled programs are freed once they hold a quarter of the
    kernel's limit on memory mappings: the whole suite in one process otherwise exceeds it and
    dies inside XLA's compiler. Below that they are kept for the next modules, which build
    many of the same programs (the same models, the same evaluations)."""
    yield
    release_compiled(above=0.25)
