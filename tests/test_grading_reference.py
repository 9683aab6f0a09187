"""The reference implementation's verdict (`reference_correct`): its environment, its cuts and normalisation,
its cost, and its agreement with the reference's own grader on recorded verdicts (docs/fidelity.md).

The recorded verdicts in tests/data/reference/ come from running the reference's grading code (ToRA's
`grader.py` and `parser.py`, sympy 1.12, antlr4-python3-runtime 4.11) outside this repository; only its inputs
and outputs are kept here (tests/data/reference/README.md).
"""

from __future__ import annotations

import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tir_harness.grading import grade, reference
from tir_harness.grading.reference import (
    REFERENCE_GRADER_VERSION,
    graded_text,
    latex_backend,
    math_equal,
    reference_gold,
    reference_verdict,
    strip_string,
)
from tir_harness.records.verdict import regraded
from tir_harness.run.problems import load

DATA = Path(__file__).parent / "data" / "reference"
INTEGRATE = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
LLAMA3_USER = "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
LLAMA3_ASSISTANT = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"


def _rows(name: str) -> list[dict[str, Any]]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# ------------------------------------------------------------------------------------ the LaTeX backend


@pytest.mark.parametrize(
    ("pred", "gold"),
    [("2,-3,4", "2"), ("1:1", "1"), ("4,-2+3i,-2-3i", "4")],  # antlr reads only the first item
)
def test_the_latex_backend_is_the_references_antlr(pred: str, gold: str) -> None:
    assert latex_backend() == "antlr"
    assert math_equal(pred, gold) is True


def test_without_antlr_411_the_verdict_says_lark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A runtime that cannot load stands in for a machine without antlr 4.11: the helper falls back to sympy's
    # lark parser and says so, and so does every verdict it gives (the summary's "reference-like (lark)").
    (tmp_path / "antlr4").mkdir()
    (tmp_path / "antlr4" / "__init__.py").write_text("raise ImportError('no antlr runtime here')\n")
    monkeypatch.setattr(reference, "_VENDOR", tmp_path)
    pool = reference._HelperPool(1)
    monkeypatch.setattr(reference, "_POOL", pool)
    monkeypatch.setattr(reference, "_SYMBOLIC_CACHE", type(reference._SYMBOLIC_CACHE)())
    try:
        verdict = reference_verdict("so \\boxed{2,-3,4}", "2")
    finally:
        pool.close()
    assert verdict.backend == "lark"
    assert verdict.correct is False  # lark reads the whole list: not the reference's verdict


def test_the_antlr_runtime_stays_out_of_the_harness_process() -> None:
    import sys

    mod = sys.modules.get("antlr4")
    assert mod is None or "_vendor" not in str(getattr(mod, "__file__", ""))


# --------------------------------------------------------------------------------- what is graded, gold


def test_llama3_is_cut_at_the_last_user_header() -> None:
    first = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ\n"
        + INTEGRATE
        + LLAMA3_ASSISTANT.removeprefix("<|eot_id|>")
    )
    turn = "```python\nprint(8)\n```"
    limited = first + turn + LLAMA3_USER + "```output\n8\n```" + LLAMA3_ASSISTANT + "\nReach max function call limit."
    # At the limit the reference reads the last ```output block (its cut is the user header before it).
    assert graded_text(limited, "llama3").startswith("```output\n8\n```")
    verdict = reference_verdict(limited, "8", prompt_format="llama3")
    assert (verdict.correct, verdict.prediction) == (True, "8")
    # The format is recognised from the conversation when the record does not name it.
    assert reference_verdict(limited, "8").correct is True
    answered = first + turn + LLAMA3_USER + "```output\n8\n```" + LLAMA3_ASSISTANT + "So \\boxed{9}."
    assert reference_verdict(answered, "9", prompt_format="llama3").prediction == "9"
    # Without a tool call the cut keeps the question and its instruction (whose `\boxed{}` is empty).
    plain = first + "It is 5."
    assert reference_verdict(plain, "5", prompt_format="llama3").prediction == ""


def test_gold_is_normalised_as_the_reference_did() -> None:
    # MATH: three strip_string passes (two in parse_ground_truth, one in evaluate), so `x \in [-2,7]` loses
    # its `x\in` and a right answer of [-2,7] passes; once, it would not.
    assert strip_string("x \\in [-2,7]") == "x\\in[-2,7]"
    assert reference_gold("x \\in [-2,7]", "math") == "[-2,7]"
    assert reference_verdict("So $\\boxed{[-2,7]}$.", "x \\in [-2,7]", dataset="math").correct is True
    assert reference_gold("10\\sqrt 2", "math") == "10\\sqrt{2}"
    # A MATH gold also went through extract_answer's tail: its first line only.
    assert reference_gold("90\\text{ square\nunits}", "math") == "90{square"
    # GSM8K and the other datasets: twice.
    assert reference_gold(" 1,000", "gsm8k") == "1,000"


def test_five_shipped_math_golds_change_with_three_passes() -> None:
    changed = {p.id for p in load("math") if strip_string(p.answer) != reference_gold(p.answer, "math")}
    assert changed == {
        "math/test/algebra/101",
        "math/test/algebra/1861",
        "math/test/intermediate_algebra/2169",
        "math/test/intermediate_algebra/78",
        "math/test/prealgebra/1879",
    }


# ------------------------------------------------------------------------------------------------- cost


def _record(**extra: Any) -> dict[str, Any]:
    record = {
        "problem_id": "math/test/algebra/1",
        "dataset": "math",
        "gold": "\\frac{\\sqrt{3}}{2}",
        "prompt": "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n",
        "final_prompt": "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n",
        "prompt_format": "gemma",
        "turns": [{"text": "So \\boxed{42}.", "code": None}],
        "response": "So \\boxed{42}.",
        "end_reason": "answer",
    }
    record.update(extra)
    return record


def test_a_record_graded_by_the_current_graders_is_not_graded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    graded = regraded(_record())
    assert graded["reference_correct"] is False and graded["reference_prediction"] == "42"
    assert graded["reference_grader_version"] == REFERENCE_GRADER_VERSION
    assert graded["reference_backend"] == "antlr" and graded["reference_timeout"] is False

    def no_grading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a current record was graded again")

    monkeypatch.setattr("tir_harness.records.verdict.grade", no_grading)
    monkeypatch.setattr("tir_harness.records.verdict._reference_verdict", no_grading)
    assert regraded(graded) is graded
    # Another grader version (or a record from before the reference fields) is graded again.
    monkeypatch.undo()
    again = regraded({**graded, "reference_grader_version": "1", "reference_correct": True})
    assert again["reference_correct"] is False and again["reference_grader_version"] == REFERENCE_GRADER_VERSION


def test_a_verdict_out_of_time_is_recorded_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    # 9^(9^9) is an exact integer of 370 million digits: sympy computes it while parsing, for minutes.
    monkeypatch.setattr(reference, "REFERENCE_TIMEOUT_S", 1.0)
    verdict = reference_verdict("\\boxed{9^{9^{9}}+1}", "5")
    assert (verdict.correct, verdict.timed_out, verdict.prediction) == (False, True, "9^{9^{9}}+1")
    record = regraded(_record(turns=[{"text": "\\boxed{9^{9^{9}}+1}", "code": None}]))
    assert record["reference_timeout"] is True and record["reference_correct"] is False
    assert math_equal("x+1", "1+x") is True  # the helper that was stopped has been replaced


def test_sympy_helpers_serve_several_callers_at_once() -> None:
    pool = reference._HelperPool(2)
    first, second = pool._take(), pool._take()
    assert first is not second
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(pool._take()))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive() and not taken  # a third caller waits for a free helper
    pool._give_back(first)
    waiter.join(timeout=30)
    assert taken == [first]
    assert reference._POOL.size >= min(2, reference.os.cpu_count() or 1)


def test_wrong_answers_skip_simplify_but_keep_the_verdict() -> None:
    # Values that differ are "not equal" without simplify; equal values still go through sympy's rules.
    assert math_equal("42", "\\frac{\\sqrt{3}}{2}") is False
    assert math_equal("42", "x^2+1") is False
    assert math_equal("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}+0") is True
    assert math_equal("\\sin^2 x+\\cos^2 x", "1") is True  # simplify proves it


# ---------------------------------------------------------------------------------- agreement, recorded


def _grade_all(rows: list[dict[str, Any]], dataset: str) -> list[tuple[bool, str | None, bool]]:
    def one(row: dict[str, Any]) -> tuple[bool, str | None, bool]:
        verdict = reference_verdict(row["response"], row["gold"], dataset=dataset)
        return verdict.correct, verdict.prediction, verdict.timed_out

    with ThreadPoolExecutor(max_workers=4) as pool:  # as many callers as the run's trajectory threads would be
        return list(pool.map(one, rows))


# The only MATH pairs on which the port and the reference's grader disagree, each explained in docs/fidelity.md.
EXPLAINED_MATH: dict[tuple[str, str], str] = {}


def test_math_pairs_agree_with_the_references_grader() -> None:
    rows = _rows("math_pairs.jsonl.gz")
    assert len(rows) == 15_000
    for row in rows:
        assert reference_gold(row["gold"], "math") == row["ref_gt"] or row["id"] == "math/test/prealgebra/177"
    verdicts = _grade_all(rows, "math")
    disagree = {}
    for row, (correct, prediction, timed_out) in zip(rows, verdicts, strict=True):
        assert prediction == row["ref_pred"], row
        if timed_out:  # the reference's own run had none; a loaded machine may: grade it again, alone
            again = reference_verdict(row["response"], row["gold"], dataset="math")
            correct, timed_out = again.correct, again.timed_out
        assert timed_out is row["timeout"], row
        if correct != row["verdict"]:
            disagree[(row["id"], row["kind"])] = f"ours {correct}, the reference's {row['verdict']}"
    assert disagree.keys() == EXPLAINED_MATH.keys(), disagree


def test_the_one_math_gold_the_reference_read_wrong() -> None:
    # test/prealgebra/177's solution says "boxed" again after its box: the reference's gold is a sentence
    # (recorded), nothing equals it, and its right answer 12 fails there; here the gold is the problem's.
    row = next(r for r in _rows("math_pairs.jsonl.gz") if r["id"] == "math/test/prealgebra/177")
    assert row["ref_gt"].startswith("thecorrectanswer") and reference_gold(row["gold"], "math") == "12"
    assert math_equal("12", row["ref_gt"]) is False  # the reference's own verdict on the right answer
    assert reference_verdict("\\boxed{12}", row["gold"], dataset="math").correct is True


def test_tora_gsm8k_run_agrees_with_the_references_grader() -> None:
    # ToRA-70B's published greedy GSM8K run, sample by sample from the first: the closing step of each response,
    # ToRA's own prediction for it, and the verdict of ToRA's grader (README.md here).
    rows = _rows("tora70b_gsm8k.jsonl.gz")
    assert [r["idx"] for r in rows] == list(range(1319))
    golds = {int(p.id.rsplit("/", 1)[1]): p.answer for p in load("gsm8k")}
    disagree = []
    for row in rows:
        gold = golds[row["idx"]]
        assert reference_gold(gold, "gsm8k") == row["ref_gt"], row
        verdict = reference_verdict(row["tail"], gold, dataset="gsm8k")
        if (verdict.prediction, verdict.correct) != (row["pred"], row["verdict"]):
            disagree.append((row["idx"], verdict.prediction, verdict.correct, row["pred"], row["verdict"]))
    assert disagree == []
    assert sum(r["verdict"] for r in rows) == 1112  # the whole run: ToRA's published 84.3


def test_the_harness_grader_agrees_with_tora_on_its_gsm8k_run() -> None:
    # The harness's own grader on the same 1,319 closing steps: a response with no box whose last step is an
    # output block is answered by that block (idx 98 "... in the first 15 minutes", 288 "... three trucks ... 80",
    # 760 "16 people think that horse #12 will win" were graded by their last number before).
    golds = {int(p.id.rsplit("/", 1)[1]): p.answer for p in load("gsm8k")}
    rows = _rows("tora70b_gsm8k.jsonl.gz")
    graded = {r["idx"]: grade(r["tail"], golds[r["idx"]], answer_kind="number").correct for r in rows}
    assert [r["idx"] for r in rows if graded[r["idx"]] != r["verdict"]] == []
