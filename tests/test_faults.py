"""Faults end to end: bad data, bad options, a bad store or report folder, hostile text, failing parts.

Each case shows the same contract: one line saying what is wrong (no INTERNALERROR, no traceback from inside
the harness), the right exit status, every finished trajectory in trajectories.jsonl and the store, and a
summary whose counts equal pytest's.  Signals and full disks run a real pytest process: tests/test_faults_process.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tir_harness.records.store import ResultStore

CONFTEST = r'''
import pathlib
from tir_harness.engines.base import EngineError
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run import boundary

LOG = pathlib.Path(__file__).parent / "requests.log"

SCRIPT = {
    "RIGHT": ["It is \\boxed{42}."],
    "WRONG": ["It is \\boxed{3}."],
    "SURROGATE": ["Odd text \ud800 and a NUL \x00 then \\boxed{7}."],
    "CODE": ["```python\nprint('\\ud800' + chr(0))\n```\n```output", "So \\boxed{5}."],
    "EXPLODE": ["```python\nprint('EXPLODE')\n```\n```output"],
    "TERMINAL": ["It is \\boxed{\x1b[2J\x1b]0;owned\x07\u202e24\r}."],
    "HUGE": ["x" * 3_000_000 + " It is \\boxed{42}."],  # a server gone wrong: 3 MB in one completion
}


class Engine(ScriptedEngine):
    def submit(self, request):
        if "CRASH" in request.prompt:  # an engine that raises where it should fail the future
            with LOG.open("a") as log:
                log.write(request.request_id + "\n")
            raise RuntimeError("the engine broke")
        return super().submit(request)


def pytest_tir_make_engine(config, model):
    def respond(request):
        with LOG.open("a") as log:
            log.write(request.request_id + "\n")
        if "ENGINE" in request.prompt:
            raise EngineError("http://127.0.0.1:1: HTTP 400: prompt is too long")
        if "SHOUTS" in request.prompt:
            raise EngineError("http://127.0.0.1:1: HTTP 400: \x1b[31mred\x1b[0m \u202eesrever")
        return scripted.responder(request)

    scripted = ScriptedEngine.by_question(SCRIPT)
    return Engine(respond)


# A fault inside the trajectory itself, past the engine: the sandbox session raising.
_run = boundary._SafeSession.run


def run(self, code):
    if "EXPLODE" in code:
        raise ValueError("the sandbox fell over")
    return _run(self, code)


boundary._SafeSession.run = run
'''

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""

PROBLEMS = [
    {"id": "right", "question": "RIGHT: 6*7?", "answer": "42"},
    {"id": "wrong", "question": "WRONG: 1+2?", "answer": "2"},
    {"id": "surrogate", "question": "SURROGATE: 3+4?", "answer": "7"},
    {"id": "code", "question": "CODE: 2+3?", "answer": "5"},
    {"id": "engine", "question": "ENGINE: 1+1?", "answer": "2"},
    {"id": "crash", "question": "CRASH: 1+1?", "answer": "2"},
    {"id": "explode", "question": "EXPLODE: 1+1?", "answer": "2"},
]


def write_problems(path: Path, rows: list[dict] | str) -> None:
    path.write_text(rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    write_problems(pytester.path / "problems.jsonl", PROBLEMS)
    return pytester


def run(project: pytest.Pytester, tmp_path: Path, *args: str) -> pytest.RunResult:
    return project.runpytest(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--model=scripted", "--prompt-format=plain",
        f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}", *args,
    )  # fmt: skip


def requests_made(project: pytest.Pytester) -> list[str]:
    log = project.path / "requests.log"
    return log.read_text().split() if log.exists() else []


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_one_line(result: pytest.RunResult) -> None:
    text = output(result)
    assert "INTERNALERROR" not in text and "Traceback" not in text
    assert "tir_harness/" not in text  # no frame of the harness's own code


def assert_accounted(result: pytest.RunResult, run_dir: Path, store_dir: Path) -> list[dict]:
    """Every test that ran has its record in the report, the store has every one not failed by the engine,
    and the summary's counts equal pytest's."""
    outcomes = result.parseoutcomes()
    passed, failed = outcomes.get("passed", 0), outcomes.get("failed", 0)
    records = [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == passed + failed
    assert len({r["problem_id"] for r in records}) == len(records)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["n"] == passed + failed
    assert summary["accuracy"]["overall"]["correct"] == passed  # every test asserts answer == gold
    with ResultStore(store_dir) as store:
        stored = {r["problem_id"] for r in store.records()}
    assert stored == {r["problem_id"] for r in records if r["end_reason"] != "error"}
    return records


# ---------------------------------------------------------------------------- faults inside trajectories


def test_every_problem_ends_as_one_record_whatever_happens_in_its_trajectory(project, tmp_path):
    result = run(project, tmp_path, "-rf")
    result.assert_outcomes(passed=3, failed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_one_line(result)
    accounted = assert_accounted(result, tmp_path / "run", tmp_path / "store")
    records = {r["problem_id"].rsplit("/", 1)[1]: r for r in accounted}
    # Hostile text is kept readable, and the run goes on.
    assert records["surrogate"]["correct"] and "\\ud800" in records["surrogate"]["turns"][0]["text"]
    assert "\x00" not in records["surrogate"]["turns"][0]["text"]
    assert records["code"]["correct"] and "\x00" not in records["code"]["turns"][0]["observation"]
    # Each failure says what happened, in one line.
    for name, line in [
        ("engine", "tir-harness: engine error: http://127.0.0.1:1: HTTP 400: prompt is too long"),
        ("crash", "tir-harness: engine error: RuntimeError: the engine broke"),
        ("explode", "tir-harness: internal error: ValueError: the sandbox fell over"),
    ]:
        result.stdout.fnmatch_lines([f"_* test_mine[[]{name}[]] _*", line], consecutive=True)
    assert records["explode"]["end_reason"] == "error" and records["explode"]["prediction"] is None
    assert records["explode"]["error"] == "internal error: ValueError: the sandbox fell over"


def test_terminal_escapes_and_bidi_overrides_reach_no_terminal_but_stay_in_the_record(project, tmp_path):
    write_problems(project.path / "problems.jsonl", [
        {"id": "terminal", "question": "TERMINAL: 6*7?", "answer": "42", "subject": "x"},
        {"id": "shouts", "question": "SHOUTS: 6*7?", "answer": "42"},
    ])  # fmt: skip
    result = run(project, tmp_path, "-rf")
    result.assert_outcomes(failed=2)
    shown = output(result)
    for acting in ("\x1b", "\x07", "\u202e", "\r"):
        assert acting not in shown
    # Shown as escapes on the failure lines: the grader's reason quotes the prediction; the server's words.
    result.stdout.fnmatch_lines(["E * reason: *: \\x1b[[]2J\\x1b]0;owned\\x07\\u202e24 vs 42"])
    result.stdout.fnmatch_lines(["tir-harness: engine error: *\\x1b[[]31mred\\x1b[[]0m \\u202eesrever"])
    # The record keeps the model's text as it was.
    records = {r["problem_id"]: r for r in assert_accounted(result, tmp_path / "run", tmp_path / "store")}
    assert records["problems/file/terminal"]["turns"][0]["text"] == SCRIPT_TERMINAL


SCRIPT_TERMINAL = "It is \\boxed{\x1b[2J\x1b]0;owned\x07\u202e24\r}."


@pytest.mark.parametrize(("limit", "line_bytes"), [(None, 2_200_000), (10_000, 40_000)])
def test_a_huge_completion_is_cut_so_report_store_and_page_stay_bounded(project, tmp_path, limit, line_bytes):
    write_problems(project.path / "problems.jsonl", [{"id": "huge", "question": "HUGE: 6*7?", "answer": "42"}])
    option = [] if limit is None else [f"--max-turn-chars={limit}"]
    run(project, tmp_path, *option).assert_outcomes(passed=1)  # the answer is in the tail, which is kept
    run_dir = tmp_path / "run"
    (line,) = (run_dir / "trajectories.jsonl").read_text().splitlines()
    assert len(line) < line_bytes  # uncut, the turn's text and the response alone are 6 MB
    (turn,) = json.loads(line)["turns"]
    assert turn["text_cut"] and turn["original_chars"] == 3_000_000 + len(" It is \\boxed{42}.")
    assert "characters cut ...]" in turn["text"]
    assert (run_dir / "report.html").stat().st_size < line_bytes + 1_000_000
    with ResultStore(tmp_path / "store") as store:
        (stored,) = store.records()
    assert stored["turns"][0]["text"] == turn["text"]


def test_the_turn_limit_is_part_of_the_store_key(project, tmp_path):
    project_run = [f"--report-dir={tmp_path / 'again'}", "-k", "right"]
    run(project, tmp_path, "-k", "right").assert_outcomes(passed=1, deselected=6)
    run(project, tmp_path, *project_run).assert_outcomes(passed=1, deselected=6)  # the same limit: reused
    run(project, tmp_path, *project_run, "--max-turn-chars=5000").assert_outcomes(passed=1, deselected=6)
    assert requests_made(project) == ["problems/file/right#s0#t0"] * 2


def test_a_rerun_retries_only_the_failed_problems(project, tmp_path):
    run(project, tmp_path).assert_outcomes(passed=3, failed=4)
    (project.path / "requests.log").unlink()
    result = run(project, tmp_path)
    result.assert_outcomes(passed=3, failed=4)
    assert sorted(r.split("/")[2].split("#")[0] for r in requests_made(project)) == ["crash", "engine", "explode"]


# ---------------------------------------------------------------------------- bad problem files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (PROBLEMS[0:1] + [dict(PROBLEMS[1], id="right")],
         "problems.jsonl:2: duplicate problem id 'problems/file/right' (also at line 1)"),
        ("", "problems.jsonl: no problems in this file"),
        ("\n\n", "problems.jsonl: no problems in this file"),
        ([dict(PROBLEMS[0], answer=None)], "problems.jsonl:1: cannot read this problem (*field 'answer' is null)"),
        ([dict(PROBLEMS[0], answer=" ")], "problems.jsonl:1: cannot read this problem (ValueError: empty gold answer*"),
        ([dict(PROBLEMS[0], question=None)], "problems.jsonl:1: cannot read this problem (*field 'question' is null)"),
        (json.dumps(PROBLEMS[0]) + "\n" + json.dumps(PROBLEMS[1])[:-5], "problems.jsonl:2: not valid JSON*"),
        *[([PROBLEMS[0], dict(PROBLEMS[1], answer=gold)],
           f"problems.jsonl:2: cannot read this problem (ValueError: gold answer in field 'answer' is {shown}: *)")
          for gold, shown in [(float("nan"), "NaN"), (float("inf"), "Infinity"), (True, "true"),
                              ([1, 2], "[[]1, 2[]]")]],
    ],
    ids=["duplicate-id", "empty", "blank", "null-gold", "empty-gold", "null-question", "cut-short-last-line",
         "nan-gold", "infinity-gold", "true-gold", "list-gold"],
)  # fmt: skip
def test_a_bad_problem_file_is_a_one_line_collection_error(project, tmp_path, content, message):
    write_problems(project.path / "problems.jsonl", content)
    result = run(project, tmp_path)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's status for collection errors
    result.stdout.fnmatch_lines([f"*tir-harness: *{message}"])
    assert_one_line(result)
    assert requests_made(project) == [] and not (tmp_path / "run").exists()


def test_one_id_for_two_different_problems_in_two_files_is_refused(project, tmp_path):
    other = project.mkdir("other")
    write_problems(other / "problems.jsonl", [dict(PROBLEMS[0], question="RIGHT: a different question")])
    (other / "test_other.py").write_text(BENCH)
    result = run(project, tmp_path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir-harness: problem id problems/file/right names two different problems*"])
    assert requests_made(project) == []


def test_one_problem_in_two_tests_is_generated_once(project, tmp_path):
    project.makepyfile(test_again=BENCH)
    result = run(project, tmp_path, "-k", "right")
    result.assert_outcomes(passed=2, deselected=12)
    assert requests_made(project) == ["problems/file/right#s0#t0"]


# ---------------------------------------------------------------------------- options, store, report folder


@pytest.mark.parametrize(
    "option",
    ["--temperature=nan", "--temperature=inf", "--temperature=-1", "--temperature=2.5", "--top-p=0",
     "--exec-timeout=0", "--exec-timeout=-1", "--exec-timeout=nan", "--exec-timeout=inf", "--exec-timeout=1e12",
     "--max-drop=nan", "--max-drop=inf", "--max-drop=-1", "--max-tool-calls=-1", "--exec-memory-mb=0",
     "--server-timeout=0", "--server-retries=-1", "--server-url=ftp://host", "--server-url=http://h:port"],
)  # fmt: skip
def test_a_bad_option_is_one_line_naming_it_before_anything_runs(project, tmp_path, option):
    result = run(project, tmp_path, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = option.split("=")[0]
    errors = [line for line in result.stderr.lines if "error" in line.lower() and name in line]
    assert len(errors) == 1, result.stderr.lines
    assert_one_line(result)
    assert requests_made(project) == []


@pytest.mark.parametrize(
    ("option", "message"),
    [
        # run/loop.py's sample_seed: sample indices below 2**20, run seeds with |s| < 2**43.
        ("--samples=2000000", "must be between 1 and 1048576, got 2000000"),
        ("--samples=0", "must be between 1 and 1048576, got 0"),
        ("--seed=8796093022208", "must be between -8796093022207 and 8796093022207, got 8796093022208"),
        ("--seed=-8796093022208", "must be between -8796093022207 and 8796093022207, got -8796093022208"),
        # The sandbox's own rule (ExecutorConfig), not a copy of it.
        ("--exec-memory-mb=8", "must be >= 16, got 8 (the sandbox's limit)"),
        ("--max-turn-chars=99", "must be at least 100, got 99"),
        ("--kv-cache-memory=0", "must be at least 1 byte, got '0'"),
    ],
)  # fmt: skip
def test_an_option_beyond_what_the_run_accepts_later_is_refused_while_parsing(project, tmp_path, option, message):
    result = run(project, tmp_path, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*error: argument {option.split('=')[0]}: {message}"])
    assert "collected" not in result.stdout.str()  # refused before collection, not after the first trajectory
    assert_one_line(result)
    assert requests_made(project) == []


def test_options_at_their_bounds_are_accepted(project, tmp_path):
    result = run(project, tmp_path, "-k", "right", "--exec-memory-mb=16", "--seed=-8796093022207",
                 "--samples=2", "--max-turn-chars=100")  # fmt: skip
    result.assert_outcomes(passed=1, deselected=6)


def foreign_sqlite(path: Path) -> Path:
    db = path / "theirs.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE accounts (name TEXT)")
    return db


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (foreign_sqlite, "a SQLite database that is not a tir-harness result store; left untouched"),
        (lambda p: (p / "junk.sqlite3").write_bytes(b"garbage " * 512) and p / "junk.sqlite3",
         "not a tir-harness result store (file is not a database)"),
        (lambda p: (p / "plain-file").write_text("x") and p / "plain-file", "cannot create the store folder (*)"),
    ],
    ids=["foreign-sqlite", "garbage", "a-file"],
)  # fmt: skip
def test_a_bad_store_is_one_line_and_nothing_is_generated(project, tmp_path, make, message):
    store = make(tmp_path)
    before = store.read_bytes()
    result = run(project, tmp_path, f"--store-dir={store}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tir-harness: --store-dir {store}*: {message}"])
    assert_one_line(result)
    assert requests_made(project) == []
    assert store.read_bytes() == before  # someone else's file is not extended


def test_a_truncated_store_is_one_line(project, tmp_path):
    path = tmp_path / "store" / "results.sqlite3"
    with ResultStore(path) as store:
        for i in range(100):
            store.put(f"key{i}", {"text": "x" * 2000})
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    result = run(project, tmp_path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir-harness: --store-dir *results.sqlite3: *malformed*"])
    assert_one_line(result)
    assert requests_made(project) == []


def test_a_report_dir_that_is_a_file_is_one_line_before_generation(project, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    result = run(project, tmp_path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tir-harness: --report-dir {tmp_path / 'run'}: exists and is not a folder"])
    assert_one_line(result)
    assert requests_made(project) == []


def test_a_report_dir_in_use_by_another_run_is_refused(project, tmp_path):
    run_dir = tmp_path / "run"
    run(project, tmp_path, "-k", "right").assert_outcomes(passed=1, deselected=6)
    first = (run_dir / "trajectories.jsonl").read_bytes()
    # Another live run holds the folder's lock (a second process would, as tests/test_faults_process.py shows).
    fd = os.open(run_dir / ".tir-harness.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, b"4242\n", 0)
        result = run(project, tmp_path, "-k", "wrong")
    finally:
        os.close(fd)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tir-harness: --report-dir {run_dir}: in use by another run (pid 4242)"])
    assert_one_line(result)
    assert (run_dir / "trajectories.jsonl").read_bytes() == first
    assert requests_made(project) == ["problems/file/right#s0#t0"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "*no such file or directory"), ("{oops\n", "*:1: not valid JSON*"), ('{"problem_id": "a"}\n', "*")],
    ids=["missing", "corrupt", "wrong-schema"],
)
def test_a_bad_baseline_is_one_line_before_generation(project, tmp_path, content, message):
    baseline = tmp_path / "baseline.jsonl"
    if content is not None:
        baseline.write_text(content)
    result = run(project, tmp_path, f"--baseline={baseline}", "--gate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tir-harness: --baseline {baseline}: {message}"])
    assert_one_line(result)
    assert requests_made(project) == []
