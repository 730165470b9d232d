"""Shared test settings: hypothesis profiles sized for a 2-core CI machine."""

import os

import pytest
from hypothesis import HealthCheck, settings

from hybridland.io import mopex_path
from hybridland.train import release_compiled

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
    """Each test module's compiled programs are freed after it: the whole suite in one process
    otherwise exceeds the kernel's limit on memory mappings and dies inside XLA's compiler."""
    yield
    release_compiled()
