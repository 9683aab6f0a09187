"""`tir-harness serve MODEL --gpus 0,1,2,3`: one vLLM OpenAI server per GPU (or per tensor-parallel group).

Waits for every `/health`, prints the `--server-url` to paste into pytest, and stops every server on
Ctrl-C or SIGTERM.  The servers themselves: `tir_harness.engines.serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from tir_harness.engines.serve import (
    POLL_SECONDS,
    ServerError,
    VLLMServer,
    parse_gpus,
    plan_servers,
    port_free,
    public_url,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tir-harness serve",
        description="Start one vLLM OpenAI server per GPU (or per group of --tensor-parallel-size GPUs), or "
        "servers of --data-parallel-size engines each behind one URL. "
        "Arguments after `--` go to every vLLM server unchanged.",
    )
    parser.add_argument("model", help="a tir-harness model alias, a local model folder or a hub id")
    parser.add_argument(
        "--gpus", help="comma list of GPU ids, e.g. 0,1,2,3 (default: one server, CUDA_VISIBLE_DEVICES untouched)"
    )
    parser.add_argument(
        "--tensor-parallel-size", "-tp", type=int, default=1, metavar="N", help="GPUs per server (default 1)"
    )
    parser.add_argument(
        "--data-parallel-size",
        "-dp",
        type=int,
        default=1,
        metavar="N",
        help="engines per server, balanced by vLLM behind its one URL (vLLM's data parallelism; default 1); "
        "with --gpus, each server takes N x --tensor-parallel-size of them",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0 to serve other machines; default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="first port; server i uses PORT+i")
    parser.add_argument("--served-model-name", help="the model name clients use (default: MODEL as given)")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="how long a server may take to load (default 1800, downloads included)",
    )
    parser.add_argument(
        "--log-dir",
        help="where each server's folder (log, TMPDIR, cache) goes "
        "(default: a new temporary folder, kept for the logs)",
    )
    return parser


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the extra vLLM arguments after `--`."""
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    return build_parser().parse_args(argv), extra


def _resolve_model_path(model: str) -> str:
    try:
        from tir_harness.engines.models import resolve_model
    except ImportError:
        return model
    return resolve_model(model).path


class _Stop(Exception):
    """SIGTERM, turned into an exception in the main thread like Ctrl-C."""


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM raises _Stop and SIGINT KeyboardInterrupt, whatever was inherited: a background job of a
    non-interactive shell starts with SIGINT ignored, and `kill -INT` must still stop the servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, handler), signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def _say(message: str) -> None:
    print(message, flush=True)


def _fail(message: str) -> None:
    print(f"tir-harness serve: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    args, extra = parse_args(argv)
    try:
        gpus = parse_gpus(args.gpus) if args.gpus is not None else None
        plans = plan_servers(gpus, args.tensor_parallel_size, args.port, args.data_parallel_size)
    except ValueError as exc:
        _fail(str(exc))
        return 2
    if args.tensor_parallel_size > 1 and gpus is None:
        _fail("--tensor-parallel-size needs --gpus (which GPUs make up each server)")
        return 2
    try:
        model_path = _resolve_model_path(args.model)
    except ValueError as exc:  # models.ModelError
        _fail(str(exc))
        return 2
    busy = [p.port for p in plans if not port_free(args.host, p.port)]
    if busy:
        _fail(f"--port {args.port}: port {', '.join(map(str, busy))} on {args.host} is already in use")
        return 2
    log_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="tir-serve-"))
    served_name = args.served_model_name or args.model
    servers = [
        VLLMServer(
            model_path,
            port=plan.port,
            host=args.host,
            served_model_name=served_name,
            gpus=plan.gpus,
            tensor_parallel_size=args.tensor_parallel_size,
            data_parallel_size=args.data_parallel_size,
            extra_args=extra,
            workdir=log_dir / f"server-{plan.port}",
        )
        for plan in plans
    ]
    with _signals_raise():
        try:
            return _run(servers, args.ready_timeout, log_dir)
        except (KeyboardInterrupt, _Stop):
            _say("stopping the servers ...")
            return 0
        finally:
            for server in servers:
                server.stop()


def _run(servers: list[VLLMServer], ready_timeout: float, log_dir: Path) -> int:
    for server in servers:
        server.start()
        gpus = f" on GPU {','.join(server.gpus)}" if server.gpus else ""
        _say(f"starting vLLM on port {server.port}{gpus} (pid {server.pid}, log {server.log_path})")
    deadline = time.monotonic() + ready_timeout
    waiting = list(servers)
    try:
        while waiting:
            waiting = [s for s in waiting if not s.check_ready()]
            if waiting and time.monotonic() > deadline:
                ports = ", ".join(str(s.port) for s in waiting)
                _fail(f"port {ports} not ready after {ready_timeout:g} s; see the logs in {log_dir}")
                return 1
            if waiting:
                time.sleep(POLL_SECONDS)
    except ServerError as exc:
        _fail(str(exc))
        return 1
    urls = [public_url(s.host, s.port) for s in servers]
    for url in urls:
        _say(f"ready: {url}")
    _say(f"\n  --server-url {','.join(urls)}\n\nCtrl-C stops {'them' if len(urls) > 1 else 'it'}.")
    while True:
        for server in servers:
            code = server.poll()
            if code is not None:
                _fail(
                    f"vLLM server on port {server.port} exited with code {code}; "
                    f"last lines of {server.log_path}:\n{server.log_tail()}"
                )
                return 1
        time.sleep(1.0)
