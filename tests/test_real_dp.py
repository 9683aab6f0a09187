"""One URL in front of two engines: vLLM's own data parallelism (`--data-parallel-size 2`, which the CPU build
0.32 supports), against one server (the session's shared one), Gemma 3 270M on the CPU; then the same URL dying
in the middle of a run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tests import realrun
from tests.shared_server import free_port, server_args
from tests.test_engine_openai import _running
from tir_harness.engines.serve import VLLMServer

FOUR = "0000 or 0001 or 0002 or 0003"
SIX = " or ".join(f"00{n:02d}" for n in range(30, 36))


def _data_parallel_server(path: str, workdir: str) -> VLLMServer:
    # Greedy output is the same on both only when each request is computed alike: float32, no prefix cache (one
    # engine would reuse a prefix that the other computes afresh; the shared server has the same settings) and
    # one request at a time (--max-inflight=1: a batch's shape changes the CPU kernels' rounding).  On CI's
    # machine, batched runs differed.
    return VLLMServer(
        path,
        port=free_port(),
        served_model_name="gemma-3-270m",
        data_parallel_size=2,
        extra_args=server_args(),
        workdir=workdir,
        env={"OMP_NUM_THREADS": "1"},
    )


def _evaluate(url: str, tmp_path, name: str) -> list[dict]:
    args = ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", f"--server-url={url}", "--max-tokens=128",
            "--max-inflight=1", "-k", FOUR, f"--report-dir={tmp_path / name}",
            f"--store-dir={tmp_path / (name + '-store')}"]  # fmt: skip
    result = realrun.run(args, tmp_path)
    records = realrun.records(tmp_path / name / "trajectories.jsonl")
    assert len(records) == 4, result.stdout[-3000:]
    assert all(r["end_reason"] != "error" for r in records), result.stdout[-3000:]
    return records


def test_a_data_parallel_url_gives_one_servers_results_and_its_death_mid_run_fails_the_rest(
    vllm_server, gemma, tmp_path
):
    """Two things of one server's life in one test, for one start of the two engines (about 100 s)."""
    # A folder of ours, short (vLLM's socket paths in its tmp/ must stay under 108 characters): what the server
    # leaves there is checked after it stops.
    with tempfile.TemporaryDirectory(prefix="tir-") as workdir:
        with _data_parallel_server(gemma, workdir) as both:
            # The run on the shared server while the data-parallel one starts: the load does not change what
            # either computes.
            one = _evaluate(vllm_server.url, tmp_path, "one")
            both.wait_ready(timeout=900)
            two = _evaluate(both.url, tmp_path, "dp")
            served = realrun.finished_per_engine(both.url)
            # The server dies in the middle of a run: its problems fail naming it, and the run ends.
            pid = both.pid
            process = realrun.start(
                ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", f"--server-url={both.url}", "--max-tokens=128",
                 "-k", SIX, "-v", "--max-inflight=1", f"--report-dir={tmp_path / 'died'}",
                 f"--store-dir={tmp_path / 'died-store'}"],
                tmp_path,
            )  # fmt: skip
            seen = realrun.wait_for_results(process, 1)
            both.stop()
            rest, _ = process.communicate(timeout=300)
        # The server's process is gone, and so are vLLM's sockets and files in its temporary folder (the folder,
        # not the server's, stays, with the log).
        assert pid is not None and not _running(pid)
        assert (Path(workdir) / "server.log").exists() and not (Path(workdir) / "tmp").exists()
    assert {r["problem_id"]: realrun.stable(r) for r in two} == {r["problem_id"]: realrun.stable(r) for r in one}
    # Both engines behind the one URL answered some of the requests: vLLM balanced them, not the harness.
    assert set(served) == {"0", "1"} and all(count > 0 for count in served.values()), served
    manifest = json.loads((tmp_path / "dp" / "manifest.json").read_text())
    assert manifest["engine"]["urls"] == [both.url]
    output = "".join(seen) + rest
    assert process.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    records = realrun.records(tmp_path / "died" / "trajectories.jsonl")
    assert len(records) == 6
    errors = [r for r in records if r["end_reason"] == "error"]
    assert errors and all(both.url in r["error"] for r in errors)
    assert "tir-harness summary" in output
