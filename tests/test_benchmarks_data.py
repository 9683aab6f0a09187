"""The newer benchmarks (registered by run/benchmarks_data.py): gold rules and markers on real rows of each set.

The rows are upstream's, copied unchanged into tests/data/benchmarks/ (rows.jsonl: the set, the row's 0-based
position in the upstream file, the row) or read from the package's shipped copy; nothing here reads a data
folder of the machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tir_harness.grading import Answer
from tir_harness.plugin.benchmark import file_text
from tir_harness.plugin.hooks import markers
from tir_harness.run import problems
from tir_harness.run.benchmarks_data import BENCHMARKS, repair_escapes
from tir_harness.run.datasets import DATASETS
from tir_harness.run.problems import DatasetNotFound, load, shipped
from tir_harness.run.prompts import PROMPT_TYPES, first_messages

HERE = Path(__file__).resolve().parent
ROWS = [json.loads(line) for line in (HERE / "data" / "benchmarks" / "rows.jsonl").read_text("utf-8").splitlines()]
REPO = HERE.parent
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


def _parsed(dataset: str, index: int) -> problems.Problem:
    (entry,) = [e for e in ROWS if e["dataset"] == dataset and e["index"] == index]
    return DATASETS[dataset].parse(entry["row"], index, "test")


@pytest.mark.parametrize(
    ("dataset", "index", "pid", "gold", "subject", "right", "wrong"),
    [
        ("aime24", 0, "aime24/test/60", "204", None, "204", "240"),
        ("aime25", 0, "aime25/test/00", "70", None, "70", "7"),
        ("amc23", 0, "amc23/test/00", "27", None, "27", "27.5"),  # answer 27.0
        ("amc23", 15, "amc23/test/17", "-1", None, "-1", "1"),  # answer -1.0
        # Minerva: the last box of the solution; a unit outside it, decimals and scientific notation.
        ("minerva_math", 0, "minerva_math/test/000", "1.6", "introduction_to_astronomy", r"1.6 \mathrm{~cm}", "16"),
        ("minerva_math", 1, "minerva_math/test/001", "4.5e33", "introduction_to_astronomy",
         r"4.5 \times 10^{33}", "4.5e32"),
        ("minerva_math", 2, "minerva_math/test/002", "41.8", "introduction_to_astronomy", r"41.8^{\circ}", "48.1"),
        ("college_math", 0, "college_math/test/0000", "10-4 n", "algebra", "10-4n", "10+4n"),
        ("college_math", 1, "college_math/test/0001", "(45,2),(-10,-9)", "algebra", "(45, 2), (-10, -9)", "(45,2)"),
        ("asdiv", 0, "asdiv/test/0000", "9", "addition", "9", "7"),  # "9 (apples)": the unit dropped
        ("asdiv", 75, "asdiv/test/0075", "Yes", "comparison", "Yes", "No"),
        ("asdiv", 849, "asdiv/test/0849", "5:6", "ratio", "5:6", "6:5"),
        ("mawps", 0, "mawps/test/0000", "43", "singleeq", "43", "34"),  # target 43.0
        ("mawps", 205, "mawps/test/0205", "11.5", "singleeq", "11.5", "11"),
    ],
)  # fmt: skip
def test_gold_rules_on_real_rows(dataset, index, pid, gold, subject, right, wrong):
    problem = _parsed(dataset, index)
    assert (problem.id, problem.answer, problem.subject) == (pid, gold, subject)
    assert problem.dataset == dataset and problem.question.strip()
    assert Answer(right) == problem.answer
    assert not Answer(wrong) == problem.answer


@pytest.mark.parametrize(
    ("index", "command", "gold"),
    [(18, r"\frac{\log_k", "106"), (19, r"$\triangle DEF$", "336"), (27, r"$\frac{m}{n}$", "248")],
)
def test_aime25_rows_with_a_form_feed_or_tab_render_and_grade(index, command, gold):
    (entry,) = [e for e in ROWS if e["dataset"] == "aime25" and e["index"] == index]
    assert CONTROL.search(entry["row"]["problem"]) or "\t" in entry["row"]["problem"]  # the upstream slip is there
    problem = _parsed("aime25", index)
    assert command in problem.question
    assert not CONTROL.search(problem.question) and "\t" not in problem.question
    # What the model is shown holds the LaTeX command, not the control character.
    (message,) = first_messages(problem.question, PROMPT_TYPES["tora"])
    assert command in message.content and "\x0c" not in message.content and "\t" not in message.content
    assert problem.answer == gold and Answer(gold) == problem.answer and not Answer("1" + gold) == problem.answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x0crac{m}{n}", r"\frac{m}{n}"),
        ("$\triangle ABC$", r"$\triangle ABC$"),
        ("\x08egin{cases}", r"\begin{cases}"),
        ("a\tb", "a\tb"),  # a real tab before a word is kept
        ("x\tand y", "x\tand y"),  # `\tan` only as a whole command
        ("\x0cresh", "\x0cresh"),
    ],
)
def test_repair_escapes_only_where_a_latex_command_was_meant(text, expected):
    assert repair_escapes(text) == expected


def test_olympiadbench_shipped_gold_rules():
    rows = {p.id.rsplit("/", 1)[1]: p for p in load("olympiadbench", "test")}
    assert len(rows) == 675
    assert rows["1664"].answer == "69,84" and Answer("69, 84") == rows["1664"].answer  # `$69$,$84$`
    assert rows["2253"].answer == "45" and Answer(r"45 \text{ minutes}") == rows["2253"].answer  # unit apart
    assert rows["1618"].answer == "(1,8,19), (2,7,13), (4,5,7)"
    assert rows["1606"].subject == "combinatorics" and rows["1606"].answer == "2"
    assert {p.subject for p in rows.values()} == {"algebra", "combinatorics", "geometry", "number_theory"}


def test_gaokao_rows_with_the_answer_in_the_question():
    rows = load("gaokao2023en", "test")
    assert len(rows) == 385 and rows[0].answer == r"\{x|-2\leq x < 1\}"
    saddle, sat = rows[167], rows[192]
    assert saddle.answer == r"\frac{3}{10}" and saddle.question.endswith("at least one saddle point.")
    assert sat.answer == "A" and "Answer" not in sat.question
    assert all(p.answer for p in rows)


def test_an_unshipped_set_without_data_is_one_line_naming_where_it_looked(tmp_path, closed_hub, monkeypatch):
    monkeypatch.setattr(problems, "_hub_probe", {})
    with pytest.raises(DatasetNotFound) as info:
        load("minerva_math", "test", data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "minerva_math" / "test.jsonl") in message
    assert "math-ai/minervamath" in message and "--data-dir" in message


def test_the_registered_sets_agree_with_the_manifest_the_benchmark_files_and_the_markers():
    declared = markers()
    for bench in BENCHMARKS:
        name = bench.name
        assert DATASETS[name] is bench
        assert (f"{name}/test" in shipped()) == bench.shipped, name
        if bench.shipped:
            assert shipped()[f"{name}/test"]["license"] == bench.licence
        assert (REPO / "benchmarks" / f"test_{name}.py").read_text("utf-8") == file_text(name)
        assert name in declared and all(m in declared for m in bench.markers)
    readme = (REPO / "tir_harness" / "run" / "data" / "README.md").read_text("utf-8")
    assert all(f"| {b.name} | {'yes' if b.shipped else 'no'} |" in readme for b in BENCHMARKS)
    # A marker several sets declare keeps each set's meaning in its help.
    assert declared["algebra"].split("; ") == [
        "CollegeMath topic algebra", "MATH subject algebra", "OlympiadBench subfield algebra"
    ]  # fmt: skip


def test_word_problem_sets_are_graded_as_numbers(tmp_path):
    """ASDiv and MAWPS answers are numbers: a response without a marked answer is read by its last number."""
    kinds = {b.name: b.answer_kind for b in BENCHMARKS}
    assert {name for name, kind in kinds.items() if kind == "number"} == {"asdiv", "mawps"}
    (tmp_path / "mawps").mkdir()
    rows = [e["row"] for e in ROWS if e["dataset"] == "mawps"]
    (tmp_path / "mawps" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    (problem, *_) = load("mawps", "test", data_dir=tmp_path)
    assert problem.answer_kind == "number" and problem.answer == "43"
