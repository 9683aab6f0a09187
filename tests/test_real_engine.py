"""`pytest benchmarks/` on the real vLLM engine with Gemma 3 270M on the CPU: in-process (the default engine) for
what tests that path, and the session's shared vLLM server (tests/shared_server.py) for what holds on either
engine (resuming after a kill, regrading, samples and their metrics), which saves starting an engine each time.

The model is a small base model: it writes code with the few-shot prompt but is almost never right, so these
tests check the whole tool loop and the files, never accuracy.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3

import pytest
from junitparser.xunit2 import JUnitXml  # the flavour whose test cases carry properties

from tests import realrun
from tir_harness.grading import grade
from tir_harness.records.store import ResultStore
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES, first_messages

PLAIN = FORMATS["plain"]
FIVE = "0000 or 0001 or 0002 or 0003 or 0004"


def test_five_problems_leave_jsonl_and_junit(gemma, tmp_path):
    reports, junit = tmp_path / "run", tmp_path / "junit.xml"
    result = realrun.run(
        ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", *realrun.VLLM_CPU, "--max-tokens=128", "-k", FIVE,
         f"--report-dir={reports}", f"--junitxml={junit}", f"--store-dir={tmp_path / 'store'}", "-v"],
        tmp_path,
    )  # fmt: skip
    lines = realrun.records(reports / "trajectories.jsonl")
    assert len(lines) == 5, result.stdout[-3000:]
    # A test run: exit 1 when any problem failed, 0 when all passed.
    assert result.returncode == (0 if all(r["correct"] for r in lines) else 1), result.stdout[-3000:]
    assert "tir-harness summary" in result.stdout
    problems = {p.id: p for p in _gsm8k()}
    tool_turns = 0
    for record in lines:
        problem = problems[record["problem_id"]]
        # The first prompt is exactly the few-shot prompt for this question.
        assert record["prompt"] == PLAIN.render(first_messages(problem.question, PROMPT_TYPES["tora-fewshot"]))
        assert record["gold"] == problem.answer and record["model"] == "gemma-3-270m"
        assert record["end_reason"] in {"answer", "no_code", "max_tool_calls", "length"}
        for turn in record["turns"]:
            assert not any(stop in turn["text"] for stop in PLAIN.stop)  # stop strings honoured
            assert turn["stop_reason"] in (*PLAIN.stop, None)
            assert turn["completion_tokens"] > 0 and turn["prompt_tokens"] > 0
        for i, turn in enumerate(record["turns"]):
            if turn["code"] is None:
                continue
            tool_turns += 1
            assert "```python" in turn["text"] and turn["exec_status"] in {"ok", "error", "timeout"}
            assert turn["observation"] is not None
            following = record["turns"][i + 1] if i + 1 < len(record["turns"]) else None
            if following is not None:  # the continuation was generated after the observation
                assert following["prompt_tokens"] > turn["prompt_tokens"] + turn["completion_tokens"]
        verdict = grade(record["response"], record["gold"])
        assert (verdict.prediction, verdict.correct) == (record["prediction"], record["correct"])
    assert tool_turns >= 3, "the few-shot prompt should make the base model write code"
    cases = {case.name: case for suite in JUnitXml.fromfile(str(junit)) for case in suite}
    assert len(cases) == 5
    for record in lines:
        case = cases[record["test_id"].split("::")[1]]
        props = {p.name: p.value for p in case.properties()}
        assert props["gold"] == record["gold"] and props["turns"] == str(len(record["turns"]))
        assert props["prediction"] == str(record["prediction"])
    manifest = json.loads((reports / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "vllm" and manifest["engine"]["dtype"] == "float32"
    for name in ("summary.json", "summary.md", "accuracy.png", "tool_calls.png"):
        assert (reports / name).stat().st_size > 0
    # The same run as its own baseline: nothing dropped, so the gate passes whatever the accuracy.
    gated = realrun.run(
        ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", *realrun.VLLM_CPU, "--max-tokens=128", "-k", FIVE,
         f"--report-dir={tmp_path / 'gated'}", f"--store-dir={tmp_path / 'store'}",
         f"--baseline={reports / 'trajectories.jsonl'}", "--gate"],
        tmp_path,
    )  # fmt: skip
    assert gated.returncode == 0, gated.stdout[-3000:]
    assert "gate PASSED" in gated.stdout


def _gsm8k():
    from tir_harness.run.problems import load

    return load("gsm8k", "test")  # the shipped copy, as the runs above use


EIGHT = " or ".join(f"00{n:02d}" for n in range(10, 18))


def test_kill_9_mid_run_loses_nothing_and_the_rerun_resumes(vllm_server, tmp_path):
    store = tmp_path / "store"
    args = ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", f"--server-url={vllm_server.url}", "--max-tokens=128",
            "-k", EIGHT, f"--store-dir={store}", "-v"]  # fmt: skip
    # Two at a time: the kill lands after two results with most of the eight not yet generated.
    process = realrun.start([*args, "--max-inflight=2", f"--report-dir={tmp_path / 'killed'}"], tmp_path)
    realrun.wait_for_results(process, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    with sqlite3.connect(store / "results.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with ResultStore(store) as results:
        finished = len(results)
    assert 2 <= finished < 8
    # That a resumed run's trajectories equal a fresh run's is the determinism test_real_server's xdist test and
    # test_real_dp prove; here: nothing finished is lost, and only the rest is generated.
    resumed = realrun.run([*args, f"--report-dir={tmp_path / 'resumed'}"], tmp_path)
    after = realrun.records(tmp_path / "resumed" / "trajectories.jsonl")
    assert len(after) == 8, resumed.stdout[-3000:]
    assert sum(r["cached"] for r in after) == finished  # only the rest was generated
    assert all(r["end_reason"] != "error" for r in after), resumed.stdout[-3000:]


def test_ctrl_c_prints_the_summary_and_keeps_finished_work(gemma, tmp_path):
    store = tmp_path / "store"
    args = ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", *realrun.VLLM_CPU, "--max-tokens=128", "-k", EIGHT,
            f"--store-dir={store}", "-v", "--max-inflight=2", f"--report-dir={tmp_path / 'run'}"]  # fmt: skip
    process = realrun.start(args, tmp_path)
    seen = realrun.wait_for_results(process, 1)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)  # ends promptly: in-flight work is cancelled
    output = "".join(seen) + rest
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "KeyboardInterrupt" in output and "tir-harness summary" in output
    written = realrun.records(tmp_path / "run" / "trajectories.jsonl")
    assert 1 <= len(written) < 8
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    # Tests that reported, and trajectories that finished into the store after the interrupt (docs/reports.md).
    assert manifest["interrupted"] and manifest["problems"] + manifest.get("from_store", 0) == len(written)
    with ResultStore(store) as results:
        assert len(results) >= len(written)


def test_a_grader_change_regrades_without_regenerating(vllm_server, tmp_path):
    store = tmp_path / "store"
    args = ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", f"--server-url={vllm_server.url}", "--max-tokens=128",
            "-k", "0020 or 0021 or 0022", f"--store-dir={store}"]  # fmt: skip
    realrun.run([*args, f"--report-dir={tmp_path / 'first'}"], tmp_path)
    first = realrun.records(tmp_path / "first" / "trajectories.jsonl")
    assert len(first) == 3
    # Pretend an older grader scored these: opposite verdicts, an old version.
    with ResultStore(store) as results:
        for record in list(results.records()):
            results.put(record["key"], {**record, "correct": not record["correct"], "prediction": "stale",
                                        "grader_version": "0"})  # fmt: skip
    served = sum(realrun.finished_per_engine(vllm_server.url).values())
    second = realrun.run([*args, f"--report-dir={tmp_path / 'second'}", "-v"], tmp_path)
    again = realrun.records(tmp_path / "second" / "trajectories.jsonl")
    assert all(r["cached"] for r in again), second.stdout[-2000:]
    # Nothing was generated: the server finished no request during the second run (tests use it one at a time).
    assert sum(realrun.finished_per_engine(vllm_server.url).values()) == served > 0
    now = {r["problem_id"]: r for r in again}
    for record in first:
        regraded = now[record["problem_id"]]
        assert regraded["turns"] == record["turns"]
        assert (regraded["prediction"], regraded["correct"]) == (record["prediction"], record["correct"])


def test_engine_args_and_ini_settings_reach_vllm_and_a_wrong_one_stops_before_the_engine(gemma, tmp_path):
    """Engine arguments reach vLLM's EngineArgs; settings given as ini values (`-o`, as a project's pyproject.toml
    would) reach the run; a negative run seed starts the engine; with the quirks the real tokenizer path sends
    the reference's ids (two BOS).  One engine start for all of them (engine arguments from the ini are checked
    against a registered engine in tests/test_extending.py)."""
    from transformers import AutoTokenizer

    store, reports = tmp_path / "store", tmp_path / "run"
    base = ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", *realrun.VLLM_CPU, "-k", "0000",
            f"--store-dir={store}"]  # fmt: skip
    typo = realrun.run([*base, "--engine-arg=max_num_seq=3"], tmp_path)
    assert typo.returncode == 4, typo.stdout[-3000:]
    assert "ERROR: tir-harness: --engine-arg max_num_seq: not an argument of the vllm engine; did you mean " in (
        typo.stderr
    )
    assert "Traceback" not in typo.stderr and not store.exists()  # stopped before the store and the engine
    # max_num_seqs reaches vLLM's EngineArgs (the engine reports what vLLM's scheduler took), an argument agreeing
    # with its shorthand (--dtype=float32) is taken, and the manifest records them.
    done = realrun.run(
        [*base, "--engine-arg", '{"max_num_seqs": 3, "dtype": "float32"}', "--prompt-format=gemma",
         f"--report-dir={reports}", "-o", "tir_max_tokens=16", "-o", "tir_seed=-1", "-o", "tir_reference_quirks=true"],
        tmp_path,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-3000:]
    engine = json.loads((reports / "manifest.json").read_text())["engine"]
    assert engine["max_num_seqs"] == 3 and engine["max_inflight"] == 4  # 3 + 25%
    assert engine["engine_args"] == {"max_num_seqs": 3, "dtype": "float32"}
    (record,) = realrun.records(reports / "trajectories.jsonl")
    assert record["sampling"]["seed"] == -1 and record["sampling"]["max_tokens"] == 16
    first = record["turns"][0]
    assert first["completion_tokens"] > 0
    reference = AutoTokenizer.from_pretrained(gemma)(record["prompt"])["input_ids"]  # vLLM's generate(text)
    assert reference[:2] == [2, 2] and first["prompt_tokens"] == len(reference)


def test_aime24_with_two_samples_reports_avg_pass_and_maj_at_k_consistent_with_the_records(vllm_server, tmp_path):
    # AIME 2024 is not shipped (licence): a --data-dir holding the real rows kept for the tests.
    data = tmp_path / "data" / "aime24"
    data.mkdir(parents=True)
    shutil.copy(realrun.REPO / "tests" / "data" / "benchmarks" / "aime24" / "test.jsonl", data / "test.jsonl")
    reports = tmp_path / "run"
    result = realrun.run(
        ["benchmarks/test_aime24.py", "--model=gemma-3-270m", f"--server-url={vllm_server.url}", "--max-tokens=64",
         "--samples=2",
         "--temperature=0.6", f"--data-dir={data.parent}", "-k", "60 or 61 or 62", f"--report-dir={reports}",
         f"--store-dir={tmp_path / 'store'}", "-v"],
        tmp_path,
    )  # fmt: skip
    lines = realrun.records(reports / "trajectories.jsonl")
    assert len(lines) == 6, result.stdout[-3000:] + result.stderr[-3000:]
    by_problem: dict[str, list[dict]] = {}
    for record in sorted(lines, key=lambda r: r["sample"]):
        assert record["end_reason"] != "error" and record["sampling"]["max_tokens"] == 64
        by_problem.setdefault(record["problem_id"], []).append(record)
    assert sorted(by_problem) == ["aime24/test/60", "aime24/test/61", "aime24/test/62"]
    assert all([r["sample"] for r in samples] == [0, 1] for samples in by_problem.values())
    # Worked out from the records by the definitions: c correct of 2 samples per problem.
    correct = [sum(r["correct"] for r in samples) for samples in by_problem.values()]
    avg = sum(c / 2 for c in correct) / 3
    pass_2 = sum(c > 0 for c in correct) / 3

    def majority_of_two(first: dict, second: dict) -> float:
        if first["correct"] and second["correct"]:
            return 1.0
        if not (first["correct"] or second["correct"]):
            return 0.0
        wrong = second if first["correct"] else first
        return 1.0 if wrong["prediction"] is None else 0.5  # a wrong answer ties the right one; no answer abstains

    maj_2 = sum(majority_of_two(*samples) for samples in by_problem.values()) / 3
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["records"] == 6
    assert (summary["avg_at_k"]["k"], summary["avg_at_k"]["n"]) == (2, 3)
    assert summary["avg_at_k"]["value"] == pytest.approx(avg)
    assert {k: v["value"] for k, v in summary["pass_at_k"].items()} == pytest.approx({"1": avg, "2": pass_2})
    assert {k: v["value"] for k, v in summary["maj_at_k"].items()} == pytest.approx({"1": avg, "2": maj_2})
    # The manifest says which sampling settings the run used and where each came from (Gemma does not think).
    manifest = json.loads((reports / "manifest.json").read_text())
    assert manifest["sampling"] == {
        "reasoning_model": False,
        "temperature": {"value": 0.6, "source": "option"},
        "top_p": {"value": 1.0, "source": "default"},
        "max_tokens": {"value": 64, "source": "option"},
    }
