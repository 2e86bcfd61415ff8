"""State checkpointing: ``StateCheckpointManager(checkpoint_dir=..., compression=True)`` and
``AutoCheckpointer``.

A state is any JSON value (dicts with str keys, lists, str, int, float, bool, None). Each save
is hashed (SHA-256), compressed (zstd by default, gzip on request) and fsynced before it
returns; each load verifies it. The GIL is released for all of that, so other threads run.
"""

from __future__ import annotations

import threading
from typing import Optional

from . import _native
from ._native import (
    AutoCheckpointer,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointNotFoundError,
)

__all__ = [
    "AutoCheckpointer",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "StateCheckpointManager",
    "default_manager",
    "set_default_manager",
]

_default: Optional["StateCheckpointManager"] = None
_lock = threading.Lock()


class StateCheckpointManager(_native.StateCheckpointManager):
    """Checkpoints in ``checkpoint_dir``. The most recently created manager is the one the
    FastAPI router serves, unless ``set_default_manager`` names another."""

    def __init__(self, checkpoint_dir: object = "./checkpoints", compression: object = True) -> None:
        global _default
        with _lock:
            _default = self

    # The original's shorter names.
    def list(self, agent_id: Optional[str] = None, workflow_id: Optional[str] = None, limit: Optional[int] = None) -> list:  # noqa: A003
        return self.list_checkpoints(agent_id, workflow_id, limit)

    def cleanup(self, keep_last: int = 10, max_age: Optional[float] = None, dry_run: bool = False) -> dict:
        return self.cleanup_old_checkpoints(keep_last, max_age, dry_run)


def default_manager() -> Optional[StateCheckpointManager]:
    """The manager the observability routes serve (None before any is created)."""
    return _default


def set_default_manager(manager: StateCheckpointManager) -> None:
    """Makes ``manager`` the one the observability routes serve."""
    global _default
    with _lock:
        _default = manager
