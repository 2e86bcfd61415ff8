"""A faithful re-creation of the original Python module's checkpoint design, for the bench:
JSON-serialize the state, SHA-256 it, gzip it (level 6), write one file per checkpoint and
rewrite a JSON index of every checkpoint's metadata on each save; a load reads the file,
gunzips, verifies the SHA-256 against the index and parses the JSON. Like the original it
does not fsync (Bulwark's save fsyncs the file and the folder; that cost is in its figures)."""

import gzip
import hashlib
import json
import time
import uuid
from pathlib import Path


class OriginalCheckpointManager:
    def __init__(self, checkpoint_dir, compression=True):
        self.dir = Path(checkpoint_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self.index_path = self.dir / "index.json"
        self.index = json.loads(self.index_path.read_text()) if self.index_path.exists() else {}

    def save_checkpoint(self, state, agent_id, workflow_id):
        checkpoint_id = f"{agent_id}_{workflow_id}_{uuid.uuid4().hex}"
        data = json.dumps(state).encode()
        checksum = hashlib.sha256(data).hexdigest()
        stored = gzip.compress(data, compresslevel=6) if self.compression else data
        (self.dir / f"{checkpoint_id}.ckpt").write_bytes(stored)
        self.index[checkpoint_id] = {
            "agent_id": agent_id,
            "workflow_id": workflow_id,
            "created_at": time.time(),
            "checksum": checksum,
            "compressed": self.compression,
            "size": len(data),
        }
        self.index_path.write_text(json.dumps(self.index))
        return checkpoint_id

    def load_checkpoint(self, checkpoint_id):
        meta = self.index[checkpoint_id]
        stored = (self.dir / f"{checkpoint_id}.ckpt").read_bytes()
        data = gzip.decompress(stored) if meta["compressed"] else stored
        if hashlib.sha256(data).hexdigest() != meta["checksum"]:
            raise ValueError(f"checkpoint {checkpoint_id} is corrupt")
        return json.loads(data)
