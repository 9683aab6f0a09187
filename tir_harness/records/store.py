"""The result store: every finished trajectory, keyed by everything that determined it.

A trajectory is fully determined by its `KeyParts` (model identity, prompt, sampling, seed, sample index,
tool-call limit, turn size limit, executor settings, loop version); `KeyParts.key()` hashes them.  Grading is
not part of the key, so a new grader re-grades stored trajectories when they are reused instead of
regenerating them.

The store is one SQLite database in WAL mode with `synchronous=FULL`: `put` returns only after its
transaction is in the write-ahead log and fsync'd, so neither `kill -9` of any process nor a power loss
loses a record whose `put` returned, and an interrupted transaction is rolled back on the next open.
Several processes (pytest-xdist workers) and threads may write the same store at once; see docs/store.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KEY_VERSION",
    "STORE_ENV",
    "STORE_FILENAME",
    "KeyParts",
    "ResultStore",
    "StoreError",
    "default_store_dir",
    "resolve_store_path",
    "store_file",
    "trajectory_key",
]

# Bump only when the canonical form below changes: it invalidates every stored key.
KEY_VERSION = 1
SCHEMA_VERSION = 1
STORE_ENV = "TIR_STORE_DIR"
STORE_FILENAME = "results.sqlite3"
_DB_SUFFIXES = (".sqlite3", ".sqlite", ".db")


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message is one line naming the store file."""


# --------------------------------------------------------------------------------------------------- key


@dataclass(frozen=True)
class KeyParts:
    """Everything that determines a trajectory.  Every field but `engine_args` is required, so no caller can forget one.

    - `model`: the model's identity as resolved (`ModelSpec.identity`, e.g. ``google/gemma-3-270m@main``).
    - `model_revision`: the hub revision or a hash of the weights; None only when neither exists.
    - `prompt_format`, `prompt_type`: the chat format and the prompt (few-shot) type.
    - `prompt`: the first prompt exactly as sent to the engine; it contains the problem text.  Keying on
      the bare problem text instead would reuse trajectories across edits of a few-shot prompt.
    - `sampling`: the sampling parameters as a mapping or dataclass (`SamplingConfig`): temperature,
      top_p, max_tokens, stop strings, ...
    - `seed`: the run's seed (--seed); `sample`: the sample index 0..N-1 (--samples N).
    - `max_tool_calls`: the tool-call limit of the loop.
    - `max_turn_chars`: the characters of a turn the loop keeps (--max-turn-chars): a longer completion is cut,
      and the cut text is what the conversation continues from.
    - `executor`: the executor settings that can change an observation (limits, output cap, format).
    - `loop_version`: the TIR loop's version (str or int); bump it when the loop changes what it generates.
    - `engine_args`: the engine arguments (--engine-arg) that change what the model writes (the engine declares
      which do not: `EngineType.neutral_args`).  The one optional part: left empty, it is not hashed at all,
      so every key made before it existed stays the same.
    - `reference_quirks`: the model's input as the reference built it (--reference-quirks); hashed only when set.
    - `execution_mode`: how code runs (run/loop.py): "live" in one session, or "reference", every block of the
      conversation replayed each turn; hashed only when not "live".

    Numbers are compared by value (temperature 1 and 1.0 give the same key), tuples equal lists, mapping
    order does not matter.  Strings are taken exactly: a one-character change of the prompt is a new key.
    """

    model: str
    model_revision: str | None
    prompt_format: str
    prompt_type: str
    prompt: str
    sampling: Mapping[str, Any]
    seed: int | None
    sample: int
    max_tool_calls: int
    max_turn_chars: int
    executor: Mapping[str, Any]
    loop_version: str | int
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    reference_quirks: bool = False
    execution_mode: str = "live"

    def __post_init__(self) -> None:
        if isinstance(self.loop_version, bool) or not isinstance(self.loop_version, (str, int)):
            raise TypeError(f"KeyParts.loop_version must be a str or int, got {self.loop_version!r}")
        for name in ("model", "prompt_format", "prompt_type", "prompt", "execution_mode"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"KeyParts.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.model_revision is not None and not isinstance(self.model_revision, str):
            raise TypeError("KeyParts.model_revision must be a str or None")
        for name in ("sample", "max_tool_calls", "max_turn_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TypeError(f"KeyParts.{name} must be an int >= 0, got {value!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise TypeError(f"KeyParts.seed must be an int or None, got {self.seed!r}")
        for name in ("sampling", "executor", "engine_args"):
            value = getattr(self, name)
            if is_dataclass(value) and not isinstance(value, type):
                value = asdict(value)
            if not isinstance(value, Mapping):
                raise TypeError(f"KeyParts.{name} must be a mapping or a dataclass, got {type(value).__name__}")
            # Canonicalise now so that bad values fail at construction, where the caller is.
            object.__setattr__(self, name, _canonical(value, f"KeyParts.{name}"))

    def canonical_json(self) -> str:
        """The exact text that is hashed: sorted keys, no spaces, ASCII only, integral floats as ints."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if not data["engine_args"]:
            del data["engine_args"]  # keys from before engine arguments existed stay valid
        if not data["reference_quirks"]:
            del data["reference_quirks"]
        if data["execution_mode"] == "live":
            del data["execution_mode"]  # keys from before the reference's replay existed stay valid
        data["key_version"] = KEY_VERSION
        canonical = _canonical(data, "KeyParts")
        return json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)

    def key(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()


def trajectory_key(parts: KeyParts | None = None, /, **kwargs: Any) -> str:
    """sha256 hex of the canonical JSON of `parts`, or of `KeyParts(**kwargs)`.

    A missing or unknown part is a TypeError: grading fields, for one, are refused.
    """
    if parts is None:
        return KeyParts(**kwargs).key()
    if kwargs or not isinstance(parts, KeyParts):
        raise TypeError("trajectory_key takes one KeyParts or the parts as keywords, not both")
    return parts.key()


def _canonical(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} cannot be part of a key")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: mapping keys must be str, got {k!r}")
            out[k] = _canonical(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if is_dataclass(value) and not isinstance(value, type):
        return _canonical(asdict(value), where)
    raise TypeError(f"{where}: {type(value).__name__} is not plain JSON data")


# -------------------------------------------------------------------------------------------- location


def default_store_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """The default store folder inside `cache_dir`, meant to be `config.cache.mkdir("tir-harness")`.

    Under pytest's cache dir, `pytest --cache-clear` deletes the store with the rest of the cache.
    """
    return Path(cache_dir) / "store"


def resolve_store_path(
    option: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> Path:
    """--store-dir if given, else $TIR_STORE_DIR if set and non-empty, else `default_store_dir(cache_dir)`."""
    env = os.environ if environ is None else environ
    if option is not None and str(option) != "":
        return Path(option).expanduser()
    if env.get(STORE_ENV, "").strip():
        return Path(env[STORE_ENV].strip()).expanduser()
    return default_store_dir(cache_dir)


def store_file(path: str | os.PathLike[str]) -> Path:
    """The database file of a store given as a folder (`FOLDER/results.sqlite3`) or as a `.sqlite3` file."""
    p = Path(path).expanduser()
    if p.suffix in _DB_SUFFIXES and not p.is_dir():
        return p
    return p / STORE_FILENAME


# ---------------------------------------------------------------------------------------------- store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trajectories (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    run_id TEXT,
    problem_id TEXT,
    sample INTEGER,
    model TEXT,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trajectories_run ON trajectories (run_id);
CREATE INDEX IF NOT EXISTS trajectories_problem ON trajectories (problem_id, sample);
CREATE INDEX IF NOT EXISTS trajectories_model ON trajectories (model);
CREATE INDEX IF NOT EXISTS trajectories_created ON trajectories (created);
"""

_BATCH = 256


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class ResultStore:
    """One SQLite database shared by every process and thread that opens the same path.

    Each process holds one connection, guarded by a lock for its threads; processes coordinate through
    SQLite's file locks (busy timeout, plus retries with backoff for the cases SQLite reports at once).
    A connection inherited through `fork` is never used: the child opens its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        busy_timeout: float = 30.0,
        retry_seconds: float = 120.0,
    ) -> None:
        self.path = store_file(path)
        self._create = create
        self._busy_timeout = busy_timeout
        self._retry_seconds = retry_seconds
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._closed = False
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no result store there")
        with self._lock:
            self._connection()

    # -- connection ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # After a fork the parent's connection is left alone: SQLite connections must not cross a fork.
        self._conn, self._pid = self._open(), os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create the store folder ({exc.strerror})") from exc
        try:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), never the module's implicit ones.
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store ({exc})") from exc
        try:
            self._retry(lambda: self._setup(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise
            raise StoreError(f"{self.path}: not a tir-harness result store ({exc})") from exc
        if tables and not {"meta", "trajectories"} <= tables:
            # Someone else's database: adding our tables (or even switching it to WAL) would change it, and so
            # would a reader's open (the report's check against the store reads a store it did not create).
            if not self._create:
                raise StoreError(f"{self.path}: not a tir-harness result store (no trajectories table)")
            raise StoreError(f"{self.path}: a SQLite database that is not a tir-harness result store; left untouched")
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise
            raise StoreError(f"{self.path}: not a tir-harness result store ({exc})") from exc
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.path}: SQLite WAL mode is unavailable on this filesystem (got {mode!r}); "
                "put the store on a local disk (--store-dir or TIR_STORE_DIR)"
            )
        # FULL: each commit fsyncs the WAL, so a returned `put` survives power loss too, not just kill -9
        # (NORMAL would suffice for kill -9).  During a run `GroupWriter` commits every record that finished
        # during the previous commit in one transaction: one fsync per group, not per trajectory.
        conn.execute("PRAGMA synchronous=FULL")
        if self._create:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        try:
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            conn.execute("SELECT 1 FROM trajectories LIMIT 1").fetchall()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise
            row = None
        if row is None:
            raise StoreError(f"{self.path}: not a tir-harness result store (no trajectories table)")
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema {row[0]} is newer than this tir-harness's ({SCHEMA_VERSION})")

    def _retry(self, action: Callable[[], Any]) -> Any:
        """Run `action`, retrying while another process holds a lock SQLite's busy handler gave up on."""
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.Error as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: {exc}") from exc
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.25)

    def _write(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `body` in one IMMEDIATE transaction (the write lock is taken up front, so no deadlock)."""

        def attempt() -> Any:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            return self._retry(attempt)

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._retry(lambda: self._connection().execute(sql, tuple(params)).fetchall())

    # -- public API ---------------------------------------------------------------------------------

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store (or replace) the record of `key`; durable on disk when this returns."""
        self.put_many([(key, record)])

    def put_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Store (or replace) several records in one transaction: one fsync for all of them, and all or none
        of them on disk after a crash.  Durable when this returns.  A bad record fails the whole call."""
        rows = [_row(key, record) for key, record in items]
        if not rows:
            return
        self._write(
            lambda conn: conn.executemany(
                "INSERT INTO trajectories (key, run_id, problem_id, sample, model, created, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, "
                "problem_id = excluded.problem_id, sample = excluded.sample, model = excluded.model, "
                "created = excluded.created, record = excluded.record",
                rows,
            )
        )

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT record FROM trajectories WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored records among `keys`; keys not in the store are absent from the result."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), _BATCH):
            chunk = wanted[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key, record FROM trajectories WHERE key IN ({marks})"
            for key, text in self._read(sql, chunk):
                found[key] = json.loads(text)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._read("SELECT 1 FROM trajectories WHERE key = ?", (key,)))

    def __len__(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM trajectories")[0][0])

    def records(self, run_id: str | None = None, model: str | None = None) -> Iterator[dict[str, Any]]:
        """Stored records in the order they were first stored, optionally of one run and/or model.

        `run_id` is the run that generated the trajectory: a later run that reused it does not own it.
        Read in batches, so no read transaction stays open while the caller works.
        """
        where: list[str] = ["id > ?"]
        params: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if model is not None:
            where.append("model = ?")
            params.append(model)
        sql = f"SELECT id, record FROM trajectories WHERE {' AND '.join(where)} ORDER BY id LIMIT {_BATCH}"
        last = 0
        while True:
            rows = self._read(sql, [last, *params])
            for row_id, text in rows:
                last = row_id
                yield json.loads(text)
            if len(rows) < _BATCH:
                return

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._closed = True

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"


def _row(key: str, record: Mapping[str, Any]) -> tuple[Any, ...]:
    _check_key(key)
    if not isinstance(record, Mapping):
        raise TypeError(f"record must be a mapping, got {type(record).__name__}")
    if record.get("key", key) != key:
        raise ValueError(f"record['key'] {record.get('key')!r} differs from the key it is stored under")
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record for key {key[:12]} is not plain JSON data: {exc}") from exc
    sample = record.get("sample")
    return (
        key,
        _opt_str(record.get("run_id")),
        _opt_str(record.get("problem_id")),
        sample if isinstance(sample, int) and not isinstance(sample, bool) else None,
        _opt_str(record.get("model")),
        time.time(),
        text,
    )


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a store key must be a non-empty str, got {key!r}")


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
