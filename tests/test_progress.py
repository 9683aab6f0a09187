"""The lines a run prints while it runs: what was collected, then progress at a steady cadence."""

from __future__ import annotations

import json

import pytest

CONFTEST = r'''
import itertools
import pytest
from tir_harness.engines.scripted import ScriptedEngine

def pytest_tir_make_engine(config, model):
    return ScriptedEngine(lambda request: "It is \\boxed{5}.")

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    reporter = config.pluginmanager.get_plugin("tir-harness-reporter")
    if reporter is not None:
        ticks = itertools.count()
        reporter.clock = lambda: 6.0 * next(ticks)  # each finished problem takes 6 s of this clock
'''

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    rows = [{"id": f"p{i}", "question": f"question {i}", "answer": "5" if i % 2 else "6"} for i in range(5)]
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pytester


def progress(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("tir-harness: ") and " done" in line]


def test_collection_says_what_will_run_and_progress_comes_every_ten_seconds(project: pytest.Pytester, tmp_path):
    args = ["-p", "no:cacheprovider", "--model=scripted", "--prompt-format=plain", f"--store-dir={tmp_path / 's'}"]
    result = project.runpytest(*args, f"--report-dir={tmp_path / 'r1'}")
    result.stdout.fnmatch_lines(["tir-harness: 5 problems (problems 5), 1 sample each"])
    lines = progress(result)
    # Problems end at 0, 6, 12, 18, 24 s: a line for the first, then one each 10 s or more after the last.
    assert [line.split(" done")[0] for line in lines] == ["tir-harness: 1/5", "tir-harness: 3/5", "tir-harness: 5/5"]
    # 2 trajectories in 12 s; 2 problems left at 6 s each.
    assert lines[1].endswith("(1/3), 0.17 trajectories/s, about 12 s left"), lines[1]
    # A rerun takes every trajectory from the store, and says so.
    again = progress(project.runpytest(*args, f"--report-dir={tmp_path / 'r2'}"))
    assert again[0].endswith("; the store held 5 trajectories (not generated again)"), again[0]
    assert "0 trajectories/s" in again[1]


NOISY = """
import logging, warnings

def test_engine_start_noise():
    warnings.warn("`torch.jit.script_method` is deprecated. Please switch to `torch.compile`.", DeprecationWarning)
    logging.getLogger("transformers.configuration_utils").warning("`torch_dtype` is deprecated! Use `dtype` instead!")
    logging.getLogger("transformers.configuration_utils").warning("a notice the user can act on")
    warnings.warn("a warning of the project's own", UserWarning)
"""


def test_third_party_deprecation_noise_is_filtered_and_nothing_else(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_noise=NOISY)
    # In process, the outer session's tir_harness is not re-imported: when the `pytest` script found it through the
    # editable install's finder (not a path on sys.path), pytest warns that it cannot rewrite it. Not the filter's.
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA", "-W", "ignore::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=1, warnings=1)
    out = result.stdout.str()
    assert "torch.jit" not in out and "torch_dtype" not in out
    assert "a warning of the project's own" in out and "a notice the user can act on" in out
