"""Shared fixtures. The suite runs against the installed wheel (scripts/python.sh builds it
with maturin and installs it into the project's venv), never against a source tree."""

import itertools
import os

import pytest

_ids = itertools.count()


@pytest.fixture
def unique():
    """A name no other test uses in this process (registries are process-wide)."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{os.getpid()}-{next(_ids)}"

    return make


@pytest.fixture
def checkpoint_dir(tmp_path):
    return tmp_path / "checkpoints"
