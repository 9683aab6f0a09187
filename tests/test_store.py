"""The result store: keys, round trips, regrading, kill -9 durability and concurrent writers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tir_harness.engines.base import SamplingConfig
from tir_harness.records.store import (
    STORE_ENV,
    KeyParts,
    ResultStore,
    StoreError,
    default_store_dir,
    resolve_store_path,
    store_file,
    trajectory_key,
)

BASE_PARTS: dict[str, Any] = dict(
    model="google/gemma-3-270m@main",
    model_revision="abc123",
    prompt_format="gemma",
    prompt_type="tora-fewshot",
    prompt="Question: What is 1+1?\nSolution:",
    sampling={"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "stop": ["```output"]},
    seed=0,
    sample=0,
    max_tool_calls=4,
    max_turn_chars=1_000_000,
    executor={"timeout": 10.0, "memory_mb": 2048, "max_output_chars": 2000},
    loop_version="1",
)


def make_record(key: str, i: int = 0, **extra: Any) -> dict[str, Any]:
    record = {
        "schema_version": 1,
        "run_id": "run-a",
        "problem_id": f"gsm8k/test/{i}",
        "sample": 0,
        "model": "gemma-3-270m",
        "question": f"What is {i}+1?",
        "gold": str(i + 1),
        "prediction": str(i + 1),
        "correct": True,
        "grade_reason": "equal as numbers",
        "grader_version": "1",
        "prompt": f"Question: What is {i}+1?",
        "turns": [{"text": "```python\nprint(1)\n```", "observation": "1", "exec_status": "ok"}],
        "end_reason": "answer",
        "key": key,
    }
    record.update(extra)
    return record


def key_of(i: int, prefix: str = "") -> str:
    return hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ keys


def test_key_is_sha256_of_documented_canonical_json() -> None:
    # Written out by hand: a change to the canonical form would silently orphan every stored trajectory.
    expected_json = (
        '{"executor":{"max_output_chars":2000,"memory_mb":2048,"timeout":10},"key_version":1,'
        '"loop_version":"1","max_tool_calls":4,"max_turn_chars":1000000,"model":"google/gemma-3-270m@main",'
        '"model_revision":"abc123",'
        '"prompt":"Question: What is 1+1?\\nSolution:","prompt_format":"gemma","prompt_type":"tora-fewshot",'
        '"sample":0,"sampling":{"max_tokens":1024,"stop":["```output"],"temperature":0,"top_p":1},"seed":0}'
    )
    assert KeyParts(**BASE_PARTS).canonical_json() == expected_json
    assert trajectory_key(**BASE_PARTS) == hashlib.sha256(expected_json.encode()).hexdigest()


CHANGES: dict[str, Any] = {
    "model": "google/gemma-3-1b@main",
    "model_revision": None,
    "prompt_format": "plain",
    "prompt_type": "tora",
    "prompt": "Question: What is 1+1?\nSolution: ",
    "sampling": {**BASE_PARTS["sampling"], "temperature": 1.0},
    "seed": 1,
    "sample": 1,
    "max_tool_calls": 5,
    "max_turn_chars": 2000,
    "executor": {**BASE_PARTS["executor"], "timeout": 5.0},
    "loop_version": "2",
    "engine_args": {"quantization": "fp8"},  # absent from the canonical JSON above while empty
    "reference_quirks": True,  # absent while off, too
    "execution_mode": "reference",  # absent while "live"
}


def test_every_part_changes_the_key() -> None:
    assert set(CHANGES) == {f.name for f in dataclasses.fields(KeyParts)}
    base = trajectory_key(**BASE_PARTS)
    keys = {name: trajectory_key(**{**BASE_PARTS, name: value}) for name, value in CHANGES.items()}
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)


@pytest.mark.parametrize(
    "nested",
    [
        {"sampling": {**BASE_PARTS["sampling"], "stop": ["```output", "---"]}},
        {"sampling": {**BASE_PARTS["sampling"], "top_p": 0.95}},
        {"sampling": {**BASE_PARTS["sampling"], "seed": 3}},
        {"executor": {**BASE_PARTS["executor"], "max_output_chars": 1000}},
        {"executor": {**BASE_PARTS["executor"], "replay": True}},
    ],
)
def test_nested_settings_change_the_key(nested: dict[str, Any]) -> None:
    assert trajectory_key(**{**BASE_PARTS, **nested}) != trajectory_key(**BASE_PARTS)


def test_equal_values_give_equal_keys() -> None:
    same = dict(BASE_PARTS)
    same["sampling"] = {"stop": ("```output",), "max_tokens": 1024, "top_p": 1, "temperature": 0}
    same["executor"] = dict(reversed(list(BASE_PARTS["executor"].items())))
    assert trajectory_key(**same) == trajectory_key(**BASE_PARTS)
    config = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=1024, seed=None, stop=("```output",))
    as_dict = {**BASE_PARTS, "sampling": config.to_dict()}
    assert trajectory_key(**{**BASE_PARTS, "sampling": config}) == trajectory_key(**as_dict)


def test_keyparts_object_or_keywords() -> None:
    assert trajectory_key(KeyParts(**BASE_PARTS)) == trajectory_key(**BASE_PARTS)
    assert trajectory_key(**{**BASE_PARTS, "loop_version": 1}) != trajectory_key(**BASE_PARTS)
    with pytest.raises(TypeError):
        trajectory_key(KeyParts(**BASE_PARTS), seed=1)


def test_grading_is_not_a_key_part_and_no_part_may_be_missing() -> None:
    with pytest.raises(TypeError):
        trajectory_key(**BASE_PARTS, correct=True)
    with pytest.raises(TypeError):
        trajectory_key(**BASE_PARTS, grader_version="2")
    missing = dict(BASE_PARTS)
    del missing["loop_version"]
    with pytest.raises(TypeError):
        trajectory_key(**missing)


@pytest.mark.parametrize(
    "bad",
    [
        {"sampling": {"temperature": float("nan")}},
        {"executor": {"fn": object()}},
        {"sample": -1},
        {"sample": True},
        {"max_turn_chars": None},
        {"seed": "0"},
        {"prompt": None},
        {"sampling": [("temperature", 0.0)]},
    ],
)
def test_bad_key_parts_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        KeyParts(**{**BASE_PARTS, **bad})


# --------------------------------------------------------------------------------------- location


def test_store_location_precedence(tmp_path: Path) -> None:
    cache = tmp_path / ".pytest_cache"
    assert default_store_dir(cache) == cache / "store"
    assert resolve_store_path(None, cache, environ={}) == default_store_dir(cache)
    assert resolve_store_path(None, cache, environ={STORE_ENV: " "}) == default_store_dir(cache)
    assert resolve_store_path(None, cache, environ={STORE_ENV: str(tmp_path / "env")}) == tmp_path / "env"
    got = resolve_store_path(str(tmp_path / "opt"), cache, environ={STORE_ENV: str(tmp_path / "env")})
    assert got == tmp_path / "opt"
    assert store_file(tmp_path / "s") == tmp_path / "s" / "results.sqlite3"
    assert store_file(tmp_path / "x.sqlite3") == tmp_path / "x.sqlite3"


# ------------------------------------------------------------------------------------------- basics


def test_put_get_round_trip_and_reopen(tmp_path: Path) -> None:
    record = make_record(key_of(1), 1, question="Évaluer ∑ 1/n²", level=None, seconds=1.25)
    with ResultStore(tmp_path / "store") as store:
        assert store.get(key_of(1)) is None
        store.put(key_of(1), record)
        store.put(key_of(2), make_record(key_of(2), 2, run_id="run-b", model="other"))
        assert store.get(key_of(1)) == record
        assert key_of(1) in store and key_of(3) not in store
    with ResultStore(tmp_path / "store", create=False) as store:
        assert store.get(key_of(1)) == record
        assert len(store) == 2
        found = store.get_many([key_of(2), key_of(3), key_of(1), key_of(2)])
        assert set(found) == {key_of(1), key_of(2)}
        assert found[key_of(2)]["run_id"] == "run-b"
        assert [r["key"] for r in store.records()] == [key_of(1), key_of(2)]
        assert [r["key"] for r in store.records(run_id="run-b")] == [key_of(2)]
        assert [r["key"] for r in store.records(model="gemma-3-270m")] == [key_of(1)]
        assert list(store.records(run_id="run-b", model="gemma-3-270m")) == []


def test_put_replaces_the_record_of_a_key(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put(key_of(1), make_record(key_of(1), 1))
        store.put(key_of(1), make_record(key_of(1), 1, prediction="7", run_id="run-b"))
        assert len(store) == 1
        assert store.get(key_of(1))["prediction"] == "7"
        assert [r["key"] for r in store.records(run_id="run-b")] == [key_of(1)]


def test_records_pages_through_many(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        for i in range(600):
            store.put(key_of(i), make_record(key_of(i), i))
        assert [r["key"] for r in store.records()] == [key_of(i) for i in range(600)]
        assert len(store.get_many(key_of(i) for i in range(0, 1200, 2))) == 300


def test_put_refuses_bad_records(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        with pytest.raises(ValueError, match="differs"):
            store.put(key_of(1), make_record(key_of(2)))
        with pytest.raises(ValueError, match="plain JSON"):
            store.put(key_of(1), make_record(key_of(1), seconds=float("nan")))
        with pytest.raises(ValueError, match="plain JSON"):
            store.put(key_of(1), make_record(key_of(1), extra={1, 2}))
        with pytest.raises(ValueError):
            store.put("", make_record(""))
        assert len(store) == 0


def test_opening_bad_stores_fails_with_the_path(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("not a database, but long enough to have a header " * 4)
    with pytest.raises(StoreError, match="junk.sqlite3.*not a tir-harness result store"):
        ResultStore(junk)
    with pytest.raises(StoreError, match="no result store"):
        ResultStore(tmp_path / "missing", create=False)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="other.db.*no trajectories table"):
        ResultStore(other, create=False)
    store = ResultStore(tmp_path / "ok")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(key_of(1))


# ---------------------------------------------------------------------------- crash and concurrency

WRITER = r"""
import sys, hashlib
from tir_harness.records.store import ResultStore
store_path, prefix = sys.argv[1], sys.argv[2]
store = ResultStore(store_path)
i = 0
while True:
    key = hashlib.sha256(f"{prefix}{i}".encode()).hexdigest()
    store.put(key, {"key": key, "run_id": prefix, "problem_id": f"p/{i}", "sample": 0,
                    "question": "q", "turns": [{"text": "x" * (i % 7000)}]})
    print(i, flush=True)
    i += 1
"""


def _check_integrity(path: Path) -> None:
    conn = sqlite3.connect(store_file(path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


@pytest.mark.parametrize("kill_after", [1, 37, 151])
def test_kill_9_loses_no_committed_record(tmp_path: Path, kill_after: int) -> None:
    store_path = tmp_path / "store"
    committed: list[int] = []
    for round_ in range(2):  # the second writer starts on the store the first one left when killed
        prefix = f"r{round_}-"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store_path), prefix], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        reported = []
        for line in child.stdout:
            reported.append(int(line))
            if len(reported) == kill_after:
                break
        # The child is somewhere inside its next put (or between two): exactly the case to survive.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        assert len(reported) == kill_after, "the writer died before reaching the kill point"
        committed += [key_of(i, prefix) for i in reported]

    _check_integrity(store_path)
    with ResultStore(store_path) as store:
        found = store.get_many(committed)
        assert sorted(found) == sorted(committed)
        assert all(found[k]["key"] == k for k in committed)
        store.put(key_of(0, "after"), make_record(key_of(0, "after")))
        assert store.get(key_of(0, "after")) is not None


MID_TRANSACTION = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO trajectories (key, created, record) VALUES ('uncommitted', 0, '{}')")
print("holding the write lock", flush=True)
sys.stdin.read()
"""


def test_writer_killed_inside_a_transaction_leaves_no_lock_and_no_row(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put(key_of(1), make_record(key_of(1)))
    child = subprocess.Popen(
        [sys.executable, "-c", MID_TRANSACTION, str(store_file(tmp_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "holding the write lock"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    child.stdin.close()
    child.stdout.close()
    _check_integrity(tmp_path)
    # A short retry window: a lock left behind by the dead writer would fail this put, not hang it.
    with ResultStore(tmp_path, busy_timeout=1.0, retry_seconds=1.0) as store:
        assert store.get("uncommitted") is None
        store.put(key_of(2), make_record(key_of(2)))
        assert set(store.get_many([key_of(1), key_of(2)])) == {key_of(1), key_of(2)}


CONCURRENT = r"""
import sys, threading, hashlib
from tir_harness.records.store import ResultStore
path, name, threads, per_thread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # every process opens the (not yet existing) store at the same moment
store = ResultStore(path)
def work(t):
    for i in range(per_thread):
        key = hashlib.sha256(f"{name}-{t}-{i}".encode()).hexdigest()
        store.put(key, {"key": key, "run_id": name, "problem_id": f"p/{t}/{i}", "sample": t})
        assert store.get(key)["key"] == key
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
store.close()
print("done", flush=True)
"""


def test_concurrent_writers_from_processes_and_threads(tmp_path: Path) -> None:
    store_path = tmp_path / "shared"
    procs, threads, per_thread = 3, 3, 25
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(store_path), f"w{n}", str(threads), str(per_thread)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(procs)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0] * procs
    assert all(out.strip() == "done" for out in outputs)

    _check_integrity(store_path)
    expected = {
        hashlib.sha256(f"w{n}-{t}-{i}".encode()).hexdigest()
        for n in range(procs)
        for t in range(threads)
        for i in range(per_thread)
    }
    with ResultStore(store_path) as store:
        assert len(store) == len(expected)
        assert set(store.get_many(expected)) == expected
        for n in range(procs):
            assert len(list(store.records(run_id=f"w{n}"))) == threads * per_thread


def test_threads_share_one_store_object(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with ResultStore(tmp_path) as store:

        def work(t: int) -> None:
            try:
                for i in range(30):
                    key = key_of(i, f"t{t}-")
                    store.put(key, make_record(key, i))
                    # Readers on other threads must never see a half-written record.
                    assert all(r["key"] for r in store.records(run_id="run-a"))
            except BaseException as exc:  # surfaced below: an assert in a thread would vanish
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "a thread is stuck in the store"
        assert errors == []
        assert len(store) == 120


def test_child_of_fork_opens_its_own_connection(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.put(key_of(1), make_record(key_of(1)))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            store.put(key_of(2), make_record(key_of(2)))
            ok = store.get(key_of(1)) is not None
            os.write(write, json.dumps(ok).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 100)
    os.close(read)
    os.waitpid(pid, 0)
    assert json.loads(answer) is True
    assert store.get(key_of(2)) is not None  # the parent's connection still works after the fork
    store.close()
