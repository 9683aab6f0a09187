"""Speed and memory of tir-harness's executor against a ToRA-style baseline, measured in one run.

    python benchmarks/perf/executor.py [--calls 2000] [--baseline-calls 40] [--sessions 1,4,16,64]

Prints per-call latency (median, p99) on the same snippets, throughput with N sessions in parallel,
the cost of a new session, and the memory of an idle warm worker; then the ratios to the baseline, a
pebble process pool created per call with a 5 s timeout (what ToRA's executor does).
Targets (issue 4): <= 5 ms median per warm call, >= 1,000 trivial runs/s across two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessPool

from tir_harness.sandbox.executor import Executor

SNIPPETS = [
    "1 + 1",
    "x = 21\nprint(x * 2)",
    "import math\nmath.factorial(20)",
    "total = sum(i * i for i in range(100))\ntotal",
]
SYMPY = "import sympy\nsympy.factor(sympy.Symbol('a') ** 2 - 1)"


def _tora_exec(code: str) -> tuple[str, str]:
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(code, {})
    except Exception as exc:
        return "", str(exc)
    return buf.getvalue(), "Done"


def tora_call(code: str) -> tuple[str, str]:
    with ProcessPool(max_workers=1) as pool:
        future = pool.schedule(_tora_exec, args=(code,), timeout=5)
        try:
            return future.result()
        except FutureTimeout:
            return "", "Timeout Error"
        except Exception as exc:
            return "", str(exc)


def latencies(call: Callable[[str], object], codes: list[str], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        call(codes[i % len(codes)])
        out.append(time.perf_counter() - start)
    return out


def describe(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1e3:8.2f} ms   p99 {p99 * 1e3:8.2f} ms   (n={len(ordered)})"


def throughput(make_call: Callable[[], Callable[[str], object]], threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        call = make_call()
        barrier.wait()
        for i in range(per_thread):
            call(SNIPPETS[i % len(SNIPPETS)])

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - start)


def private_mb(pid: int) -> tuple[float, float]:
    """(USS, PSS) in MiB from /proc/PID/smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return uss / 1024, fields.get("Pss", 0) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--baseline-calls", type=int, default=40)
    parser.add_argument("--sessions", default="1,4,16,64")
    parser.add_argument("--idle-workers", type=int, default=32)
    args = parser.parse_args()
    sessions = [int(n) for n in args.sessions.split(",")]

    print("== tir-harness executor")
    start = time.perf_counter()
    ex = Executor(timeout=5.0, warm_workers=4)
    with ex.session() as s:
        s.run("1 + 1")
    print(f"start-up (zygote imports numpy+sympy, first call): {time.perf_counter() - start:.2f} s")
    print(f"isolation: {ex.isolation}")

    with ex.session() as s:
        ours = latencies(s.run, SNIPPETS, args.calls)
        ours_sympy = latencies(s.run, [SYMPY], max(50, args.calls // 20))
    print(f"warm call, trivial snippets : {describe(ours)}")
    print(f"warm call, sympy.factor     : {describe(ours_sympy)}")

    def new_session(code: str) -> None:
        with ex.session() as s:
            s.run(code)

    print(f"new session + first call    : {describe(latencies(new_session, SNIPPETS, 200))}")

    def session_call() -> Callable[[str], object]:
        return ex.session().run

    ours_tp = {}
    for n in sessions:
        ours_tp[n] = throughput(session_call, n, max(50, args.calls // n))
        print(f"throughput, {n:3d} sessions in parallel: {ours_tp[n]:8.0f} runs/s")

    idle = [ex.session() for _ in range(args.idle_workers)]
    for s in idle:
        s.run("x = 1")
    workers = [w for w in list(ex._live.values()) if not w.busy]
    w2 = [private_mb(w.pid2) for w in workers]
    w1 = [private_mb(w.pid1) for w in workers]
    zygote = private_mb(ex._zygote.proc.pid)
    w2_uss, w2_pss = statistics.mean(u for u, _ in w2), statistics.mean(p for _, p in w2)
    w1_uss = statistics.mean(u for u, _ in w1)
    print(
        f"memory per idle worker ({len(workers)} workers): W2 (runs code) USS {w2_uss:.1f} MiB,"
        f" PSS {w2_pss:.1f} MiB; W1 (namespace init) USS {w1_uss:.1f} MiB; zygote USS {zygote[0]:.1f} MiB"
    )
    for s in idle:
        s.close()

    flood = "print('x' * 10**8)"
    start = time.perf_counter()
    with ex.session() as s:
        obs = s.run(flood)
    ours_flood = time.perf_counter() - start
    print(f"{flood}: {ours_flood:.2f} s, status {obs.status}, {len(obs.text)} chars returned")
    ex.close()

    print("\n== baseline: pebble ProcessPool per call, 5 s timeout (ToRA-style)")
    base = latencies(tora_call, SNIPPETS, args.baseline_calls)
    print(f"call, trivial snippets      : {describe(base)}")
    base_tp = throughput(lambda: tora_call, 4, max(5, args.baseline_calls // 4))
    print(f"throughput, 4 threads: {base_tp:8.1f} runs/s")
    start = time.perf_counter()
    out, report = tora_call(flood)
    base_flood = time.perf_counter() - start
    print(f"{flood}: {base_flood:.2f} s, report {report!r}, {len(out)} chars returned")

    print("\n== ratios (baseline / tir-harness)")
    print(f"median latency: {statistics.median(base) / statistics.median(ours):8.1f}x lower")
    best = max(ours_tp.values())
    print(f"throughput    : {best / base_tp:8.1f}x higher (best of ours {best:.0f}/s vs {base_tp:.1f}/s)")
    print(f"flood         : {base_flood / ours_flood:8.1f}x faster")
    median_ms = statistics.median(ours) * 1e3
    print(f"\ntargets: median {median_ms:.2f} ms <= 5 ms: {median_ms <= 5}; {best:.0f} runs/s >= 1000: {best >= 1000}")


if __name__ == "__main__":
    main()
