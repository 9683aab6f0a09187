"""Training data from stored trajectories: chat conversations (SFT, KTO) and preference pairs (DPO).

Inputs are run directories (`reports/<run>/trajectories.jsonl`), JSONL files of records, or result stores
(a store folder or its `.sqlite3` file).  Records are deduplicated by their key across all inputs, so
several runs and seeds that accumulated into one store are read once each.  Formats: docs/store.md.

A conversation is ``user`` (the question), then for each turn of the loop an ``assistant`` message (what the
model wrote, the stop string excluded) followed, when its code ran, by an observation message whose content
is ``"```output\\n" + observation + "\\n```"``, the text the loop appended for the model to read.
Observations have role ``tool`` by default, or ``user`` for trainers that only know user/assistant.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tir_harness.records import fields
from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.records.store import STORE_FILENAME, ResultStore, StoreError
from tir_harness.records.trajectory import END_ERROR, END_LENGTH, END_MAX_TOOL_CALLS
from tir_harness.util.text import one_line

__all__ = [
    "EXEC_OK_STATUSES",
    "AnnotateError",
    "annotate",
    "exec_error",
    "iter_records",
    "no_answer",
    "pairs",
    "row_columns",
    "to_messages",
]

OBSERVATION_ROLES = ("tool", "user")
# Executor statuses that are not errors: "output_limit" means the code ran and its output was cut.
EXEC_OK_STATUSES = frozenset({"ok", "output_limit"})

# The columns of a pair and their `datasets` types (fixed, as `row_columns`).
PAIR_COLUMNS = {
    "id": "string", "problem_id": "string", "model": "string", "question": "string", "gold": "string",
    "prompt": "messages", "chosen": "messages", "rejected": "messages", "chosen_id": "string",
    "rejected_id": "string", "chosen_prediction": "string", "rejected_prediction": "string",
    "rejected_exec_error": "bool", "rejected_no_answer": "bool",
}  # fmt: skip
_SQLITE_MAGIC = b"SQLite format 3\x00"


class AnnotateError(ValueError):
    """Bad input; the message is one line naming the file (and line)."""


# ------------------------------------------------------------------------------------------- records


def iter_records(sources: Iterable[str | os.PathLike[str]], *, model: str | None = None) -> Iterator[dict]:
    """Records of all sources in order, each key once (the first occurrence wins), optionally of one model."""
    seen: set[str] = set()
    check = fields.checker("annotate")
    for source in sources:
        for where, record in _iter_source(Path(source)):
            defect = check(record)
            if defect is not None:
                raise AnnotateError(f"{where}: {one_line(_message(defect), 300)}")
            if record["key"] in seen or (model is not None and record.get("model") != model):
                continue
            seen.add(record["key"])
            yield record


def _iter_source(path: Path) -> Iterator[tuple[str, dict]]:
    if path.is_dir():
        if (path / "trajectories.jsonl").is_file():
            yield from _iter_jsonl(path / "trajectories.jsonl")
        elif (path / STORE_FILENAME).is_file():
            yield from _iter_store(path)
        else:
            raise AnnotateError(
                f"{path}: neither a run directory (no trajectories.jsonl) nor a result store (no {STORE_FILENAME})"
            )
    elif path.is_file():
        with path.open("rb") as fh:
            magic = fh.read(len(_SQLITE_MAGIC))
        yield from _iter_store(path) if magic == _SQLITE_MAGIC else _iter_jsonl(path)
    else:
        raise AnnotateError(f"{path}: no such file or directory")


def _iter_store(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        store = ResultStore(path, create=False)
    except StoreError as exc:
        raise AnnotateError(str(exc)) from exc
    try:
        for record in store.records():
            yield f"{store.path} (key {str(record.get('key'))[:12]})", record
    finally:
        store.close()


def _iter_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        for number, record in read_objects(path):
            yield f"{path}:{number}", record
    except JsonlError as exc:
        raise AnnotateError(str(exc)) from exc
    except OSError as exc:
        raise AnnotateError(f"{path}: cannot read ({exc.strerror})") from exc


def _message(defect: fields.Defect) -> str:
    if defect.got is None:
        return f"record has no {defect.field!r}"
    return f"{defect.field!r} must be {defect.expected}, got {defect.got}"


# ------------------------------------------------------------------------------------------- messages


def to_messages(record: Mapping[str, Any], *, observation_role: str = "tool") -> list[dict[str, str]]:
    """The trajectory as chat messages: user question, then assistant turns and observations.

    The assistant content is the turn's text exactly as generated.  Two turns without an observation in
    between (not produced by the current loop) are joined into one assistant message, so roles alternate.
    A trajectory that ended right after an observation (tool-call limit) ends with that observation.
    """
    if observation_role not in OBSERVATION_ROLES:
        raise ValueError(f"observation_role must be one of {OBSERVATION_ROLES}, got {observation_role!r}")
    messages = [{"role": "user", "content": record["question"]}]
    for turn in record["turns"]:
        if messages[-1]["role"] == "assistant":
            messages[-1]["content"] += turn["text"]
        else:
            messages.append({"role": "assistant", "content": turn["text"]})
        if turn.get("observation") is not None:
            messages.append({"role": observation_role, "content": f"```output\n{turn['observation']}\n```"})
    return messages


def exec_error(record: Mapping[str, Any]) -> bool:
    """Whether any code block failed in the executor (error, timeout, memory, killed, ...)."""
    return any(
        t.get("exec_status") is not None and t.get("exec_status") not in EXEC_OK_STATUSES for t in record["turns"]
    )


def no_answer(record: Mapping[str, Any]) -> bool:
    """Whether no final answer was extracted (none, or an empty ``\\boxed{}``)."""
    prediction = record.get("prediction")
    return prediction is None or not str(prediction).strip()


def annotate(
    records: Iterable[Mapping[str, Any]],
    *,
    correct_only: bool = False,
    drop_exec_errors: bool = False,
    drop_no_answer: bool = False,
    observation_role: str = "tool",
) -> Iterator[dict[str, Any]]:
    """One training row per trajectory that passes the filters (format in docs/store.md)."""
    carried = list(fields.training_fields())
    for record in records:
        row = _row(record, carried, observation_role)
        if correct_only and record.get("correct") is not True:
            continue
        if (drop_exec_errors and row["exec_error"]) or (drop_no_answer and row["no_answer"]):
            continue
        yield row


def _sampling(record: Mapping[str, Any]) -> Mapping[str, Any]:
    sampling = record.get("sampling")
    return sampling if isinstance(sampling, Mapping) else {}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# The columns a training row computes from the whole record, after "id" and the record fields it carries as they
# are (`fields.training_fields()`): (name, `datasets` type, how it is computed).
_COMPUTED: tuple[tuple[str, str, Callable[[Mapping[str, Any], str], Any]], ...] = (
    ("seed", "int64", lambda r, _: _sampling(r).get("seed")),
    ("temperature", "float64", lambda r, _: _float(_sampling(r).get("temperature"))),
    ("messages", "messages", lambda r, role: to_messages(r, observation_role=role)),
    ("tool_calls", "int64", lambda r, _: sum(1 for t in r["turns"] if t.get("code") is not None)),
    ("exec_error", "bool", lambda r, _: exec_error(r)),
    ("no_answer", "bool", lambda r, _: no_answer(r)),
    ("max_tool_calls_reached", "bool", lambda r, _: r.get("end_reason") == END_MAX_TOOL_CALLS),
    ("truncated", "bool", lambda r, _: r.get("end_reason") == END_LENGTH),
    ("engine_error", "bool", lambda r, _: r.get("end_reason") == END_ERROR),
)


def row_columns() -> dict[str, str]:
    """The columns of a training row and their `datasets` types, fixed so that exports of different runs (or
    empty ones) always load and concatenate: inferred types would differ, e.g. when every prediction of a run
    is null."""
    return {"id": "string", **fields.training_fields(), **{name: kind for name, kind, _ in _COMPUTED}}


def _row(record: Mapping[str, Any], carried: Iterable[str], observation_role: str) -> dict[str, Any]:
    return {
        "id": record["key"],
        **{name: record.get(name) for name in carried},
        **{name: compute(record, observation_role) for name, _, compute in _COMPUTED},
    }


# ----------------------------------------------------------------------------------------------- pairs


def pairs(
    records: Iterable[Mapping[str, Any]],
    *,
    max_pairs_per_problem: int = 1,
    observation_role: str = "tool",
) -> Iterator[dict[str, Any]]:
    """Preference pairs: a correct (chosen) and an incorrect (rejected) trajectory of the same problem.

    The rule, deterministic whatever the input order:
    - a problem is a (model, problem_id, question) group: pairs never mix models;
    - trajectories that ended in an engine error or were never graded take no part; of trajectories with
      the same text (turns and observations) only the one with the smallest key is kept;
    - chosen candidates are ordered clean-first (no executor error), then by key; rejected candidates by key
      (keys are hashes, so this is a fixed pseudo-random order, unrelated to sample index or seed);
    - with C chosen and R rejected candidates, pair i (0 <= i < n, n = min(max_pairs_per_problem, max(C, R)))
      is chosen[i mod C] with rejected[i mod R]: only the smaller side is reused, evenly, and only as far
      as the larger side needs;
    - problems are emitted in (model, problem_id) order.
    """
    if max_pairs_per_problem < 1:
        raise ValueError(f"max_pairs_per_problem must be >= 1, got {max_pairs_per_problem}")
    groups: dict[tuple[str, str, str], dict[str, Mapping[str, Any]]] = {}
    for record in records:
        if record.get("end_reason") == END_ERROR or not isinstance(record.get("correct"), bool):
            continue
        group = groups.setdefault((str(record.get("model")), str(record["problem_id"]), record["question"]), {})
        text = json.dumps([[t["text"], t.get("observation")] for t in record["turns"]])
        if text not in group or record["key"] < group[text]["key"]:
            group[text] = record
    for group_key in sorted(groups):
        candidates = groups[group_key].values()
        chosen = sorted((r for r in candidates if r["correct"]), key=lambda r: (exec_error(r), r["key"]))
        rejected = sorted((r for r in candidates if not r["correct"]), key=lambda r: r["key"])
        if not chosen or not rejected:
            continue
        for i in range(min(max_pairs_per_problem, max(len(chosen), len(rejected)))):
            yield _pair(chosen[i % len(chosen)], rejected[i % len(rejected)], observation_role)


def _pair(chosen: Mapping[str, Any], rejected: Mapping[str, Any], observation_role: str) -> dict[str, Any]:
    good = to_messages(chosen, observation_role=observation_role)
    bad = to_messages(rejected, observation_role=observation_role)
    return {
        "id": hashlib.sha256(f"{chosen['key']}:{rejected['key']}".encode()).hexdigest(),
        "problem_id": chosen["problem_id"],
        "model": chosen.get("model"),
        "question": chosen["question"],
        "gold": chosen.get("gold"),
        "prompt": good[:1],
        "chosen": good[1:],
        "rejected": bad[1:],
        "chosen_id": chosen["key"],
        "rejected_id": rejected["key"],
        "chosen_prediction": chosen.get("prediction"),
        "rejected_prediction": rejected.get("prediction"),
        "rejected_exec_error": exec_error(rejected),
        "rejected_no_answer": no_answer(rejected),
    }
