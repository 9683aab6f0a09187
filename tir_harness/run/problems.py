"""Benchmark problems: loaders for the public math datasets, a field-mapped JSONL loader, the smoke set.

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
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from tir_harness.grading.boxed import last_boxed
from tir_harness.records.jsonl import JsonlError, read_objects
from tir_harness.run.benchmarks_data import BENCHMARKS
from tir_harness.util.text import exception_line as _first_line


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

    @property
    def param_id(self) -> str:
        """The test id inside the brackets: `test_math[algebra-1]`, `test_gsm8k[0007]`.

        A split other than the test split is named in it (`test_gsm8k[train-0007]`), so that a train run's
        test ids never equal a test run's (`--lf`, junit, baselines).
        """
        key = self.id.split("/", 2)[2].replace("/", "-")
        return key if self.split in ("test", "file") else f"{self.split}-{key}"


Parser = Callable[[dict[str, Any], int, str], Problem]


def _gsm8k(row: dict[str, Any], index: int, split: str) -> Problem:
    answer = _gold_text(row["answer"], "answer").rsplit("####", 1)
    if len(answer) != 2:
        raise KeyError("answer has no '####'")
    return Problem(f"gsm8k/{split}/{index:04d}", "gsm8k", split, row["question"], answer[1].strip())


def _math(dataset: str) -> Parser:
    def parse(row: dict[str, Any], index: int, split: str) -> Problem:
        # unique_id looks like "test/algebra/1.json"; the hub copy of MATH has none, so fall back to order.
        unique = row.get("unique_id") or f"{split}/{_subject_slug(row['type'])}/{index}.json"
        _, subject, name = unique.removesuffix(".json").split("/")
        gold = _gold_text(row["answer"], "answer") if "answer" in row else last_boxed(row["solution"])
        if gold is None:
            raise KeyError("solution has no \\boxed{} answer")
        level = row.get("level")
        if isinstance(level, str):
            digits = level.removeprefix("Level ").strip()
            level = int(digits) if digits.isdigit() else None
        return Problem(f"{dataset}/{split}/{subject}/{name}", dataset, split, row["problem"], gold, subject, level)

    return parse


def _subject_slug(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.lower().replace("&", "and")).strip("_")


def _gold_text(value: Any, field: str) -> str:
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


def _svamp(row: dict[str, Any], index: int, split: str) -> Problem:
    question = f"{row['Body'].strip()} {row['Question'].strip()}"
    return Problem(f"svamp/{split}/{row['ID']}", "svamp", split, question, _gold_text(row["Answer"], "Answer"))


def _gsm_hard(row: dict[str, Any], index: int, split: str) -> Problem:
    gold = _gold_text(row["target"], "target")
    return Problem(f"gsm_hard/{split}/{index:04d}", "gsm_hard", split, row["input"], gold)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    splits: tuple[str, ...]
    parse: Parser
    hub_path: str
    hub_config: str | None = None
    hub_split: dict[str, str] | None = None  # our split name -> the hub's, where they differ


DATASETS: dict[str, DatasetSpec] = {
    "gsm8k": DatasetSpec("gsm8k", ("test", "train"), _gsm8k, "openai/gsm8k", "main"),
    "math": DatasetSpec("math", ("test", "train"), _math("math"), "EleutherAI/hendrycks_math"),
    "math500": DatasetSpec("math500", ("test",), _math("math500"), "HuggingFaceH4/MATH-500"),
    "svamp": DatasetSpec("svamp", ("test",), _svamp, "ChilleD/SVAMP"),
    "gsm_hard": DatasetSpec("gsm_hard", ("test",), _gsm_hard, "reasoning-machines/gsm-hard", None, {"test": "train"}),
    **{b.name: DatasetSpec(b.name, ("test",), b.parse, b.hub_path, b.hub_config, b.hub_split) for b in BENCHMARKS},
}
_MATH_SUBJECTS = (
    "algebra", "counting_and_probability", "geometry", "intermediate_algebra",
    "number_theory", "prealgebra", "precalculus",
)  # fmt: skip


def splits(dataset: str) -> tuple[str, ...]:
    """The splits a dataset has (`smoke` has one, named test)."""
    if dataset == "smoke":
        return ("test",)
    spec = DATASETS.get(dataset)
    if spec is None:
        raise DataError(f"unknown dataset {dataset!r}; known: smoke, {', '.join(DATASETS)}")
    return spec.splits


def load(dataset: str, split: str = "test", *, data_dir: Path | None = None) -> list[Problem]:
    """All problems of one dataset split, in the dataset's order."""
    if dataset == "smoke":
        return smoke()
    spec = DATASETS.get(dataset)
    if spec is None:
        raise DataError(f"unknown dataset {dataset!r}; known: smoke, {', '.join(DATASETS)}")
    if split not in spec.splits:
        raise DataError(f"dataset {dataset} has no split {split!r}; it has {', '.join(spec.splits)}")
    looked = []
    if data_dir is not None:
        path = data_dir / dataset / f"{split}.jsonl"
        if path.is_file():
            return _load_file(path, split, spec.parse)
        looked.append(str(path))
    if f"{dataset}/{split}" in shipped():
        return _load_shipped(dataset, split)
    looked.append("the copies shipped with tir-harness (test splits only)")
    try:
        rows = _hub_rows(spec, split)
    except Exception as exc:  # any hub failure ends in the same one-line message
        looked.append(f"the Hugging Face hub ({spec.hub_path}: {_first_line(exc)})")
        raise DatasetNotFound(
            f"dataset {dataset}/{split} not found; looked in {', '.join(looked)}. "
            "Point --data-dir or TIR_DATA_DIR at a folder holding <dataset>/<split>.jsonl"
        ) from exc
    return [spec.parse(row, i, split) for i, row in enumerate(rows)]


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
def _load_shipped(dataset: str, split: str) -> list[Problem]:
    # Cached: collection asks once per test function; 9,160 problems decompress and parse in well under 1 s.
    name = f"{dataset}/{split}"
    raw = shipped_bytes(name)
    parse = DATASETS[dataset].parse
    label = DATA / shipped()[name]["file"]
    rows = (
        (lineno, json.loads(line)) for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1) if line.strip()
    )
    return list(_parse_lines(label, lambda row, i: parse(row, i, split), rows))


@lru_cache(maxsize=32)
def _load_file(path: Path, split: str, parse: Parser) -> list[Problem]:
    # Cached: the same file is parsed once even when several test functions use it.
    return list(_parse_lines(path, lambda row, i: parse(row, i, split)))


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


def _hub_rows(spec: DatasetSpec, split: str) -> list[dict[str, Any]]:
    if not _hub_offline():  # offline: `datasets` answers from its cache at once, or fails at once
        reason = _hub_unreachable(spec.hub_path)
        if reason is not None:
            raise ConnectionError(reason)
    try:
        import datasets  # optional: only needed for what is neither in the data folder nor shipped
    except ImportError:
        raise ImportError("the `datasets` package is not installed (pip install datasets)") from None

    hub_split = (spec.hub_split or {}).get(split, split)
    if spec.name == "math":
        rows: list[dict[str, Any]] = []
        for subject in _MATH_SUBJECTS:
            part = datasets.load_dataset(spec.hub_path, subject, split=hub_split)
            rows.extend({**row, "unique_id": f"{split}/{subject}/{i}.json"} for i, row in enumerate(part))
        return rows
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
) -> list[Problem]:
    """Problems from any JSONL file, given which field holds what.

    `gold` says how to read the answer field: "plain" (as is), "boxed" (last \\boxed{} of a solution) or
    "####" (text after the last ####, GSM8K style).
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
    if not path.is_file():
        raise DataError(f"{path}: no such file")

    def parse(row: dict[str, Any], index: int) -> Problem:
        if row[question] is None:  # str(None) would become the text "None"
            raise ValueError(f"field {question!r} is null")
        text = readers[gold](_gold_text(row[answer], answer))
        if text is None:
            raise KeyError(f"no gold answer in field {answer!r}")
        if not text.strip():  # every prediction would be graded wrong against it
            raise ValueError(f"empty gold answer in field {answer!r}")
        key = str(row[id]) if id else f"{index:04d}"
        lvl = row.get(level) if level else None
        return Problem(
            f"{name}/file/{key}", name, "file", str(row[question]), text,
            _subject_slug(str(row[subject])) if subject and row.get(subject) else None,
            int(lvl) if isinstance(lvl, int) or (isinstance(lvl, str) and lvl.isdigit()) else None,
        )  # fmt: skip

    return list(_parse_lines(path, parse))


def smoke() -> list[Problem]:
    """About twenty short problems written for this project; a first run needs no download."""
    shipped_bytes("smoke/test")  # checked against the manifest like the benchmark copies
    with resources.as_file(DATA / shipped()["smoke/test"]["file"]) as path:
        return load_jsonl(path, id="id", dataset="smoke")
