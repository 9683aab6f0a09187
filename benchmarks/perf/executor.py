"""Speed of the executor now against the executor of an earlier commit, measured in one run.

    python benchmarks/perf/executor.py [--before 2e2fd41] [--calls 2000] [--sessions 1,16,64]

Each side runs in its own subprocess (the "before" side imports the sandbox package as it was at the given
commit, taken with `git archive`), on the same snippets: warm call latency (median, p99), session start
(new session + first call + close, median), sessions per second with N sessions in flight (each thread:
session, one call, close, repeated: the harness's one-code-block trajectory), and the CPU one such session
costs: in the harness, in the zygote and its workers (all of them reaped), and in the kernel's own threads
(machine-wide, so other work on the machine shows there too; a network namespace is freed by them).  Then the
ratios after/before.  Targets (issues 13, 14): warm call <= 1 ms median, session start <= 5 ms median.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SNIPPETS = [
    "1 + 1",
    "x = 21\nprint(x * 2)",
    "import math\nmath.factorial(20)",
    "total = sum(i * i for i in range(100))\ntotal",
]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3


def _ticks(stat: str, fields: slice) -> int:
    return sum(int(v) for v in stat.rsplit(")", 1)[1].split()[fields])


def _kernel_threads_cpu() -> float:
    """CPU seconds of the kernel's worker threads, machine-wide."""
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.index("(") + 1 :].startswith(("kworker", "ksoftirqd", "rcu")):
                total += _ticks(stat, slice(11, 13))
    return total / os.sysconf("SC_CLK_TCK")


def _zygote_cpu(pid: int) -> float:
    """CPU seconds of the zygote and of every worker it has reaped."""
    with open(f"/proc/{pid}/stat") as f:
        return _ticks(f.read(), slice(11, 15)) / os.sysconf("SC_CLK_TCK")


def cpu_per_session(ex: object, n: int = 400, threads: int = 16) -> dict:
    """CPU (ms) per session (new session, one call, close) from `threads` threads."""
    zygote = ex._zygote.proc.pid  # type: ignore[attr-defined]
    before = (resource.getrusage(resource.RUSAGE_SELF), _zygote_cpu(zygote), _kernel_threads_cpu())

    def work() -> None:
        for i in range(n // threads):
            with ex.session() as s:  # type: ignore[attr-defined]
                s.run(SNIPPETS[i % len(SNIPPETS)])

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    deadline = time.monotonic() + 30  # until the zygote has reaped the workers of the closed sessions
    while len(ex._live) > len(ex._warm) + ex._warm_starting and time.monotonic() < deadline:  # type: ignore
        time.sleep(0.05)
    time.sleep(1.0)  # a network namespace is freed by a kernel thread shortly after its last process ends
    after = (resource.getrusage(resource.RUSAGE_SELF), _zygote_cpu(zygote), _kernel_threads_cpu())
    done = n // threads * threads
    harness = after[0].ru_utime + after[0].ru_stime - before[0].ru_utime - before[0].ru_stime
    return {
        "harness": harness / done * 1e3,
        "zygote_and_workers": (after[1] - before[1]) / done * 1e3,
        "kernel_threads": (after[2] - before[2]) / done * 1e3,
    }


def measure(calls: int, sessions: list[int], per_thread: int) -> dict:
    from tir_harness.sandbox.executor import Executor

    out: dict = {}
    start = time.perf_counter()
    ex = Executor(timeout=5.0, warm_workers=4)
    with ex.session() as s:
        s.run("1 + 1")
    out["startup_s"] = time.perf_counter() - start
    with ex.session() as s:
        samples = []
        for i in range(calls):
            t = time.perf_counter()
            s.run(SNIPPETS[i % len(SNIPPETS)])
            samples.append(time.perf_counter() - t)
    out["warm_call_ms"] = _median_p99(samples)
    samples = []
    for i in range(200):
        t = time.perf_counter()
        with ex.session() as s:
            s.run(SNIPPETS[i % len(SNIPPETS)])
        samples.append(time.perf_counter() - t)
    out["session_start_ms"] = _median_p99(samples)
    out["sessions_per_s"] = {}
    for n in sessions:
        barrier = threading.Barrier(n + 1)

        def work(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for i in range(per_thread):
                with ex.session() as s:
                    s.run(SNIPPETS[i % len(SNIPPETS)])

        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        out["sessions_per_s"][str(n)] = n * per_thread / (time.perf_counter() - t0)
    out["cpu_ms_per_session"] = cpu_per_session(ex)
    out["isolation"] = ex.isolation
    ex.close()
    return out


def _old_tree(commit: str) -> str:
    """The sandbox and util packages as they were at `commit`, in a temporary directory."""
    tmp = tempfile.mkdtemp(prefix="tir-bench-before-")
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", commit, "tir_harness/sandbox", "tir_harness/util"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    with open(os.path.join(tmp, "tir_harness", "__init__.py"), "w") as f:
        f.write("")
    return tmp


def _side(pythonpath: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    cmd = [sys.executable, "-P", __file__, "--measure", "--calls", str(args.calls), "--sessions", args.sessions,
           "--per-thread", str(args.per_thread)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=pythonpath)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="2e2fd41", help="commit whose executor is the baseline")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sessions", default="1,16,64")
    parser.add_argument("--per-thread", type=int, default=40)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sessions = [int(n) for n in args.sessions.split(",")]
    if args.measure:
        print(json.dumps(measure(args.calls, sessions, args.per_thread)))
        return
    old = _old_tree(args.before)
    try:
        before = _side(old, args)
    finally:
        subprocess.run(["rm", "-rf", old], check=False)
    after = _side(ROOT, args)
    print(f"isolation now: {json.dumps(after['isolation'])}\n")
    print(f"{'':36} {'before (' + args.before + ')':>22} {'after':>14} {'after/before':>13}")
    rows = [
        ("start-up (s)", before["startup_s"], after["startup_s"]),
        ("warm call median (ms)", before["warm_call_ms"][0], after["warm_call_ms"][0]),
        ("warm call p99 (ms)", before["warm_call_ms"][1], after["warm_call_ms"][1]),
        ("session start+call+close median (ms)", before["session_start_ms"][0], after["session_start_ms"][0]),
        ("session start+call+close p99 (ms)", before["session_start_ms"][1], after["session_start_ms"][1]),
    ]
    rows += [
        (f"sessions/s, {n} in flight", before["sessions_per_s"][str(n)], after["sessions_per_s"][str(n)])
        for n in sessions
    ]
    labels = {"harness": "harness", "zygote_and_workers": "zygote+workers", "kernel_threads": "kernel threads"}
    rows += [
        (f"CPU per session, {label} (ms)", before["cpu_ms_per_session"][part], after["cpu_ms_per_session"][part])
        for part, label in labels.items()
    ]
    for name, b, a in rows:
        print(f"{name:36} {b:22.2f} {a:14.2f} {a / b if b else float('nan'):13.2f}")
    warm, start = after["warm_call_ms"][0], after["session_start_ms"][0]
    print(f"\ntargets: warm call {warm:.2f} ms <= 1 ms: {warm <= 1}; ", end="")
    print(f"session start {start:.2f} ms <= 5 ms: {start <= 5}")


if __name__ == "__main__":
    main()
