"""Shared fixtures. The suite runs against the installed wheel (scripts/python.sh builds it
with maturin and installs it into the project's venv), never against a source tree."""

import itertools
import os
import threading
import time

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


@pytest.fixture
def max_gap_while():
    """Runs ``work`` in a thread and returns the longest stretch during which this thread
    could not run: about the switch interval when ``work`` releases the GIL, the length of
    the work when it holds it."""

    def run(work):
        worker = threading.Thread(target=work)
        gaps = []
        last = time.perf_counter()
        worker.start()
        while worker.is_alive():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        worker.join()
        return max(gaps), len(gaps)

    return run
