"""Memory of idle live sandbox sessions: one, and many at once.

    python benchmarks/perf/sessions.py [--counts 1,64,256,1024]

For each count N: an executor with `max_workers=N`, N sessions opened, each running one small snippet
(`x = 6 * 7`, as after a trajectory's first code block) and then left idle, all held at once.  Printed: the
memory the sessions' worker processes hold, as the kernel counts it (from /proc/PID/smaps_rollup): USS (pages
only that worker has: what each more session costs), PSS (its share of the pages it shares with the zygote
and its siblings) and RSS (everything it maps, shared pages counted in full), per session and in total; and the
zygote's own RSS (paid once).  The pages a worker shares with the zygote (numpy and sympy, imported once) are
copy-on-write: a session costs its USS, not its RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rollup(pid: int) -> dict[str, int]:
    """kB of Rss, Pss, Private_Clean + Private_Dirty (USS) of a process."""
    out = {"rss": 0, "pss": 0, "uss": 0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            value = int(rest.split()[0]) if rest.split() and rest.split()[0].isdigit() else 0
            if name == "Rss":
                out["rss"] += value
            elif name == "Pss":
                out["pss"] += value
            elif name in ("Private_Clean", "Private_Dirty"):
                out["uss"] += value
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def measure(count: int) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    from tir_harness.sandbox.executor import Executor, ExecutorConfig

    with Executor(ExecutorConfig(max_workers=count, warm_workers=0)) as executor, contextlib.ExitStack() as stack:
        executor.isolation  # noqa: B018 - waits for the zygote
        started = time.monotonic()
        for _ in range(count):
            session = stack.enter_context(executor.session())
            assert session.run("x = 6 * 7").status == "ok"
        opened = time.monotonic() - started
        time.sleep(1.0)  # let the workers settle into idle; the benchmark's pace, not a synchronization
        me = os.getpid()
        # The zygote: the descendant with the most descendants (the workers it forked).
        zygote = max(_descendants(me), key=lambda pid: len(_descendants(pid)))
        workers = _descendants(zygote)
        totals = {"rss": 0, "pss": 0, "uss": 0}
        for pid in workers:
            try:
                for key, value in _rollup(pid).items():
                    totals[key] += value
            except OSError:
                continue
        zygote_rss = _rollup(zygote)["rss"]
        n = max(len(workers), 1)
        return {
            "sessions": count,
            "workers": len(workers),
            "open_s": opened,
            "uss_mb_per_session": totals["uss"] / 1024 / n,
            "pss_mb_per_session": totals["pss"] / 1024 / n,
            "rss_mb_per_session": totals["rss"] / 1024 / n,
            "uss_mb_total": totals["uss"] / 1024,
            "pss_mb_total": totals["pss"] / 1024,
            "zygote_rss_mb": zygote_rss / 1024,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,64,256,1024")
    args = parser.parse_args()
    keys = ["sessions", "workers", "open_s", "uss_mb_per_session", "pss_mb_per_session", "rss_mb_per_session",
            "uss_mb_total", "pss_mb_total", "zygote_rss_mb"]  # fmt: skip
    print(" ".join(f"{k:>18}" for k in keys))
    for count in (int(c) for c in args.counts.split(",")):
        row = measure(count)
        print(" ".join(f"{row[k]:>18.2f}" if isinstance(row[k], float) else f"{row[k]:>18}" for k in keys), flush=True)


if __name__ == "__main__":
    main()
