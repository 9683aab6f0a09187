"""One harness process against an emulated 8-GPU data-parallel deployment behind one URL.

    python benchmarks/perf/cluster.py [--slots 2048] [--seconds 60] [--warmup 20] [--modes auto,cap64,plugin]

The server is a fake OpenAI server on 127.0.0.1, in its own process, that behaves like `vllm serve
--data-parallel-size 8` with 256 sequences per GPU: `--slots` sequences run at once, the rest queue (FIFO);
a request takes a time to first token (`--ttft` plus a prefill cost per prompt character) and then its tokens
at a per-token latency that grows with the batch (`--tpot-min` for a lone sequence to `--tpot-max` at a full
batch, fixed when the request starts).  It reports vLLM's `vllm:num_requests_running` / `_waiting` in
`/metrics`, and its busy fraction (sequence-seconds run / slot-seconds available) in `/stats`.

The harness: `OpenAIEngine` (engines/openai.py), the real sandbox (`Executor`) and `run/driver.py`, which
keeps trajectories in flight without a thread each.  Each trajectory is one code block: the first turn writes
a ```python block (`--tokens` tokens), the sandbox runs it, the second turn writes `\\boxed{42}` (`--tokens2`).
Trajectories are started without end, up to `--inflight` at once, for `--warmup` + `--seconds` seconds; the
numbers are over the last `--seconds`.  The defaults model a 7B model on GPUs at a full batch: 400-token code
turns and 100-token answers at 40 to 80 ms per token, so the cluster finishes about 40 trajectories a second
when full; the sandbox's CPU (a forked worker per trajectory, about 20 ms) then decides how many harness
processes it takes to keep it full.

Modes, each measured in the same run against a fresh server:
- auto: the engine's window per URL from the server's /metrics (no --max-inflight);
- cap64: at most 64 requests in flight to the URL and 320 trajectories in flight (`--baseline-inflight`): what
  `plugin/runner.py` allowed before (per-URL cap 64; the scheduler's default of 256 engine slots + 25%), the
  baseline.  (With 2,600 trajectories behind a cap of 64, the queue holds every first turn ahead of every second
  turn, and nothing finishes for minutes.)
- plugin: the pytest plugin itself, `pytest --server-url URL --max-inflight 2600` in a child process, on
  `--plugin-problems` generated problems (store and reports in a temporary folder): the same trajectories, with
  the plugin's collection, grading, store and reports around them; threads, CPU and RSS are the child's
  (`--plugin-root` runs another checkout's plugin, e.g. one from before run/driver.py drove the plugin).

Printed per mode: trajectories/s, the server's busy fraction, the harness's CPU per trajectory (this process;
the sandbox's forked workers separately), threads of this process (peak), its peak RSS, and requests in flight
at the server (mean and peak).  Done when (issue 23): auto keeps >= 1,000 requests in flight with < 100 threads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE_TURN = "Let me compute it.\n```python\nx = 6 * 7\nprint(x)\n```\n"
ANSWER_TURN = "So the answer is $\\boxed{42}$."


# ---------------------------------------------------------------------------- the emulated cluster


class Cluster:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.running = 0
        self.waiting = 0
        self.slots = asyncio.Semaphore(args.slots)
        self.busy = 0.0  # sequence-seconds since the last reset
        self.since = time.monotonic()
        self.last = self.since
        self.done = 0
        self.peak = 0

    def _account(self) -> None:
        now = time.monotonic()
        self.busy += self.running * (now - self.last)
        self.last = now

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body.get("prompt", ""))
        second = CODE_TURN.rstrip() + "\n```output" in prompt  # our code block ran: the answer turn
        tokens = self.args.tokens2 if second else self.args.tokens
        self.waiting += 1
        await self.slots.acquire()
        self.waiting -= 1
        self._account()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            a = self.args
            tpot = a.tpot_min + (a.tpot_max - a.tpot_min) * self.running / a.slots
            await asyncio.sleep(a.ttft + a.prefill * len(prompt) + tokens * tpot)
        finally:
            self._account()
            self.running -= 1
            self.done += 1
            self.slots.release()
        text, stop = (ANSWER_TURN, None) if second else (CODE_TURN, "```output")
        return {
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "stop_reason": stop}],
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": tokens},
        }

    def metrics(self) -> str:
        return (
            f'vllm:num_requests_running{{engine="0",model_name="cluster"}} {float(self.running)}\n'
            f'vllm:num_requests_waiting{{engine="0",model_name="cluster"}} {float(self.waiting)}\n'
        )

    def stats(self, reset: bool) -> dict[str, Any]:
        self._account()
        elapsed = time.monotonic() - self.since
        out = {
            "busy_fraction": self.busy / (self.args.slots * elapsed) if elapsed > 0 else 0.0,
            "done": self.done,
            "peak_running": self.peak,
            "running": self.running,
            "waiting": self.waiting,
            "seconds": elapsed,
        }
        if reset:
            self.busy, self.since, self.done, self.peak = 0.0, time.monotonic(), 0, self.running
        return out

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                status, ctype, payload = 200, "application/json", b""
                if method == "POST" and path == "/v1/completions":
                    payload = json.dumps(await self.complete(json.loads(body))).encode()
                elif path == "/v1/models":
                    payload = json.dumps({"object": "list", "data": [{"id": "cluster"}]}).encode()
                elif path == "/version":
                    payload = b'{"version": "cluster-emulation"}'
                elif path == "/metrics":
                    ctype, payload = "text/plain", self.metrics().encode()
                elif path.startswith("/stats"):
                    payload = json.dumps(self.stats("reset" in path)).encode()
                else:
                    status, payload = 404, b'{"detail": "Not Found"}'
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def serve(args: argparse.Namespace) -> None:
    async def main() -> None:
        cluster = Cluster(args)
        server = await asyncio.start_server(cluster.handle, "127.0.0.1", 0, backlog=4096, limit=2**20)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------------------- the harness side


def _get(url: str, path: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=30) as answer:
        return json.loads(answer.read())


def _threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


PLUGIN_TEST = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_cluster(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def measure_plugin(args: argparse.Namespace) -> dict[str, Any]:
    """The pytest plugin against a fresh cluster: a child pytest, watched from here."""
    import signal
    import tempfile

    server = subprocess.Popen([sys.executable, __file__, "--serve", *sys.argv[1:]], stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory(prefix="tir-cluster-") as tmp:
        child = None
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
            with open(os.path.join(tmp, "problems.jsonl"), "w") as f:
                for i in range(args.plugin_problems):
                    problem = {"id": f"c{i}", "question": f"What is 6 times 7? (#{i})", "answer": "42"}
                    f.write(json.dumps(problem) + "\n")
            with open(os.path.join(tmp, "test_cluster.py"), "w") as f:
                f.write(PLUGIN_TEST)
            command = [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
                f"--server-url={url}", f"--max-inflight={args.inflight}", "--prompt-format=plain",
                "--prompt-type=tora-fewshot", "--max-tokens=512", f"--store-dir={tmp}/store",
                f"--report-dir={tmp}/report", "test_cluster.py",
            ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": os.path.abspath(args.plugin_root)}
            log = os.path.join(tmp, "pytest.log")
            with open(log, "w") as out:
                child = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
            time.sleep(args.warmup)  # the benchmark's pace, not a synchronization
            if child.poll() is not None:
                raise SystemExit(f"the plugin run ended during the warm-up: {open(log).read()[-2000:]}")
            _get(url, "/stats?reset")
            cpu0, t0 = _proc_cpu(child.pid), time.monotonic()
            threads, rss, requests = [], [], []
            while time.monotonic() - t0 < args.seconds and child.poll() is None:
                time.sleep(0.5)
                stats = _get(url, "/stats")
                requests.append(stats["running"] + stats["waiting"])
                threads.append(_proc_status(child.pid, "Threads"))
                rss.append(_proc_status(child.pid, "VmRSS") / 1024)
            elapsed = time.monotonic() - t0
            cpu = _proc_cpu(child.pid) - cpu0
            stats = _get(url, "/stats")
            done = stats["done"] / 2  # two requests per trajectory
        finally:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
            server.kill()
            server.wait()
    return {
        "mode": "plugin",
        "trajectories_in_flight": args.inflight,
        "trajectories_per_s": done / elapsed,
        "busy_fraction": stats["busy_fraction"],
        "cpu_ms_per_trajectory": 1e3 * cpu / max(done, 1),
        "threads_peak": max(threads),
        "rss_mb_peak": max(rss),
        "inflight_mean": sum(requests) / len(requests),
        "inflight_min": min(requests),
        "inflight_peak": max(requests),
        "errors": 0,
        "first_error": None,
    }


def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    if mode == "plugin":
        return measure_plugin(args)
    sys.path.insert(0, ROOT)
    from tir_harness.engines.base import SamplingConfig
    from tir_harness.engines.openai import OpenAIEngine
    from tir_harness.run.driver import Driver
    from tir_harness.run.loop import LoopConfig
    from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
    from tir_harness.sandbox.executor import Executor, ExecutorConfig

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", *sys.argv[1:]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        engine = OpenAIEngine([url], max_inflight_per_server=64 if mode == "cap64" else None, request_timeout=3600)
        engine.check()
        executor = Executor(ExecutorConfig(timeout=10.0, max_workers=args.sandbox_workers))
        executor.isolation  # noqa: B018 - waits for the sandbox
        fmt = FORMATS["plain"]
        config = LoopConfig(fmt, PROMPT_TYPES["tora-fewshot"], SamplingConfig(max_tokens=512, stop=fmt.stop))
        inflight = args.baseline_inflight if mode == "cap64" else args.inflight
        driver = Driver(engine, executor.session, workers=args.workers, max_inflight=inflight)
        done: deque[float] = deque()
        errors: list[str] = []
        stop = threading.Event()

        def finished(future: Any) -> None:
            if stop.is_set():
                return  # ended by the shutdown
            trajectory = future.result()
            if trajectory.end_reason != "answer":
                errors.append(f"{trajectory.end_reason}: {trajectory.error}")
            done.append(time.monotonic())
            if not stop.is_set():
                start_one()

        counter = iter(range(10**9))

        def start_one() -> None:
            i = next(counter)
            driver.start(f"What is 6 times 7? (#{i})", config, f"c{i}").add_done_callback(finished)

        for _ in range(inflight):
            start_one()
        time.sleep(args.warmup)  # the benchmark's pace, not a synchronization
        _get(url, "/stats?reset")
        cpu0, count0, t0 = time.process_time(), len(done), time.monotonic()
        threads, rss, requests = [], [], []
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.5)
            stats = _get(url, "/stats")
            requests.append(stats["running"] + stats["waiting"])
            threads.append(_threads())
            rss.append(_rss_mb())
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        count = len(done) - count0
        stats = _get(url, "/stats")
        stop.set()
        row = {
            "mode": mode,
            "trajectories_in_flight": inflight,
            "trajectories_per_s": count / elapsed,
            "busy_fraction": stats["busy_fraction"],
            "cpu_ms_per_trajectory": 1e3 * cpu / max(count, 1),
            "threads_peak": max(threads),
            "rss_mb_peak": max(rss),
            "inflight_mean": sum(requests) / len(requests),
            "inflight_min": min(requests),
            "inflight_peak": max(requests),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
        }
        engine.close()  # fails what is still out; the driver's callbacks then end those trajectories
        driver.close()
        executor.close()
        return row
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--slots", type=int, default=2048, help="sequences the cluster runs at once (8 x 256)")
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds to first token, besides prefill")
    parser.add_argument("--prefill", type=float, default=2e-6, help="seconds of prefill per prompt character")
    parser.add_argument("--tpot-min", type=float, default=0.04, help="seconds per token, one sequence")
    parser.add_argument("--tpot-max", type=float, default=0.08, help="seconds per token, a full batch")
    parser.add_argument("--tokens", type=int, default=400, help="tokens of the first turn (the code block)")
    parser.add_argument("--tokens2", type=int, default=100, help="tokens of the second turn (the answer)")
    parser.add_argument("--inflight", type=int, default=2600, help="trajectories in flight in the harness (auto)")
    parser.add_argument("--baseline-inflight", type=int, default=320,
                        help="trajectories in flight with cap64 (the old default: 256 engine slots + 25%%)")
    parser.add_argument("--workers", type=int, default=32, help="run/driver.py threads (they run the code)")
    parser.add_argument("--sandbox-workers", type=int, default=256, help="live sandbox workers at most")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--modes", default="auto,cap64,plugin")
    parser.add_argument("--plugin-problems", type=int, default=20000, help="problems of the plugin run (plugin)")
    parser.add_argument("--plugin-root", default=ROOT, help="the checkout whose plugin runs (plugin)")
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    rows = [measure(mode, args) for mode in args.modes.split(",")]
    keys = ["trajectories_in_flight", "trajectories_per_s", "busy_fraction", "cpu_ms_per_trajectory",
            "threads_peak", "rss_mb_peak", "inflight_mean", "inflight_min", "inflight_peak", "errors"]  # fmt: skip
    print(f"{'mode':8} " + " ".join(f"{k:>14.14}" for k in keys))
    for row in rows:
        print(f"{row['mode']:8} " + " ".join(f"{row[k]:>14.3f}" if isinstance(row[k], float) else f"{row[k]:>14}"
                                             for k in keys))  # fmt: skip
        if row["first_error"]:
            print(f"  first error: {row['first_error']}")
    by_mode = {row["mode"]: row for row in rows}
    for top, bottom in (("auto", "cap64"), ("plugin", "cap64"), ("plugin", "auto")):
        if top in by_mode and bottom in by_mode:
            below = by_mode[bottom]["trajectories_per_s"]
            # A baseline that finished nothing within the window (--seconds shorter than one trajectory) has no ratio.
            ratio = f"{by_mode[top]['trajectories_per_s'] / below:.2f}x" if below else "n/a (baseline finished none)"
            print(f"{top} / {bottom} trajectories/s: {ratio}")
    print(json.dumps(rows))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"peak RSS of this process (all modes): {usage.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
