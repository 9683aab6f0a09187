"""Reading a run's records back: a run folder or a trajectories.jsonl, every line checked.

The one loader behind baselines, `tir-harness report`, `compare`, and the HTML report.  What it checks of a
record comes from the record's fields (`fields.FIELDS`, the fields marked `load`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tir_harness.records.fields import Defect, Record, checker
from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.records.trajectory import SCHEMA_VERSION
from tir_harness.util.text import one_line

TRAJECTORIES = "trajectories.jsonl"


class ReportError(ValueError):
    """Bad input for a report or a comparison; the message is one line naming the file (and line)."""


def _defect(record: dict[str, Any], check: Callable[[Record], Defect | None]) -> str | None:
    """Why `record` cannot be used, or None when it can; `check` is `fields.checker("load")`."""
    version = record.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        return f"schema_version must be an integer, got {version!r}"
    if version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this tir-harness reads ({SCHEMA_VERSION})"
    defect = check(record)
    if defect is None:
        return None
    return f"{defect.field} must be {defect.expected}" + ("" if defect.got is None else f", got {defect.got}")


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
    check = checker("load")
    try:
        for lineno, record in read_objects(file):
            defect = _defect(record, check)
            if defect is not None:
                raise ReportError(f"{file}:{lineno}: {one_line(defect, 200)}")
            records.append(record)
    except JsonlError as exc:
        raise ReportError(str(exc)) from None
    return records
