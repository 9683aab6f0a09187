"""Running `pytest benchmarks/` for real, in a subprocess, as a user would (shared by the end-to-end tests)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VLLM_CPU = ["--dtype=float32", "--max-model-len=2048", "--enforce-eager", "--kv-cache-memory=512M"]
# Fields that differ between two runs that generated the same trajectories.
VOLATILE = {"run_id", "seconds", "gen_seconds", "exec_seconds", "cached", "cached_tokens", "test_id"}


def environment(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)  # the benchmark test sets ship with the package: no TIR_DATA_DIR needed
    env.update(
        OMP_NUM_THREADS="2",
        TMPDIR=str(tmp),  # vLLM leaves sockets and files there
        VLLM_CACHE_ROOT=os.environ.get("VLLM_CACHE_ROOT", str(tmp / "vllm-cache")),
        PYTHONUNBUFFERED="1",
    )
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def run(args: list[str], tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), cwd=REPO, env=environment(tmp), capture_output=True, text=True, timeout=timeout
    )


def start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args),
        cwd=REPO,
        env=environment(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for_results(process: subprocess.Popen[str], count: int) -> list[str]:
    """Read the verbose output until `count` tests have reported (the synchronization is the output itself)."""
    seen: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if sum(" PASSED" in x or " FAILED" in x for x in seen) >= count:
            return seen
    raise AssertionError("the run ended before enough tests reported:\n" + "".join(seen[-40:]))


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what legitimately differs between two runs of the same trajectory."""
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    out["turns"] = [{k: v for k, v in t.items() if k not in VOLATILE} for t in record["turns"]]
    return out


def finished_per_engine(url: str) -> dict[str, float]:
    """A vLLM server's finished requests per engine behind its URL (`vllm:request_success_total` on /metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        page = answer.read().decode()
    counts: dict[str, float] = {}
    line = re.compile(r'^vllm:request_success_total\{[^}]*engine="(\d+)"[^}]*\} ([0-9.e+]+)$', re.M)
    for engine, value in line.findall(page):
        counts[engine] = counts.get(engine, 0.0) + float(value)
    return counts
