"""--shard I/N and `tir-harness merge`: shard runs joined give what one unsharded run gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_plugin import BENCH, CONFTEST
from tir_harness.cli.merge import main as merge
from tir_harness.run.shards import Shard, parse_shard

PROBLEMS = [
    {"id": f"p{i}", "question": q, "answer": a}
    for i, (q, a) in enumerate(
        [("RIGHT: 6*7?", "42"), ("WRONG: 1+1?", "2"), ("CODE: 2**10?", "1024"), ("FRAC: half?", "\\frac{1}{2}"),
         ("RIGHT: 40+2?", "42"), ("WRONG: 2+0?", "2"), ("CODE: 1024?", "1024")]
    )
]  # fmt: skip


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return pytester


def run(project: pytest.Pytester, out: Path, *extra: str) -> pytest.RunResult:
    return project.runpytest(
        "-p", "no:cacheprovider", f"--store-dir={out.parent / 'store'}", f"--report-dir={out}",
        "--model=scripted", "--prompt-format=plain", *extra,
    )  # fmt: skip


def stable(summary: dict) -> dict:
    """A summary without what depends on when the run ran and what its folder is called."""
    data = {k: v for k, v in summary.items() if k not in ("timing", "throughput", "run")}
    data["comparison"] = {k: v for k, v in data["comparison"].items() if k != "current_label"}
    return data


@pytest.mark.parametrize("count", [1, 2, 3, 7, 10])
def test_shares_are_disjoint_cover_the_selection_and_balanced(count):
    ids = [f"t[{i:03d}]" for i in range(23)]
    shares = [Shard(i, count).share(reversed(ids)) for i in range(count)]
    assert set().union(*shares) == set(ids) and sum(len(s) for s in shares) == len(ids)
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


@pytest.mark.parametrize("bad", ["2/2", "1", "-1/2", "0/0", "a/b"])
def test_a_bad_shard_is_refused(bad):
    with pytest.raises(ValueError):
        parse_shard(bad)


def test_two_shards_merged_give_the_summary_and_gate_of_one_run(project, tmp_path, capsys):
    baseline = tmp_path / "base"
    run(project, baseline).assert_outcomes(passed=5, failed=2)
    gated = (f"--baseline={baseline}", "--gate")
    whole = run(project, tmp_path / "whole", *gated)
    first = run(project, tmp_path / "s0", "--shard=0/2", *gated)
    second = run(project, tmp_path / "s1", "--shard", "1/2", *gated)
    first.assert_outcomes(passed=4, deselected=3)  # p0, p2, p4, p6: 4 and 3 of 7, balanced
    second.assert_outcomes(passed=1, failed=2, deselected=4)  # p1, p3, p5
    assert whole.ret == 0
    status = merge([str(tmp_path / "s1"), str(tmp_path / "s0"), "--out", str(tmp_path / "merged")])
    out = capsys.readouterr().out
    assert status == whole.ret and "gate PASSED" in out
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    single = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert merged["accuracy"] == single["accuracy"]
    assert stable(merged) == stable(single)
    assert (tmp_path / "merged" / "report.html").is_file()
    records = [json.loads(line) for line in (tmp_path / "merged" / "trajectories.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in records) == sorted(f"problems/file/{p['id']}" for p in PROBLEMS)


def test_missing_duplicated_and_unfitting_shards_are_refused_with_one_line(project, tmp_path, capsys):
    run(project, tmp_path / "s0", "--shard=0/2")
    run(project, tmp_path / "s1", "--shard=1/2")
    run(project, tmp_path / "t1", "--shard=1/2", "--max-tool-calls=2")
    run(project, tmp_path / "k1", "--shard=1/2", "-k", "not p0")  # p2, p4, p6 of the six selected

    def refused(*runs: str) -> str:
        status = merge([*(str(tmp_path / r) for r in runs), "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and err.startswith("tir-harness merge: error: "), err
        assert not (tmp_path / "out").exists()
        return err

    assert "shard 1/2 missing" in refused("s0")
    assert f"shard 0/2 given twice: {tmp_path / 's0'} and {tmp_path / 's0'}" in refused("s0", "s0")
    assert "--max-tool-calls is 2 there, 4 here" in refused("s0", "t1")
    assert f"{tmp_path / 's0'}: its problems are not shard 0/2 of the runs' problems" in refused("s0", "k1")
    run(project, tmp_path / "whole")
    assert "not a shard run" in refused("whole", "s1")
