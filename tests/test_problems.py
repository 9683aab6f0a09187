"""Dataset loaders: gold answers, stable ids, errors that name the file and line."""

import json
import time

import pytest

from tir_harness.grading.boxed import last_boxed
from tir_harness.run import problems
from tir_harness.run.problems import DataError, DatasetNotFound, load, load_jsonl, smoke


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{2}$ and then $\boxed{10}$.", "10"),
        (r"$1+\dfrac{2}{7}=\boxed{\dfrac{9}{7}}$.", r"\dfrac{9}{7}"),
        (r"our answer is $\boxed 2$.", "2"),
        (r"x^2 + y^2 = \boxed 9.", "9"),
        (r"the answer is \fbox{A}", "A"),
        (r"there are $\boxed{}$ primes", ""),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\frac{1}{2}", None),  # unterminated
        ("no box here", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("dataset", "count"),
    [("gsm8k", 1319), ("math", 5000), ("math500", 500), ("svamp", 1000), ("gsm_hard", 1319)],
)
def test_every_shipped_test_split_loads_with_unique_ids(dataset, count):
    problems = load(dataset, "test")  # no data folder: the copy shipped in the package
    assert len(problems) == count
    assert len({p.id for p in problems}) == count
    assert all(p.question and p.answer.strip() and p.dataset == dataset and p.split == "test" for p in problems)


def test_gold_answers_follow_the_data_readme():
    math = {p.id: p for p in load("math", "test")}
    assert math["math/test/algebra/1"].answer == "2"
    assert math["math/test/algebra/1"].subject == "algebra" and math["math/test/algebra/1"].level == 3
    assert math["math/test/algebra/1001"].answer == r"\dfrac{9}{7}"
    assert math["math/test/algebra/1023"].answer == "10"  # several boxes: the last
    gsm = load("gsm8k", "test")
    assert gsm[0].answer == "18" and gsm[146].answer == "2,125"
    assert gsm[7].id == "gsm8k/test/0007" and gsm[7].param_id == "0007"
    svamp = load("svamp", "test")
    assert svamp[0].answer == "145" and svamp[0].id == "svamp/test/chal-777"
    assert svamp[0].question.startswith("There are 87 oranges") and svamp[0].question.endswith("bananas?")
    math500 = load("math500", "test")
    assert math500[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert {p.id.replace("math500/", "math/") for p in math500} <= set(math)
    hard = load("gsm_hard", "test")
    assert hard[0].id == "gsm_hard/test/0000" and hard[0].answer == "-9867630"  # target -9867630.0


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_train_splits_come_from_the_data_folder_with_their_own_ids(tmp_path):
    # Train splits are not shipped: a data folder (or the hub) has them. The rows below carry the traps of the
    # upstream MATH train file: `\boxed 2` without braces, an empty box, "Level ?".
    _write(tmp_path / "math" / "train.jsonl", [
        {"problem": "p1", "level": "Level 2", "type": "Algebra", "solution": r"so $\boxed 2$.",
         "unique_id": "train/algebra/24014.json"},
        {"problem": "p2", "level": "Level ?", "type": "Number Theory", "solution": r"there are $\boxed{}$",
         "unique_id": "train/number_theory/7115.json"},
    ])  # fmt: skip
    _write(tmp_path / "gsm8k" / "train.jsonl", [{"question": "q", "answer": "x #### 7"}])
    train = {p.id: p for p in load("math", "train", data_dir=tmp_path)}
    assert train["math/train/algebra/24014"].answer == "2"
    assert train["math/train/number_theory/7115"].answer == ""
    assert train["math/train/number_theory/7115"].level is None
    (gsm,) = load("gsm8k", "train", data_dir=tmp_path)
    assert (gsm.id, gsm.split, gsm.answer) == ("gsm8k/train/0000", "train", "7")
    assert gsm.param_id == "train-0000"  # a train run's test ids never equal a test run's
    assert len(load("gsm8k", "test", data_dir=tmp_path)) == 1319  # what the folder lacks comes from the package


def test_a_data_folder_overrides_the_shipped_copy(tmp_path):
    _write(tmp_path / "svamp" / "test.jsonl", [
        {"ID": "x-1", "Body": "Ann has 2 pens.", "Question": "How many?", "Answer": 2.0},
    ])  # fmt: skip
    (only,) = load("svamp", "test", data_dir=tmp_path)
    assert (only.id, only.question, only.answer) == ("svamp/test/x-1", "Ann has 2 pens. How many?", "2")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (True, "true"),
     ([1, 2], "[1, 2]"), ({"a": 1}, '{"a": 1}')],
)  # fmt: skip
def test_a_gold_that_is_neither_a_string_nor_a_finite_number_names_the_file_and_line(tmp_path, value, shown):
    # Python's JSON reader accepts NaN and Infinity; taken as text ("nan", "True") they would be graded against.
    fine = {"ID": "a", "Body": "b", "Question": "q", "Answer": 3.0}
    _write(tmp_path / "svamp" / "test.jsonl", [fine, {**fine, "ID": "z", "Answer": value}])

    def rule(field: str) -> str:
        return f"gold answer in field {field!r} is {shown}: not a string or a finite number"

    with pytest.raises(DataError) as caught:
        load("svamp", "test", data_dir=tmp_path)
    assert str(caught.value).endswith(f"test.jsonl:2: cannot read this problem (ValueError: {rule('Answer')})")
    path = _write(tmp_path / "mine.jsonl", [{"question": "q", "answer": "1"}, {"question": "q", "answer": value}])
    with pytest.raises(DataError) as caught:
        load_jsonl(path)
    assert str(caught.value) == f"{path}:2: cannot read this problem (ValueError: {rule('answer')})"
    _write(tmp_path / "math" / "test.jsonl", [{"problem": "p", "type": "Algebra", "answer": value}])
    with pytest.raises(DataError, match=r"test\.jsonl:1: cannot read this problem \(ValueError: gold answer in field"):
        load("math", "test", data_dir=tmp_path)


def test_numbers_as_gold_answers_still_read_as_text(tmp_path):
    path = _write(tmp_path / "mine.jsonl", [{"question": "q", "answer": a} for a in (6.0, 2.5, -3, "x")])
    assert [p.answer for p in load_jsonl(path)] == ["6", "2.5", "-3", "x"]


def test_smoke_set_ships_with_the_package():
    problems = smoke()
    assert 20 <= len(problems) <= 25
    assert len({p.param_id for p in problems}) == len(problems)
    assert all(p.answer for p in problems)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "gsm8k" / "test.jsonl"
    path.parent.mkdir()
    good = json.dumps({"question": "q", "answer": "x #### 1"})
    path.write_text(f"{good}\n{good}\n{{not json\n")
    with pytest.raises(DataError, match=r"test\.jsonl:3: not valid JSON"):
        load("gsm8k", "test", data_dir=tmp_path)
    path.write_text(f"{good}\n" + json.dumps({"question": "q", "answer": "no marker"}) + "\n")
    with pytest.raises(DataError, match=r"test\.jsonl:2: cannot read this problem.*####"):
        load("gsm8k", "test", data_dir=tmp_path)


def test_missing_dataset_says_where_it_looked(tmp_path, closed_hub):
    with pytest.raises(DatasetNotFound) as info:
        load("gsm8k", "train", data_dir=tmp_path)  # not shipped, not in the folder, and the hub refuses
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "gsm8k" / "train.jsonl") in message and "openai/gsm8k" in message
    assert "shipped" in message


@pytest.fixture
def hub(closed_hub, monkeypatch):
    """The refusing hub of `closed_hub`, no answer cached from another test, and a short probe."""
    monkeypatch.setattr(problems, "_hub_probe", {})
    monkeypatch.setattr(problems, "HUB_PROBE_SECONDS", 1.0)
    return closed_hub


def test_a_hub_that_refuses_is_one_line_at_once(hub, tmp_path):
    listener, endpoint = hub  # bound but not listening: connections are refused
    started = time.monotonic()
    with pytest.raises(DatasetNotFound) as info:
        load("math", "train", data_dir=tmp_path)
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert "\n" not in message and f"{endpoint} unreachable" in message and "HF_HUB_OFFLINE=1" in message


def test_a_hub_that_never_answers_is_one_line_in_seconds(hub, tmp_path):
    listener, endpoint = hub
    listener.listen(8)  # connections are taken into the backlog and never answered
    started = time.monotonic()
    with pytest.raises(DatasetNotFound) as info:
        load("gsm8k", "train", data_dir=tmp_path)
    assert time.monotonic() - started < 1.0 + 3  # HUB_PROBE_SECONDS, plus slack for a busy machine
    assert "\n" not in str(info.value) and "unreachable" in str(info.value)
    started = time.monotonic()
    with pytest.raises(DatasetNotFound):
        load("math", "train", data_dir=tmp_path)  # the answer is remembered: no second wait
    assert time.monotonic() - started < 0.5


def test_shipped_data_never_asks_the_hub(monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(problems, "_hub_rows", no_hub)
    monkeypatch.setattr(problems, "_hub_unreachable", no_hub)
    for dataset in ("gsm8k", "math", "math500", "svamp", "gsm_hard", "smoke"):
        assert load(dataset, "test")


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="unknown dataset 'mathh'"):
        load("mathh")
    with pytest.raises(DataError, match="math500 has no split 'train'"):
        load("math500", "train")


def test_any_jsonl_with_a_field_mapping(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"q": "1+1?", "sol": r"It is \boxed{2}.", "uid": "a", "topic": "Number Theory", "lvl": "3"},
        {"q": "2+2?", "sol": r"\boxed{4}", "uid": "b", "topic": "Algebra", "lvl": 5},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = load_jsonl(path, question="q", answer="sol", id="uid", subject="topic", level="lvl", gold="boxed")
    assert [(p.id, p.answer, p.subject, p.level) for p in problems] == [
        ("mine/file/a", "2", "number_theory", 3),
        ("mine/file/b", "4", "algebra", 5),
    ]
    with pytest.raises(DataError, match=r"mine\.jsonl:1: .*'answer'"):
        load_jsonl(path, question="q")


BENCHMARKS = {
    "test_gsm8k": '@pytest.mark.tir_dataset("gsm8k", split="test")\ndef test_gsm8k(problem):\n    pass\n',
    "test_svamp": '@pytest.mark.tir_dataset("svamp", split="test")\ndef test_svamp(problem):\n    pass\n',
}


def test_split_train_runs_the_train_split_and_deselects_datasets_without_one(pytester, tmp_path, monkeypatch):
    monkeypatch.setattr(problems, "_hub_rows", lambda *a: pytest.fail("the hub was asked"))
    pytester.makepyfile(**{name: "import pytest\n\n" + body for name, body in BENCHMARKS.items()})
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(3)]
    _write(tmp_path / "data" / "gsm8k" / "train.jsonl", rows)
    result = pytester.runpytest("--collect-only", "-q", "--split=train", f"--data-dir={tmp_path / 'data'}")
    assert result.ret == pytest.ExitCode.OK
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected == [f"test_gsm8k.py::test_gsm8k[train-000{i}]" for i in range(3)]
    result.stdout.fnmatch_lines(["3/4 tests collected (1 deselected)*"])  # svamp has no train split
