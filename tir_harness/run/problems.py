"""Benchmark problems: loading a registered dataset's split (run/datasets.py), a field-mapped JSONL loader.

Every loader yields `Problem`s with a stable id and the gold answer extracted the way the dataset publishes
it.  A dataset split is looked up, in this order:
1. a data folder laid out as `<dataset>/<split>.jsonl` (`--data-dir` or `TIR_DATA_DIR`);
2. the copy shipped in this package (`tir_harness/run/data/`: the five test splits and the smoke set,
   gzip-compressed, each checked against the sha256 and row count of `manifest.json` when read);
3. the Hugging Face hub through `datasets` (the train splits), after a probe that gives up in seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tir_harness.grading import ANSWER_KINDS
from tir_harness.grading.boxed import last_boxed
from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.util.registry import RegistryError
from tir_harness.util.text import exception_line as _first_line

if TYPE_CHECKING:
    from tir_harness.run.datasets import Dataset


class DataError(ValueError):
    """A dataset cannot be loaded; the message is one line naming the file and line or the dataset."""


class DatasetNotFound(DataError):
    """Neither the data folder nor the hub has the dataset (as opposed to a file that is broken)."""


@dataclass(frozen=True)
class Problem:
    id: str  # stable across runs and machines: "math/test/algebra/1", "gsm8k/test/0007"
    dataset: str
    split: str
    question: str
    answer: str  # the gold answer, as text
    subject: str | None = None
    level: int | None = None
    answer_kind: str = "expression"  # grading.ANSWER_KINDS: set from the dataset's (run/datasets.py)

    @property
    def param_id(self) -> str:
        """The test id inside the brackets: `test_math[algebra-1]`, `test_gsm8k[0007]`.

        A split other than the test split is named in it (`test_gsm8k[train-0007]`), so that a train run's
        test ids never equal a test run's (`--lf`, junit, baselines).
        """
        key = self.id.split("/", 2)[2].replace("/", "-")
        return key if self.split in ("test", "file") else f"{self.split}-{key}"


Parser = Callable[[dict[str, Any], int, str], Problem]


def subject_slug(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.lower().replace("&", "and")).strip("_")


def gold_text(value: Any, field: str) -> str:
    """A gold answer as text: a string, or a finite number (SVAMP and GSM-Hard publish floats: 6.0 reads as 6).

    Anything else is refused: JSON readers accept `NaN`, `Infinity`, `true` and `[1, 2]`, and as text ("nan",
    "True", "[1, 2]") each would be graded against, silently marking right answers wrong."""
    if isinstance(value, str):
        return value
    if value is None:  # str(None) would become the text "None"
        raise ValueError(f"field {field!r} is null")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = json.dumps(value, default=repr)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ValueError(f"gold answer in field {field!r} is {shown}: not a string or a finite number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _dataset(name: str) -> Dataset:
    # Deferred: run/datasets.py builds its parsers from this module's `Problem`.
    from tir_harness.run.datasets import get_dataset

    try:
        return get_dataset(name)
    except RegistryError as exc:  # "unknown dataset 'x'; known: gsm8k, ..."
        raise DataError(str(exc)) from None


def splits(dataset: str) -> tuple[str, ...]:
    """The splits a dataset has."""
    return _dataset(dataset).splits


def load(dataset: str, split: str = "test", *, data_dir: Path | None = None) -> list[Problem]:
    """All problems of one dataset split, in the dataset's order."""
    spec = _dataset(dataset)
    if split not in spec.splits:
        raise DataError(f"dataset {dataset} has no split {split!r}; it has {', '.join(spec.splits)}")
    if spec.load is not None:
        return spec.load(split, data_dir)
    looked = []
    if data_dir is not None:
        path = data_dir / dataset / f"{split}.jsonl"
        if path.is_file():
            return _load_file(path, split, spec)
        looked.append(str(path))
    if f"{dataset}/{split}" in shipped():
        return _load_shipped(spec, split)
    looked.append("the copies shipped with tir-harness (test splits only)")
    try:
        if spec.hub_path is None:
            raise LookupError("the dataset names no hub copy")
        rows = _hub_rows(spec, split)
    except Exception as exc:  # any hub failure ends in the same one-line message
        looked.append(f"the Hugging Face hub ({spec.hub_path}: {_first_line(exc)})")
        raise DatasetNotFound(
            f"dataset {dataset}/{split} not found; looked in {', '.join(looked)}. "
            "Point --data-dir or TIR_DATA_DIR at a folder holding <dataset>/<split>.jsonl"
        ) from exc
    parse = _parser(spec, split)
    return [parse(row, i) for i, row in enumerate(rows)]


def _parser(spec: Dataset, split: str) -> Callable[[dict[str, Any], int], Problem]:
    """The dataset's parser for one split, its problems carrying the dataset's answer kind."""
    assert spec.parse is not None  # a dataset without a parser has its own `load`
    parse, kind = spec.parse, spec.answer_kind

    def parse_row(row: dict[str, Any], index: int) -> Problem:
        problem = parse(row, index, split)
        return problem if problem.answer_kind == kind else replace(problem, answer_kind=kind)

    return parse_row


# -- the shipped copies ----------------------------------------------------------------------------------------

DATA = resources.files("tir_harness.run") / "data"
MANIFEST = "manifest.json"


@lru_cache(maxsize=1)
def shipped() -> dict[str, dict[str, Any]]:
    """The manifest of the shipped files: `"<dataset>/<split>"` -> file, sha256, rows, upstream, license."""
    try:
        return json.loads((DATA / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{DATA / MANIFEST}: cannot read the shipped data's manifest ({_first_line(exc)})") from None


def shipped_bytes(name: str) -> bytes:
    """A shipped file's content (decompressed), checked against the manifest's sha256 and row count."""
    entry = shipped()[name]
    resource = DATA / entry["file"]
    try:
        raw = resource.read_bytes()
        if entry["file"].endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        reason = _first_line(exc)
        raise DataError(f"{resource}: cannot read this shipped file ({reason}); reinstall tir-harness") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != entry["sha256"]:
        raise DataError(
            f"{resource}: sha256 {digest[:16]}... differs from {MANIFEST}'s {entry['sha256'][:16]}...: "
            "the shipped copy was changed or damaged; reinstall tir-harness"
        )
    rows = sum(1 for line in raw.splitlines() if line.strip())
    if rows != entry["rows"]:
        raise DataError(f"{resource}: {rows} rows, {MANIFEST} says {entry['rows']}; reinstall tir-harness")
    return raw


@lru_cache(maxsize=8)
def _load_shipped(spec: Dataset, split: str) -> list[Problem]:
    # Cached: collection asks once per test function; 9,160 problems decompress and parse in well under 1 s.
    name = f"{spec.name}/{split}"
    raw = shipped_bytes(name)
    label = DATA / shipped()[name]["file"]
    rows = (
        (lineno, json.loads(line)) for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1) if line.strip()
    )
    return list(_parse_lines(label, _parser(spec, split), rows))


@lru_cache(maxsize=32)
def _load_file(path: Path, split: str, spec: Dataset) -> list[Problem]:
    # Cached: the same file is parsed once even when several test functions use it.
    return list(_parse_lines(path, _parser(spec, split)))


def _parse_lines(
    path: Path | Any,
    parse: Callable[[dict[str, Any], int], Problem],
    rows: Iterable[tuple[int, dict[str, Any]]] | None = None,  # default: the lines of `path`
) -> Iterator[Problem]:
    # A problem's id is its identity everywhere (store key, report, the test's parameter): two problems with
    # one id would be one test fed the other's trajectory, so a duplicate is an error, never merged.
    first_line: dict[str, int] = {}
    try:
        for index, (lineno, row) in enumerate(read_objects(path, strict=True) if rows is None else rows):
            try:
                problem = parse(row, index)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"{path}:{lineno}: cannot read this problem ({_first_line(exc)})") from None
            if problem.id in first_line:
                raise DataError(
                    f"{path}:{lineno}: duplicate problem id {problem.id!r} (also at line {first_line[problem.id]})"
                )
            first_line[problem.id] = lineno
            yield problem
    except JsonlError as exc:
        raise DataError(str(exc)) from None
    if not first_line:
        raise DataError(f"{path}: no problems in this file")


HUB_PROBE_SECONDS = 5.0
_hub_probe_lock = threading.Lock()
_hub_probe: dict[str, str | None] = {}  # endpoint -> None (reachable) or why not


def _hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))  # fmt: skip


def _hub_unreachable(path: str) -> str | None:
    """Why the hub cannot be reached, or None; asked once per endpoint and process, bounded in time.

    `datasets` retries a hub it cannot reach for minutes; this one request (through the same proxies, as
    urllib reads HTTPS_PROXY) gives up after HUB_PROBE_SECONDS, DNS included, so a missing dataset is a
    one-line error in seconds.  Any HTTP answer, even 401 or 404, means the hub is there.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    with _hub_probe_lock:
        if endpoint in _hub_probe:
            return _hub_probe[endpoint]
        answer: list[str | None] = []

        def probe() -> None:
            request = urllib.request.Request(f"{endpoint}/api/datasets/{path}", method="HEAD")
            try:
                urllib.request.urlopen(request, timeout=HUB_PROBE_SECONDS).close()
                answer.append(None)
            except urllib.error.HTTPError:
                answer.append(None)
            except Exception as exc:  # URLError, timeout, refused, DNS
                answer.append(_first_line(exc))

        thread = threading.Thread(target=probe, name="tir-harness-hub-probe", daemon=True)
        thread.start()
        thread.join(HUB_PROBE_SECONDS + 0.5)
        reason = answer[0] if answer else f"no answer within {HUB_PROBE_SECONDS:g} s"
        if reason is not None:
            reason = f"{endpoint} unreachable: {reason}; set HF_HUB_OFFLINE=1 to use the datasets cache"
        _hub_probe[endpoint] = reason
        return reason


def _hub_rows(spec: Dataset, split: str) -> list[dict[str, Any]]:
    assert spec.hub_path is not None
    if not _hub_offline():  # offline: `datasets` answers from its cache at once, or fails at once
        reason = _hub_unreachable(spec.hub_path)
        if reason is not None:
            raise ConnectionError(reason)
    try:
        import datasets  # optional: only needed for what is neither in the data folder nor shipped
    except ImportError:
        raise ImportError("the `datasets` package is not installed (pip install datasets)") from None

    hub_split = spec.hub_split.get(split, split)
    if spec.hub_rows is not None:
        return spec.hub_rows(spec, hub_split, datasets)
    return list(datasets.load_dataset(spec.hub_path, spec.hub_config, split=hub_split))


def load_jsonl(
    path: str | Path,
    *,
    question: str = "question",
    answer: str = "answer",
    id: str | None = None,
    subject: str | None = None,
    level: str | None = None,
    gold: str = "plain",
    dataset: str | None = None,
    answer_kind: str = "expression",
) -> list[Problem]:
    """Problems from any JSONL file, given which field holds what.

    `gold` says how to read the answer field: "plain" (as is), "boxed" (last \\boxed{} of a solution) or
    "####" (text after the last ####, GSM8K style); `answer_kind` what the answers are (grading.ANSWER_KINDS:
    "number" reads a response without a marked answer by its last number).
    """
    path = Path(path)
    name = dataset or path.stem
    readers: dict[str, Callable[[str], str | None]] = {
        "plain": lambda text: text,
        "boxed": last_boxed,
        "####": lambda text: text.rsplit("####", 1)[1].strip() if "####" in text else None,
    }
    if gold not in readers:
        raise DataError(f"gold={gold!r}: expected one of {', '.join(readers)}")
    if answer_kind not in ANSWER_KINDS:
        raise DataError(f"answer_kind={answer_kind!r}: expected one of {', '.join(ANSWER_KINDS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")

    def parse(row: dict[str, Any], index: int) -> Problem:
        if row[question] is None:  # str(None) would become the text "None"
            raise ValueError(f"field {question!r} is null")
        text = readers[gold](gold_text(row[answer], answer))
        if text is None:
            raise KeyError(f"no gold answer in field {answer!r}")
        if not text.strip():  # every prediction would be graded wrong against it
            raise ValueError(f"empty gold answer in field {answer!r}")
        key = str(row[id]) if id else f"{index:04d}"
        lvl = row.get(level) if level else None
        return Problem(
            f"{name}/file/{key}", name, "file", str(row[question]), text,
            subject_slug(str(row[subject])) if subject and row.get(subject) else None,
            int(lvl) if isinstance(lvl, int) or (isinstance(lvl, str) and lvl.isdigit()) else None, answer_kind,
        )  # fmt: skip

    return list(_parse_lines(path, parse))


def smoke() -> list[Problem]:
    """About twenty short problems written for this project; a first run needs no download."""
    return load("smoke")
