"""The plugin end to end inside pytest, with a scripted engine (the real engines have their own tests)."""

from __future__ import annotations

import json
import textwrap

import pytest
from junitparser.xunit2 import JUnitXml  # the flavour whose test cases carry properties

from tir_harness.sandbox.executor import Executor

PROBLEMS = [
    {"id": "right", "question": "RIGHT: what is 6*7?", "answer": "42"},
    {"id": "wrong", "question": "WRONG: what is 1+1?", "answer": "2"},
    {"id": "code", "question": "CODE: what is 2**10?", "answer": "1024"},
    {"id": "frac", "question": "FRAC: half of one?", "answer": "\\frac{1}{2}"},
]

CONFTEST = """
import json, pathlib
from tir_harness.engines.scripted import ScriptedEngine

LOG = pathlib.Path(__file__).parent / "requests.log"

SCRIPT = {
    "RIGHT": ["It is \\\\boxed{42}."],
    "WRONG": ["It is \\\\boxed{3}."],
    "CODE": ["```python\\nprint(2**10)\\n```\\n```output", "So \\\\boxed{1024}."],
    "FRAC": ["It is \\\\boxed{0.5}."],
}

def pytest_tir_make_engine(config, model):
    engine = ScriptedEngine.by_question(SCRIPT)
    respond = engine.responder
    def logged(request):
        with LOG.open("a") as log:
            log.write(request.request_id + "\\n")
        return respond(request)
    engine.responder = logged
    return engine
"""

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


@pytest.fixture
def project(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    pytester.makeini("[pytest]\njunit_family = xunit1\n")
    return pytester


def requests_made(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "requests.log"
    return log.read_text().split() if log.exists() else []


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_reports_every_problem(project: pytest.Pytester, tmp_path):
    store, reports = tmp_path / "store", tmp_path / "run"
    result = project.runpytest(
        "-p", "no:cacheprovider", f"--store-dir={store}", f"--report-dir={reports}",
        f"--junitxml={tmp_path / 'junit.xml'}", "-v", "--model=scripted", "--prompt-format=plain",
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1
    # The failure explains itself: prediction, gold and the grader's reason.
    failure = result.stdout.str()
    assert "test_mine[wrong]" in failure and "prediction: '3'" in failure and "gold:       '2'" in failure
    assert "different values: 3 vs 2" in failure
    records = {r["problem_id"]: r for r in read_jsonl(reports / "trajectories.jsonl")}
    assert set(records) == {f"problems/file/{p['id']}" for p in PROBLEMS}
    code = records["problems/file/code"]
    assert code["correct"] is True and code["tool_calls"] == 1 and code["turns"][0]["observation"] == "1024"
    assert code["test_id"] == "test_bench.py::test_mine[code]" and code["run_id"] == "run"
    assert records["problems/file/wrong"]["correct"] is False
    assert records["problems/file/frac"]["prediction"] == "0.5" and records["problems/file/frac"]["correct"]
    manifest = json.loads((reports / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "scripted" and manifest["problems"] == 4
    # Sampling options not given: the settings the run chose, and where each came from.
    assert manifest["sampling"]["temperature"] == {"value": 0.0, "source": "default"}
    assert manifest["sampling"]["max_tokens"] == {"value": 1024, "source": "default"}
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "junit.xml"))))
    cases = {case.name: case for case in suite}
    assert len(cases) == 4
    props = {p.name: p.value for p in cases["test_mine[code]"].properties()}
    assert props["prediction"] == "1024" and props["gold"] == "1024" and props["turns"] == "2"
    assert "tir_records" not in props  # the full records go to the JSONL, not the XML
    assert (reports / "summary.json").exists() and "tir-harness summary" in failure


def test_only_selected_problems_are_generated(project: pytest.Pytester, tmp_path):
    result = project.runpytest("-p", "no:cacheprovider", f"--store-dir={tmp_path}", "-k", "code or right",
                               "--model=scripted", "--prompt-format=plain")  # fmt: skip
    result.assert_outcomes(passed=2, deselected=2)
    assert sorted(requests_made(project)) == [
        "problems/file/code#s0#t0",
        "problems/file/code#s0#t1",
        "problems/file/right#s0#t0",
    ]


def test_a_rerun_reuses_the_store_and_refresh_regenerates(project: pytest.Pytester, tmp_path):
    args = ["-p", "no:cacheprovider", f"--store-dir={tmp_path / 'store'}", "--model=scripted", "--prompt-format=plain"]
    project.runpytest(*args, f"--report-dir={tmp_path / 'a'}").assert_outcomes(passed=3, failed=1)
    first = len(requests_made(project))
    project.runpytest(*args, f"--report-dir={tmp_path / 'b'}").assert_outcomes(passed=3, failed=1)
    assert len(requests_made(project)) == first  # nothing generated again
    again = read_jsonl(tmp_path / "b" / "trajectories.jsonl")
    assert all(r["cached"] for r in again) and len(again) == 4
    project.runpytest(*args, "--refresh", f"--report-dir={tmp_path / 'c'}").assert_outcomes(passed=3, failed=1)
    assert len(requests_made(project)) == 2 * first


def test_samples_run_as_independent_trajectories(project: pytest.Pytester, tmp_path):
    args = ["--samples=3", "-k", "right", f"--report-dir={tmp_path / 'r'}", "--model=scripted", "--prompt-format=plain"]
    result = project.runpytest("-p", "no:cacheprovider", f"--store-dir={tmp_path}", *args)
    result.assert_outcomes(passed=1, deselected=3)
    records = read_jsonl(tmp_path / "r" / "trajectories.jsonl")
    assert sorted(r["sample"] for r in records) == [0, 1, 2]
    assert sorted(r["sampling"]["seed"] for r in records) == [0, 1, 2]


def test_no_model_is_a_one_line_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir-harness: no --model given*"])


def test_wrong_model_is_a_one_line_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--model=no-such-model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir-harness: --model no-such-model: not an alias*"])


def test_unreachable_server_is_a_one_line_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--server-url=http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir-harness:*http://127.0.0.1:9*"])


def test_malformed_jsonl_is_a_one_line_collection_error(project: pytest.Pytester):
    project.path.joinpath("problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n{oops\n")
    result = project.runpytest("-p", "no:cacheprovider", "--model=scripted", "--prompt-format=plain")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*problems.jsonl:2: not valid JSON*"])
    assert "Traceback" not in result.stdout.str()


def test_bad_options_name_the_option(pytester: pytest.Pytester):
    result = pytester.runpytest("--kv-cache-memory=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kv-cache-memory*not a size*"])
    result = pytester.runpytest("--data-dir=/no/such/dir")
    result.stderr.fnmatch_lines(["ERROR: --data-dir /no/such/dir: no such folder"])


def test_markers_select_subjects_and_levels(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_math=textwrap.dedent(
            """
            import pytest

            @pytest.mark.tir_dataset("math", split="test")
            def test_math(problem, solve):
                pass
            """
        )
    )
    result = pytester.runpytest("--collect-only", "-q", "-m", "level5 and algebra")  # the shipped MATH test
    lines = [line for line in result.stdout.lines if "::test_math[" in line]
    assert len(lines) == 307  # counted from math/test.jsonl: Algebra, Level 5
    assert "test_math.py::test_math[algebra-1]" not in lines  # a level 3 problem


def test_executor_options_reach_the_sandbox_and_the_records(project: pytest.Pytester, tmp_path):
    args = ["-k", "code", f"--report-dir={tmp_path / 'r'}", "--model=scripted", "--prompt-format=plain"]
    result = project.runpytest("-p", "no:cacheprovider", f"--store-dir={tmp_path}", "--exec-observations=reference",
                               "--exec-timeout=3", *args)  # fmt: skip
    result.assert_outcomes(passed=1, deselected=3)
    (record,) = read_jsonl(tmp_path / "r" / "trajectories.jsonl")
    assert record["executor"]["observation_style"] == "reference" and record["executor"]["timeout"] == 3
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    with Executor(timeout=3, observation_style="reference") as executor:
        assert manifest["engine"]["executor_isolation"] == executor.isolation


def test_last_failed_solves_only_the_failed_problems(project: pytest.Pytester, tmp_path):
    args = [f"--store-dir={tmp_path}", "--model=scripted", "--prompt-format=plain"]
    project.runpytest(*args).assert_outcomes(passed=3, failed=1)
    (project.path / "requests.log").unlink()
    result = project.runpytest(*args, "--lf", "--refresh")
    result.assert_outcomes(failed=1)
    assert requests_made(project) == ["problems/file/wrong#s0#t0"]


def test_the_engine_fixture_hands_out_the_runs_engine(project: pytest.Pytester, tmp_path):
    project.makepyfile(
        test_direct="""
        from tir_harness.engines.base import GenerationRequest, SamplingConfig

        def test_direct(tir_engine):
            completion = tir_engine.submit(GenerationRequest("RIGHT?", SamplingConfig())).result(timeout=60)
            assert completion.text == "It is \\\\boxed{42}."
        """
    )
    result = project.runpytest("test_direct.py", f"--store-dir={tmp_path}", "--model=scripted", "--prompt-format=plain")
    result.assert_outcomes(passed=1)


def test_a_missing_dataset_stops_the_run_only_when_selected(pytester: pytest.Pytester, monkeypatch, closed_hub):
    pytester.makepyfile(
        test_train="""
        import pytest

        @pytest.mark.tir_dataset("gsm8k", split="train")  # not shipped, not in the folder, not in the cache
        def test_train(problem, solve):
            pass
        """,
        test_mine=BENCH,
    )
    pytester.path.joinpath("problems.jsonl").write_text(json.dumps(PROBLEMS[0]) + "\n")
    empty = pytester.mkdir("data")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--data-dir={empty}", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tir-harness: dataset gsm8k/train not found; looked in {empty}*"])
    result = pytester.runpytest("-p", "no:cacheprovider", f"--data-dir={empty}", "--collect-only", "-q", "-k", "mine")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["test_mine.py::test_mine[right]"])
