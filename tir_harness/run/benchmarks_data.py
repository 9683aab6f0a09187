"""The benchmarks of today's math-model papers (the Qwen2.5-Math evaluation suite and AIME 2025), registered datasets.

Every fact about one of these datasets lives in its `Dataset` (run/datasets.py): how a row of the upstream JSONL
becomes a `Problem` (question, gold answer, markers), the gold rule in words, the answer kind, the licence,
whether the package ships a copy and where the Hugging Face hub keeps one; they load like the older sets (a data
folder first, then the shipped copy, then the hub).  run/datasets.py imports this module, so the registry always
holds them.  Licences and the reason each set is or is not shipped: `tir_harness/run/data/README.md`.

Gold rules, as the sets publish their answers:
- AIME 2024/2025: `answer`, an integer 0-999 as a string.  AMC 2023: `answer`, a float (`27.0` reads as 27).
- Minerva Math: the last `\\boxed{}` of `solution` (a unit often follows it outside the box: `\\boxed{1.6} cm`).
- OlympiadBench: `final_answer[0]` with its `$` delimiters dropped (`$69$,$84$` -> `69,84`, several values of one
  answer); `unit` stays apart, as the grader reads `45 minutes` as 45.
- CollegeMath, Gaokao 2023 (English): `answer`, its `$` delimiters dropped.  Two Gaokao rows have an empty
  `answer` and end their question with `answers: ...` / `Answer: A`: that tail is their gold, cut from the question.
- ASDiv: `answer` without its unit in parentheses (`9 (apples)` -> `9`); words and times stay (`Yes`, `3:30 p.m.`).
- MAWPS: `target`, a float (`43.0` reads as 43).

A JSON-escaping slip upstream turned the backslash of `\\frac` into a form feed and that of `\\triangle` into a tab
in three AIME 2025 problems (`\\f` and `\\t` are JSON escapes); `repair_escapes` puts the command back, in every
set's question and gold, only where a LaTeX command name follows the control character.
"""

from __future__ import annotations

import re
from typing import Any

from tir_harness.grading.boxed import last_boxed
from tir_harness.run.datasets import Dataset, register_dataset
from tir_harness.run.problems import Problem, gold_text

# -- repairs and small readers ----------------------------------------------------------------------------------

# A control character where JSON's `\f`, `\t` or `\b` ate the backslash of a LaTeX command: repaired only when the
# letters after it complete a command name, so a real tab before a word stays a tab.
_EATEN = {
    "\x0c": ("f", r"rac|orall"),
    "\t": ("t", r"riangle|imes|heta|ext|frac|an|au|o|binom|op|ilde"),
    "\x08": ("b", r"eta|inom|ar|oxed|egin|mod|ot|igg|ig"),
}
_EATEN_RE = re.compile("|".join(f"{re.escape(c)}(?=(?:{names})(?![A-Za-z]))" for c, (_, names) in _EATEN.items()))


def repair_escapes(text: str) -> str:
    """`\\x0crac{m}{n}` -> `\\frac{m}{n}`, `$\\triangle` written as `$<tab>riangle` -> `$\\triangle`."""
    return _EATEN_RE.sub(lambda m: "\\" + _EATEN[m.group(0)][0], text)


def _undollar(text: str) -> str:
    """An answer without its math delimiters: `$\\frac{1}{2}$` -> `\\frac{1}{2}`, `$48$, $384$` -> `48, 384`."""
    return text.replace("$", "").strip()


_UNIT = re.compile(r"(.*?\S)\s*\([^()]*\)")


def _without_unit(text: str) -> str:
    """ASDiv's `9 (apples)` -> `9`; an answer that is only parentheses, or has none, is kept."""
    match = _UNIT.fullmatch(text.strip())
    return match.group(1) if match else text.strip()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower().replace("&", "and")).strip("_")


def _course(name: str) -> str:
    """Minerva's type `Introduction to Astronomy (8.282J Spring 2006)` -> `introduction_to_astronomy`."""
    return _slug(re.sub(r"\s*\([^()]*\)\s*$", "", name))


def _problem(
    dataset: str, split: str, key: str, question: Any, gold: str | None, subject: str | None = None
) -> Problem:
    if not isinstance(question, str):
        raise ValueError(f"question is {type(question).__name__}, not text")
    if gold is None or not gold.strip():
        raise ValueError("no gold answer")
    return Problem(
        f"{dataset}/{split}/{key}", dataset, split, repair_escapes(question), repair_escapes(gold.strip()), subject
    )


# -- the parsers: upstream row -> Problem -------------------------------------------------------------------------


def _aime24(row: dict[str, Any], index: int, split: str) -> Problem:
    return _problem("aime24", split, str(row["id"]), row["problem"], gold_text(row["answer"], "answer"))


def _aime25(row: dict[str, Any], index: int, split: str) -> Problem:
    # No id upstream: the position (0-29, I then II) names the problem; the README's rows 18, 19, 27 are these.
    key = str(row["id"]) if "id" in row else f"{index:02d}"
    return _problem("aime25", split, key, row["problem"], gold_text(row["answer"], "answer"))


def _amc23(row: dict[str, Any], index: int, split: str) -> Problem:
    key = f"{int(row['id']):02d}" if "id" in row else f"{index:02d}"
    question = row["problem"] if "problem" in row else row["question"]
    return _problem("amc23", split, key, question, gold_text(row["answer"], "answer"))


def _minerva(row: dict[str, Any], index: int, split: str) -> Problem:
    gold = last_boxed(row["solution"]) if "solution" in row else gold_text(row["answer"], "answer")
    if gold is None:
        raise KeyError("solution has no \\boxed{} answer")
    key = f"{int(row['idx']):03d}" if "idx" in row else f"{index:03d}"
    question = row["problem"] if "problem" in row else row["question"]
    subject = _course(row["type"]) if row.get("type") else None
    return _problem("minerva_math", split, key, question, gold, subject)


def _olympiadbench(row: dict[str, Any], index: int, split: str) -> Problem:
    answers = row["final_answer"]
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], str):
        raise ValueError("final_answer is not a list holding a text answer")
    question = row["question"]
    if row.get("context"):  # a shared preamble of a multi-part problem: part of the question
        question = f"{row['context']}\n{question}"
    subject = _slug(row["subfield"]) if row.get("subfield") else None
    return _problem("olympiadbench", split, str(row["id"]), question, _undollar(answers[0]), subject)


def _college_math(row: dict[str, Any], index: int, split: str) -> Problem:
    topic = str(row.get("data_topic") or "").removeprefix("college_math.")
    gold = _undollar(gold_text(row["answer"], "answer"))
    return _problem("college_math", split, f"{index:04d}", row["question"], gold, _slug(topic) or None)


_TRAILING_ANSWER = re.compile(r"(?s)(.*\S)\s*answers?:\s*(\S.*?)\s*", re.IGNORECASE)


def _gaokao2023en(row: dict[str, Any], index: int, split: str) -> Problem:
    question, gold = row["question"], _undollar(gold_text(row["answer"], "answer"))
    if not gold and isinstance(question, str):
        # Two rows (HMMT, SAT) have an empty `answer` and their answer at the end of the question ("...at least
        # one saddle point.answers: $\frac{3}{10}$"): the gold, taken out of what the model is shown.
        match = _TRAILING_ANSWER.fullmatch(question)
        if match:
            question, gold = match.group(1), _undollar(match.group(2))
    return _problem("gaokao2023en", split, f"{index:03d}", question, gold)


def _asdiv(row: dict[str, Any], index: int, split: str) -> Problem:
    question = f"{str(row['body']).strip()} {str(row['question']).strip()}"
    key = f"{int(row['idx']):04d}" if "idx" in row else f"{index:04d}"
    subject = _slug(row["solution_type"]) if row.get("solution_type") else None
    return _problem("asdiv", split, key, question, _without_unit(gold_text(row["answer"], "answer")), subject)


def _mawps(row: dict[str, Any], index: int, split: str) -> Problem:
    key = f"{int(row['idx']):04d}" if "idx" in row else f"{index:04d}"
    subject = _slug(row["type"]) if row.get("type") else None
    return _problem("mawps", split, key, row["input"], gold_text(row["target"], "target"), subject)


# -- the registrations ----------------------------------------------------------------------------------------------

_MINERVA_COURSES = (
    "differential_equations", "dynamics_and_control", "ecology_i", "information_and_entropy",
    "introduction_to_astronomy", "introduction_to_solid_state_chemistry", "physical_chemistry",
    "principles_of_microeconomics", "relativity",
)  # fmt: skip
_OLYMPIAD_SUBFIELDS = ("algebra", "combinatorics", "geometry", "number_theory")
_COLLEGE_TOPICS = (
    "algebra", "calculus", "differential_equation", "linear_algebra", "precalculus", "probability",
    "vector_calculus",
)  # fmt: skip
_ASDIV_TYPES = (
    "addition", "algebra_1", "algebra_2", "ceil_division", "common_division", "comparison", "difference",
    "floor_division", "gcd", "geometry", "lcm", "multiplication", "number_operation", "number_pattern", "ratio",
    "sequential_operation", "set_operation", "substraction", "subtraction", "sum", "surplus", "tvq_change",
    "tvq_final", "tvq_initial", "unittrans",
)  # fmt: skip
_MAWPS_PARTS = ("addsub", "multiarith", "singleeq", "singleop")


def _markers(kind: str, names: tuple[str, ...]) -> dict[str, str]:
    # A marker may be shared with another set's (algebra: MATH, OlympiadBench, CollegeMath): the help says whose.
    return {name: f"{kind} {name}" for name in names}


_MAA = "AIME/AMC problems (c) the MAA, no licence granted"

BENCHMARKS: tuple[Dataset, ...] = (
    Dataset("aime24", ("test",), _aime24, "AIME 2024 I and II, 30 problems",
            "`answer` (an integer 0-999, as text)", licence=f"{_MAA}; solutions from the AoPS wiki",
            hub_path="HuggingFaceH4/aime_2024", hub_split={"test": "train"}),
    Dataset("aime25", ("test",), _aime25, "AIME 2025 I and II, 30 problems",
            "`answer` (an integer 0-999, as text); form feed/tab slips repaired", licence=_MAA,
            hub_path="math-ai/aime25"),
    Dataset("amc23", ("test",), _amc23, "AMC 12 2023 A and B, 40 problems", "`answer`, a float (27.0 reads as 27)",
            licence=_MAA, hub_path="math-ai/amc23"),
    Dataset("minerva_math", ("test",), _minerva, "Minerva's MIT OpenCourseWare problems, 272",
            "last \\boxed{} of `solution` (units outside the box, decimals)",
            markers=_markers("Minerva course", _MINERVA_COURSES),
            licence="CC BY-NC-SA 4.0 (MIT OpenCourseWare)", hub_path="math-ai/minervamath"),
    Dataset("olympiadbench", ("test",), _olympiadbench,
            "OlympiadBench, open-ended text-only English maths competition problems, 675",
            "`final_answer[0]`, `$` dropped; `unit` apart",
            markers=_markers("OlympiadBench subfield", _OLYMPIAD_SUBFIELDS), licence="Apache-2.0",
            shipped=True, hub_path="Hothan/OlympiadBench", hub_config="OE_TO_maths_en_COMP",
            hub_split={"test": "train"}),
    Dataset("college_math", ("test",), _college_math, "CollegeMath (MathScale) test set, 2,818 problems",
            "`answer`, `$` dropped", markers=_markers("CollegeMath topic", _COLLEGE_TOPICS),
            licence="per row: CC BY 3.0, CC BY, CC BY-NC-SA 3.0/4.0, GFDL, a no-charge book licence",
            hub_path="math-ai/college_math"),
    Dataset("gaokao2023en", ("test",), _gaokao2023en, "Gaokao 2023 maths, English translation, 385 problems",
            "`answer`, `$` dropped (two rows: the question's `answer:` tail)", licence="MIT", shipped=True,
            hub_path="MARIO-Math-Reasoning/Gaokao2023-Math-En", hub_split={"test": "train"}),
    Dataset("asdiv", ("test",), _asdiv, "ASDiv word problems, 2,215", "`answer` without its unit in parentheses",
            answer_kind="number", markers=_markers("ASDiv solution type", _ASDIV_TYPES),
            licence="CC BY-NC 4.0", hub_path="EleutherAI/asdiv", hub_split={"test": "validation"}),
    Dataset("mawps", ("test",), _mawps, "MAWPS word problems, 2,065", "`target`, a float (43.0 reads as 43)",
            answer_kind="number", markers=_markers("MAWPS part", _MAWPS_PARTS),
            licence="none declared for the combined set (AddSub, SingleEq, SingleOp, MultiArith)",
            hub_path="MU-NLPC/Calc-mawps"),
)  # fmt: skip

for _dataset in BENCHMARKS:
    register_dataset(_dataset)
