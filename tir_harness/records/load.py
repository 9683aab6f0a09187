"""Reading a run's records back: a run folder or a trajectories.jsonl, every line checked.

The one loader behind baselines, `tir-harness report`, `compare`, and the HTML report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.records.trajectory import SCHEMA_VERSION
from tir_harness.util.text import one_line

TRAJECTORIES = "trajectories.jsonl"


class ReportError(ValueError):
    """Bad input for a report or a comparison; the message is one line naming the file (and line)."""


def record_defect(record: dict[str, Any]) -> str | None:
    """Why `record` cannot be used, or None when it can."""
    version = record.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        return f"schema_version must be an integer, got {version!r}"
    if version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this tir-harness reads ({SCHEMA_VERSION})"
    pid = record.get("problem_id")
    if not isinstance(pid, str) or not pid:
        return "problem_id must be a non-empty string"
    sample = record.get("sample")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        return f"sample must be an integer >= 0, got {sample!r}"
    if not isinstance(record.get("correct"), bool):
        return f"correct must be true or false, got {record.get('correct')!r}"
    level = record.get("level")
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        return f"level must be an integer or null, got {level!r}"
    for name in ("dataset", "subject", "prediction"):
        if record.get(name) is not None and not isinstance(record[name], str):
            return f"{name} must be a string or null, got {record[name]!r}"
    for name in ("tool_calls", "prompt_tokens", "completion_tokens"):
        value = record.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} must be an integer, got {value!r}"
    if not isinstance(record.get("seconds", 0.0), (int, float)):
        return f"seconds must be a number, got {record.get('seconds')!r}"
    turns = record.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return "turns must be a list of objects"
    return None


def trajectories_path(path: str | Path) -> Path:
    """The trajectories file of a run directory, or `path` itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        candidate = path / TRAJECTORIES
        if not candidate.is_file():
            raise ReportError(f"{path}: not a run directory (no {TRAJECTORIES} in it)")
        return candidate
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    return path


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run directory or a trajectories.jsonl, checked line by line.

    Blank lines are skipped; anything else that is not a usable record raises `ReportError` naming the file
    and the line.
    """
    file = trajectories_path(path)
    records: list[dict[str, Any]] = []
    try:
        for lineno, record in read_objects(file):
            defect = record_defect(record)
            if defect is not None:
                raise ReportError(f"{file}:{lineno}: {one_line(defect, 200)}")
            records.append(record)
    except JsonlError as exc:
        raise ReportError(str(exc)) from None
    return records
