"""StateCheckpointManager and AutoCheckpointer: round trips, errors, corruption, listing,
deletion, cleanup, and the GIL released around disk and compression work."""

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bulwark import (
    AutoCheckpointer,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointNotFoundError,
    StateCheckpointManager,
)

STATES = [
    {"messages": [{"role": "user", "content": "héllo ✓ 🦀"}], "step": 3, "done": False, "score": 0.1},
    [1, -2, 2**63 - 1, -(2**63), 2**64 - 1, 1.5e300, -0.0, 1e-310, None, True, "", [], {}],
    "just a string",
    42,
    None,
    {"deep": [[[[{"x": [1]}]]]]},
]


@pytest.mark.parametrize("compression", [True, False, "gzip", "zstd", "none"])
@pytest.mark.parametrize("state", STATES)
def test_round_trip_returns_what_went_in(checkpoint_dir, state, compression):
    manager = StateCheckpointManager(checkpoint_dir=str(checkpoint_dir), compression=compression)
    cid = manager.save_checkpoint(state=state, agent_id="agent-1", workflow_id="wf-1")
    assert manager.load_checkpoint(cid) == state


def test_tuples_come_back_as_lists(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    cid = manager.save_checkpoint(state={"t": (1, (2, 3))}, agent_id="a", workflow_id="w")
    assert manager.load_checkpoint(cid) == {"t": [1, [2, 3]]}


@pytest.mark.parametrize(
    "state, error, message",
    [
        ({1: "int key"}, TypeError, r"state: a key of type int"),
        ({"when": object()}, TypeError, r'state\["when"\]: a value of type object'),
        ([1, {2, 3}], TypeError, r"state\[1\]: a value of type set"),
        ({"x": math.nan}, ValueError, r'state\["x"\]: NaN is not a JSON number'),
        ([math.inf], ValueError, r"inf is not a JSON number"),
        ([2**64], ValueError, r"does not fit in 64 bits"),
    ],
)
def test_a_state_that_is_not_json_is_refused_and_nothing_is_written(checkpoint_dir, state, error, message):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    with pytest.raises(error, match=message):
        manager.save_checkpoint(state=state, agent_id="a", workflow_id="w")
    assert manager.list_checkpoints() == []


def test_a_state_that_contains_itself_is_an_error_not_a_crash(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        manager.save_checkpoint(state=loop, agent_id="a", workflow_id="w")
    deep = []
    for _ in range(99):
        deep = [deep]
    cid = manager.save_checkpoint(state=deep, agent_id="a", workflow_id="w")
    assert manager.load_checkpoint(cid) == deep


def test_bad_arguments_are_value_errors(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    with pytest.raises(ValueError, match="agent_id"):
        manager.save_checkpoint(state={}, agent_id="", workflow_id="w")
    with pytest.raises(ValueError):
        manager.load_checkpoint("not-an-id")
    with pytest.raises(ValueError, match="compression must be"):
        StateCheckpointManager(checkpoint_dir=checkpoint_dir, compression="lz4")
    with pytest.raises(CheckpointNotFoundError):
        manager.load_checkpoint("01936b2e-8f4b-7cc0-8000-000000000000")


def _corrupt_newest(checkpoint_dir):
    files = sorted(p for p in os.listdir(checkpoint_dir) if p.endswith(".ckpt"))
    path = os.path.join(checkpoint_dir, files[-1])
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_corruption_is_an_error_naming_the_checkpoint_and_latest_skips_it(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    good = manager.save_checkpoint(state={"v": 1}, agent_id="a", workflow_id="w")
    bad = manager.save_checkpoint(state={"v": 2}, agent_id="a", workflow_id="w")
    _corrupt_newest(checkpoint_dir)
    with pytest.raises(CheckpointCorruptedError, match=bad) as caught:
        manager.load_checkpoint(bad)
    assert isinstance(caught.value, CheckpointError)
    assert manager.get_latest_checkpoint(agent_id="a", workflow_id="w") == good
    assert manager.load_checkpoint(good) == {"v": 1}


def test_latest_list_delete_and_cleanup(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    assert manager.get_latest_checkpoint(agent_id="a", workflow_id="w") is None
    ids = [manager.save_checkpoint(state={"i": i}, agent_id="a", workflow_id="w") for i in range(5)]
    other = manager.save_checkpoint(state={}, agent_id="b", workflow_id="w", metadata={"stage": "draft"})
    assert manager.get_latest_checkpoint(agent_id="a", workflow_id="w") == ids[-1]
    listed = manager.list_checkpoints(agent_id="a", workflow_id="w")
    assert [m["id"] for m in listed] == ids[::-1]
    assert [m["sequence"] for m in listed] == [5, 4, 3, 2, 1]
    assert listed[0]["parent_id"] == ids[-2]
    assert len(manager.list_checkpoints(limit=2)) == 2
    assert manager.get_checkpoint_metadata(other)["labels"] == {"stage": "draft"}
    assert manager.delete_checkpoint(ids[0]) is True
    assert manager.delete_checkpoint(ids[0]) is False
    report = manager.cleanup_old_checkpoints(keep_last=2, dry_run=True)
    assert report["dry_run"] is True and len(report["removed"]) == 2
    assert len(manager.list_checkpoints(agent_id="a")) == 4  # dry run deletes nothing
    report = manager.cleanup_old_checkpoints(keep_last=2)
    assert [m["id"] for m in manager.list_checkpoints(agent_id="a")] == ids[:2:-1]
    assert sorted(r["metadata"]["id"] for r in report["removed"]) == ids[1:3]
    assert manager.list_checkpoints(agent_id="b")[0]["id"] == other


def test_checkpoints_survive_a_new_manager(checkpoint_dir):
    cid = StateCheckpointManager(checkpoint_dir=checkpoint_dir).save_checkpoint(
        state={"resume": "here"}, agent_id="a", workflow_id="w"
    )
    again = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    assert again.get_latest_checkpoint(agent_id="a", workflow_id="w") == cid
    assert again.load_checkpoint(cid) == {"resume": "here"}


def test_auto_checkpointer_saves_every_interval_and_chains_parents(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    auto = AutoCheckpointer(manager=manager, agent_id="a", workflow_id="w", checkpoint_interval=3)
    saved = [auto.maybe_checkpoint({"op": i}) for i in range(7)]
    assert [s is not None for s in saved] == [False, False, True, False, False, True, False]
    assert auto.operations_since_checkpoint == 1
    forced = auto.force_checkpoint({"op": "final"})
    assert auto.last_checkpoint == forced and auto.operations_since_checkpoint == 0
    meta = manager.get_checkpoint_metadata(forced)
    assert meta["parent_id"] == saved[5]
    assert manager.load_checkpoint(saved[2]) == {"op": 2}
    with pytest.raises(ValueError, match="checkpoint_interval"):
        AutoCheckpointer(manager=manager, agent_id="a", workflow_id="w", checkpoint_interval=0)


def test_saves_from_many_threads_all_land(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)

    def save(i):
        return manager.save_checkpoint(state={"i": i}, agent_id=f"agent-{i % 4}", workflow_id="w")

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(save, range(64)))
    assert len(set(ids)) == 64
    for agent in range(4):
        listed = manager.list_checkpoints(agent_id=f"agent-{agent}")
        assert sorted(m["sequence"] for m in listed) == list(range(1, 17))


def test_save_and_load_release_the_gil(checkpoint_dir, max_gap_while):
    # gzip makes the work outside the GIL (hashing, compressing, fsync; on load, reading,
    # inflating, verifying) long beside the part that needs it (walking the state).
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir, compression="gzip")
    state = {"blob": os.urandom(512 * 1024).hex()}
    saves, loads, ids = [], [], []

    def save():
        start = time.perf_counter()
        ids.append(manager.save_checkpoint(state=state, agent_id="a", workflow_id="w"))
        saves.append(time.perf_counter() - start)

    def load():
        start = time.perf_counter()
        assert manager.load_checkpoint(ids[0]) == state
        loads.append(time.perf_counter() - start)

    save_gap, _ = max_gap_while(save)
    load_gap, _ = max_gap_while(load)
    assert save_gap < 0.5 * saves[0], (save_gap, saves)
    assert load_gap < 0.5 * loads[0], (load_gap, loads)


def test_loaded_dicts_keep_their_key_order(checkpoint_dir):
    manager = StateCheckpointManager(checkpoint_dir=checkpoint_dir)
    state = {"zeta": 1, "alpha": {"y": 2, "b": 3, "m": [{"k2": 0, "k1": 1}]}, "mid": None}
    loaded = manager.load_checkpoint(manager.save_checkpoint(state=state, agent_id="a", workflow_id="w"))
    assert list(loaded) == ["zeta", "alpha", "mid"]
    assert list(loaded["alpha"]) == ["y", "b", "m"]
    assert list(loaded["alpha"]["m"][0]) == ["k2", "k1"]
