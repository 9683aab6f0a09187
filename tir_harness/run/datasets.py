"""Datasets: one registry of name -> `Dataset`, everything that lists datasets derives from it.

A `Dataset` says how its rows become `Problem`s (the parser, which applies the gold rule), which splits it has,
the pytest markers its problems carry (the dataset's own name, plus subjects, levels, ...), the kind of its
answers (`number` or `expression`: the grader's fallback differs, grading/extraction.py), its licence, whether
its test split ships inside the package, and where the hub keeps it.  The plugin's markers, `--split`
validation, the benchmark files (`benchmarks/test_<name>.py`, one line each) and the README's data table are
derived from (or checked against) this registry.

Add one in a file of your own (docs/extending.md, "Add a dataset"):

    from tir_harness import Dataset, Problem, register_dataset

    def parse(row, index, split):
        return Problem(f"aime24/{split}/{row['id']}", "aime24", split, row["problem"], str(row["answer"]))

    register_dataset(Dataset("aime24", ("test",), parse, "AIME 2024", "the integer answer", answer_kind="number"))

then point `--data-dir` at a folder holding `aime24/test.jsonl`, or set `hub_path`.  Third-party packages may use
the entry-point group `tir_harness.datasets` instead (util/registry.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tir_harness.grading import ANSWER_KINDS
from tir_harness.grading.boxed import last_boxed
from tir_harness.run.problems import Parser, Problem, gold_text, load_jsonl, shipped, shipped_bytes, subject_slug
from tir_harness.util.registry import Registry

__all__ = ["DATASETS", "Dataset", "get_dataset", "register_dataset"]

HubRows = Callable[["Dataset", str, Any], list[dict[str, Any]]]  # (dataset, hub split, the `datasets` module)
Loader = Callable[[str, "Path | None"], list[Problem]]  # (split, data folder) -> problems


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (loaders cache on it; `markers` is a mapping)
class Dataset:
    name: str
    splits: tuple[str, ...]
    parse: Parser | None  # (row, index, split) -> Problem, applying the gold rule; None with `load`
    description: str  # one line: what the problems are
    gold: str  # one line: where the gold answer comes from (the gold rule)
    answer_kind: str = "expression"  # grading.ANSWER_KINDS: how a response without a marked answer is read
    markers: Mapping[str, str] = field(default_factory=dict)  # further markers its problems carry -> help
    licence: str = ""
    shipped: bool = False  # its test split ships inside the package (run/data/manifest.json)
    hub_path: str | None = None
    hub_config: str | None = None
    hub_split: Mapping[str, str] = field(default_factory=dict)  # our split name -> the hub's, where they differ
    hub_rows: HubRows | None = None  # how the hub's rows are read, when one load_dataset call is not enough
    load: Loader | None = None  # replaces the whole lookup (data folder, shipped copy, hub): the smoke set

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(f"Dataset {self.name!r}: no splits")
        if self.answer_kind not in ANSWER_KINDS:
            kinds = ", ".join(ANSWER_KINDS)
            raise ValueError(f"Dataset {self.name!r}: answer_kind must be one of {kinds}, got {self.answer_kind!r}")
        if not callable(self.parse if self.load is None else self.load):
            raise TypeError(f"Dataset {self.name!r}: parse (or load) must be callable")
        object.__setattr__(self, "markers", MappingProxyType(dict(self.markers)))
        object.__setattr__(self, "hub_split", MappingProxyType(dict(self.hub_split)))

    def marker_help(self) -> dict[str, str]:
        """Every marker its problems may carry -> its help line (the dataset's name first)."""
        return {self.name: f"problems of the {self.name} dataset ({self.description})", **self.markers}


DATASETS: Registry[Dataset] = Registry("dataset", "tir_harness.datasets", accepts=Dataset)


def register_dataset(dataset: Dataset) -> Dataset:
    """Add a dataset under its name (a duplicate name is a one-line RegistryError)."""
    return DATASETS.register(dataset.name, dataset)


def get_dataset(name: str) -> Dataset:
    """The dataset called `name`; RegistryError (one line, naming the known datasets) for an unknown name."""
    return DATASETS.get(name)


def answer_kind(dataset: str | None) -> str:
    """The answer kind of a dataset by name; a name no registered dataset has (a JSONL file's) reads as an
    expression."""
    entry = DATASETS._all().get(dataset or "")  # noqa: SLF001 - a lookup that must not raise
    return entry.answer_kind if entry is not None else "expression"


# -- the built-in datasets ---------------------------------------------------------------------------------------


def _gsm8k(row: dict[str, Any], index: int, split: str) -> Problem:
    answer = gold_text(row["answer"], "answer").rsplit("####", 1)
    if len(answer) != 2:
        raise KeyError("answer has no '####'")
    return Problem(f"gsm8k/{split}/{index:04d}", "gsm8k", split, row["question"], answer[1].strip())


def _math(dataset: str) -> Parser:
    def parse(row: dict[str, Any], index: int, split: str) -> Problem:
        # unique_id looks like "test/algebra/1.json"; the hub copy of MATH has none, so fall back to order.
        unique = row.get("unique_id") or f"{split}/{subject_slug(row['type'])}/{index}.json"
        _, subject, name = unique.removesuffix(".json").split("/")
        gold = gold_text(row["answer"], "answer") if "answer" in row else last_boxed(row["solution"])
        if gold is None:
            raise KeyError("solution has no \\boxed{} answer")
        level = row.get("level")
        if isinstance(level, str):
            digits = level.removeprefix("Level ").strip()
            level = int(digits) if digits.isdigit() else None
        return Problem(f"{dataset}/{split}/{subject}/{name}", dataset, split, row["problem"], gold, subject, level)

    return parse


def _svamp(row: dict[str, Any], index: int, split: str) -> Problem:
    question = f"{row['Body'].strip()} {row['Question'].strip()}"
    return Problem(f"svamp/{split}/{row['ID']}", "svamp", split, question, gold_text(row["Answer"], "Answer"))


def _gsm_hard(row: dict[str, Any], index: int, split: str) -> Problem:
    gold = gold_text(row["target"], "target")
    return Problem(f"gsm_hard/{split}/{index:04d}", "gsm_hard", split, row["input"], gold)


MATH_SUBJECTS = (
    "algebra", "counting_and_probability", "geometry", "intermediate_algebra",
    "number_theory", "prealgebra", "precalculus",
)  # fmt: skip
MATH_MARKERS = {
    **{f"level{n}": f"MATH difficulty level {n}" for n in range(1, 6)},
    **{subject: f"MATH subject {subject}" for subject in MATH_SUBJECTS},
}


def _math_hub_rows(dataset: Dataset, hub_split: str, datasets: Any) -> list[dict[str, Any]]:
    # The hub's MATH is one configuration per subject; ids follow the order within each subject.
    rows: list[dict[str, Any]] = []
    for subject in MATH_SUBJECTS:
        part = datasets.load_dataset(dataset.hub_path, subject, split=hub_split)
        rows.extend({**row, "unique_id": f"{hub_split}/{subject}/{i}.json"} for i, row in enumerate(part))
    return rows


def _smoke(split: str, data_dir: Path | None) -> list[Problem]:
    """About twenty short problems written for this project; a first run needs no download."""
    from importlib import resources

    from tir_harness.run.problems import DATA

    shipped_bytes("smoke/test")  # checked against the manifest like the benchmark copies
    with resources.as_file(DATA / shipped()["smoke/test"]["file"]) as path:
        return load_jsonl(path, id="id", dataset="smoke")


for _dataset in (
    Dataset("gsm8k", ("test", "train"), _gsm8k, "grade-school word problems", "the number after '####'",
            answer_kind="number", licence="MIT", shipped=True, hub_path="openai/gsm8k", hub_config="main"),
    Dataset("math", ("test", "train"), _math("math"), "competition problems, 7 subjects, levels 1-5",
            "the `answer` field, else the solution's last \\boxed{}", markers=MATH_MARKERS, licence="MIT",
            shipped=True, hub_path="EleutherAI/hendrycks_math", hub_rows=_math_hub_rows),
    Dataset("math500", ("test",), _math("math500"), "the PRM800K subset of MATH test", "the `answer` field",
            markers=MATH_MARKERS, licence="MIT", shipped=True, hub_path="HuggingFaceH4/MATH-500"),
    Dataset("svamp", ("test",), _svamp, "word problems with varied structure", "the `Answer` number",
            answer_kind="number", licence="MIT", shipped=True, hub_path="ChilleD/SVAMP"),
    Dataset("gsm_hard", ("test",), _gsm_hard, "GSM8K with larger numbers", "the `target` number",
            answer_kind="number", licence="MIT", shipped=True, hub_path="reasoning-machines/gsm-hard",
            hub_split={"test": "train"}),
    Dataset("smoke", ("test",), None, "short problems written for this project, some need code",
            "the `answer` field", licence="Apache-2.0", shipped=True, load=_smoke),
):  # fmt: skip
    register_dataset(_dataset)

# The benchmarks of today's papers (AIME, AMC, Minerva, OlympiadBench, ...) register themselves from their module,
# which needs `Dataset` and `register_dataset` above: imported last.
from tir_harness.run import benchmarks_data as _benchmarks_data  # noqa: E402, F401
