"""Dataset loaders: gold answers, stable ids, errors that name the file and line."""

import json

import pytest

from tir_harness.grading.boxed import last_boxed
from tir_harness.run.problems import DataError, load, load_jsonl, smoke


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
    ("dataset", "split", "count"),
    [("gsm8k", "test", 1319), ("gsm8k", "train", 7473), ("math", "test", 5000), ("math", "train", 7500),
     ("math500", "test", 500), ("svamp", "test", 1000), ("gsm_hard", "test", 1319)],
)  # fmt: skip
def test_every_dataset_loads_with_unique_ids(shared_data, dataset, split, count):
    problems = load(dataset, split, data_dir=shared_data)
    assert len(problems) == count
    assert len({p.id for p in problems}) == count
    assert all(p.question and p.dataset == dataset and p.split == split for p in problems)


def test_gold_answers_follow_the_data_readme(shared_data):
    math = {p.id: p for p in load("math", "test", data_dir=shared_data)}
    assert math["math/test/algebra/1"].answer == "2"
    assert math["math/test/algebra/1"].subject == "algebra" and math["math/test/algebra/1"].level == 3
    assert math["math/test/algebra/1001"].answer == r"\dfrac{9}{7}"
    assert math["math/test/algebra/1023"].answer == "10"  # several boxes: the last
    train = {p.id: p for p in load("math", "train", data_dir=shared_data)}
    assert train["math/train/algebra/24014"].answer == "2"  # \boxed 2
    assert train["math/train/number_theory/7115"].answer == ""
    assert sum(p.level is None for p in train.values()) == 2  # "Level ?"
    gsm = load("gsm8k", "test", data_dir=shared_data)
    assert gsm[0].answer == "18" and gsm[146].answer == "2,125"
    assert gsm[7].id == "gsm8k/test/0007" and gsm[7].param_id == "0007"
    svamp = load("svamp", "test", data_dir=shared_data)
    assert svamp[0].answer == "145" and svamp[0].id == "svamp/test/chal-777"
    assert svamp[0].question.startswith("There are 87 oranges") and svamp[0].question.endswith("bananas?")
    math500 = load("math500", "test", data_dir=shared_data)
    assert math500[0].answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert {p.id.replace("math500/", "math/") for p in math500} <= set(math)


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


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load("svamp", "test", data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "svamp" / "test.jsonl") in message and "ChilleD/SVAMP" in message


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
