"""An engine backed by one or more OpenAI-compatible servers (`vllm serve`, vLLM's api_server, others).

Requests go to the least-loaded live server with a bounded number in flight per server; the rest wait in
one queue.  Each server has a small pool of worker threads (grown on demand up to the in-flight bound)
sharing one `httpx.Client`.

httpx (a dependency of vLLM, so present wherever vLLM is) does the HTTP: the keep-alive pool of at most
the in-flight bound of connections per server, dropping connections the server closed while idle before
they are reused, timeouts, and mapping socket errors to its own exceptions.  Ours on top: which server a
request goes to, retries with backoff, giving a server up and moving its requests, and cutting running
requests off at once (httpx's `close()` leaves a thread blocked in a read until its timeout).

Failures are sorted by whose fault they are:
- the server rejects the request (4xx, e.g. prompt too long): only that request fails;
- the server is unavailable (connection refused/reset/dropped, 5xx): the request is retried with
  exponential backoff; when its retries run out, or it got no whole answer within the request timeout,
  that request fails alone if the server still answers its health check (GET /v1/models): one poisoned
  request must not take a healthy server, and every other problem of the run, down with it.  The server is
  marked down (reported once; its requests move to the other servers) only when it fails that check, or
  when `_DOWN_AFTER` different requests in a row failed on it that way;
- no server is left: every pending and future request fails at once with the causes.

The request timeout bounds the whole exchange, from connecting to the answer's last byte: every socket
operation of a request waits at most until the request's deadline (`_DeadlineBackend`), so a server that
drips its answer a byte at a time cannot hold a request past it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.util.text import exception_line
from tir_harness.util.text import one_line as _one_line

logger = logging.getLogger(__name__)

_MAX_DELAY = 30.0  # seconds; the longest single backoff sleep
_PROBE_TIMEOUT = 10.0  # seconds; check() and the liveness probe after a timed-out request
# Below the 5 s after which uvicorn (so vLLM) closes an idle connection: we drop it first, so a request is
# never sent on a connection the server is closing at that moment (a failure no one could tell from a crash).
_KEEPALIVE_EXPIRY = 4.0  # seconds
# The events of httpcore's `trace` request extension that hand over a new connection's socket.
_NEW_SOCKET_EVENTS = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})
# Different requests that failed in a row on one server (retries run out, or no answer in time), each time
# with the server still answering its health check, before the server itself counts as down.
_DOWN_AFTER = 3


def normalize_url(url: str) -> str:
    """`host:8000`, `http://host:8000/`, `http://host:8000/v1` all name the same server root."""
    text = url.strip()
    if not text:
        raise EngineError("--server-url: empty URL")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineError(f"--server-url {url}: not an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise EngineError(f"--server-url {url}: bad port") from exc
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


class _Aborted(httpx.TransportError):
    """A request on a server that was given up, or after the engine closed."""


def _transport_cause(exc: httpx.HTTPError) -> str:
    """A short cause for a transport failure, as a user would say it."""
    if isinstance(exc, _Aborted):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    # httpcore's own error for an EOF where the status line should be; there is no OSError under it.
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc):
        return "the server closed the connection without answering"
    # The socket's OSError says what happened.  httpx's error is raised from httpcore's, and that one from
    # the OSError, but httpcore's pool re-raises `from None`, which leaves the OSError as __context__ only.
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, BrokenPipeError):
        return "connection closed by the server"
    if isinstance(cause, socket.gaierror):
        return f"unknown host ({cause.strerror or cause})"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[0].lower() + cause.strerror[1:]
    return _one_line(f"{type(exc).__name__}: {exc}")


def _html_title(text: str) -> str | None:
    """The title of an HTML page (a proxy's or load balancer's error page), or None if `text` is not HTML."""
    head = text.lstrip()[:512].lower()
    if not head.startswith(("<!doctype html", "<html", "<head", "<body", "<title")):
        return None
    start = text.lower().find("<title>")
    end = text.lower().find("</title>", start)
    return _one_line(text[start + 7 : end], 120) if 0 <= start < end else ""


def _server_message(status: int, body: bytes) -> str:
    """The error text of an HTTP answer: OpenAI's {"error": {"message"}}, older vLLM's, FastAPI's."""
    text = body.decode("utf-8", "replace")
    title = _html_title(text)
    if title is not None:  # a page for people, not an API answer: its title says all there is
        return f"HTTP {status}: an HTML page" + (f" ({title})" if title else "")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            text = str(err["message"])
        elif isinstance(err, str):
            text = err
        elif data.get("message"):
            text = str(data["message"])
        elif data.get("detail"):
            text = str(data["detail"])
    text = _one_line(text) if text.strip() else httpx.codes.get_reason_phrase(status)
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


class _Unreadable(ValueError):
    """A 200 answer that holds no completion; the message says what is wrong with it."""


def _count(value: Any) -> int:
    """A token count from a server: a non-negative int, else 0 (usage is informative, never worth a failure)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: SSLSocket.shutdown() first drops its SSL object,
    # and a thread reading it would then raise ValueError, which httpx does not map, instead of an OSError.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or never connected


class _Deadline(threading.local):
    at: float | None = None  # time.monotonic() by which the calling thread's request must be over

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        """`timeout` for one socket operation, cut to the time left; raises `error` when none is."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the request's deadline passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the calling thread's deadline.

    httpx's timeouts bound each read, not the answer: a server sending a byte every half second never
    trips a read timeout.  Here each wait gets what is left of the request's time, and none once it is out."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, as `_DeadlineStream`s."""

    def __init__(self, deadline: _Deadline) -> None:
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - servers are named by URL, never by socket path
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options), self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _Client:
    """One server's `httpx.Client`, shared by its worker threads, with `abort()` callable from any thread.

    Closing an httpx client closes its sockets, but a thread blocked reading one sleeps on until the read
    timeout (minutes of generation).  Shutting a socket down wakes it at once; httpx has no call for that,
    so the sockets are collected as they connect, through the `trace` request extension.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        connections: int,
        connect_timeout: float,
        timeout: float,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._aborted = False
        limits = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=_KEEPALIVE_EXPIRY
        )
        # No transport retries: a failed connect is retried by the engine, with backoff and counted.
        transport = httpx.HTTPTransport(verify=ssl_context, limits=limits, trust_env=False)
        # httpx takes no network backend: its pool is made again, with the same settings and the deadline's.
        self._deadline = _Deadline()
        transport._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(self._deadline),
        )
        # trust_env=False: the servers are talked to directly, as named, never through *_PROXY or .netrc.
        self._client = httpx.Client(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            trust_env=False,
        )

    def request(
        self, method: str, path: str, body: bytes | None = None, *, read_timeout: float | None = None
    ) -> tuple[int, bytes]:
        """One exchange: the status and the body, all of it within the read timeout (`request_timeout`, or
        `read_timeout` if given) from the start; raises httpx.HTTPError (httpx.ReadTimeout once it is out)."""
        if self._aborted:
            raise _Aborted("request aborted")
        timeout = self._client.timeout
        if read_timeout is not None:
            timeout = httpx.Timeout(read_timeout, connect=timeout.connect)
        assert timeout.read is not None
        self._deadline.at = time.monotonic() + timeout.read
        try:
            response = self._client.request(
                method,
                path,
                content=body,
                headers={"Content-Type": "application/json"} if body is not None else None,
                timeout=timeout,
                extensions={"trace": self._trace},
            )
        except RuntimeError as exc:  # httpx refuses a closed client; close() may come while a probe runs
            if self._client.is_closed:
                raise _Aborted("request aborted") from exc
            raise
        finally:
            self._deadline.at = None
        return response.status_code, response.content

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in _NEW_SOCKET_EVENTS:
            return
        sock = info["return_value"].get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.add(sock)
            aborted = self._aborted
        if aborted:  # connected while abort() ran: it could not see this socket
            _shutdown(sock)

    def abort(self) -> None:
        """Make the running and every later request fail at once (the client is not used again)."""
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def close(self) -> None:
        self.abort()
        self._client.close()


@dataclass
class _Job:
    request: GenerationRequest
    future: Future[Completion]
    payload: bytes
    started: bool = False  # the future was moved to "running" (it can no longer be cancelled)
    attempts: int = 0  # failed attempts on the current server


@dataclass
class _Server:
    url: str
    index: int
    cond: threading.Condition
    client: _Client
    queue: deque[_Job] = field(default_factory=deque)
    workers: list[threading.Thread] = field(default_factory=list)
    idle: int = 0  # workers waiting for a job
    inflight: int = 0  # jobs queued for or running on this server
    assigned: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    failing: int = 0  # different requests that failed for good in a row here, since it last answered one
    down: str | None = None  # the cause, once the server is marked down
    models: tuple[str, ...] = ()
    version: str | None = None


class OpenAIEngine:
    """`Engine` over OpenAI-compatible `/v1/completions` endpoints; see the module docstring.

    `check()` probes every server and settles the model name; `submit()` calls it on first use if the
    caller did not.  A server that stays down is reported once through `logging` (and `on_warning`, if
    given) and listed in `info()["down"]`; it is not taken back during the run.
    """

    def __init__(
        self,
        urls: Sequence[str],
        model: str | None = None,
        *,
        max_inflight_per_server: int = 32,
        request_timeout: float = 600.0,
        connect_timeout: float = 10.0,
        connect_retries: int = 6,
        backoff: float = 0.5,
        api_key: str | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(urls, str):
            urls = [u for u in urls.split(",") if u.strip()]
        if not urls:
            raise EngineError("--server-url: no server URL given")
        if max_inflight_per_server < 1:
            raise EngineError(f"max_inflight_per_server must be >= 1, got {max_inflight_per_server}")
        if connect_retries < 0 or backoff < 0 or request_timeout <= 0 or connect_timeout <= 0:
            raise EngineError("connect_retries and backoff must be >= 0, timeouts > 0")
        normal: list[str] = []
        for url in urls:
            text = normalize_url(url)
            if text not in normal:
                normal.append(text)
        self.model = model
        self.max_inflight_per_server = max_inflight_per_server
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.connect_retries = connect_retries
        self.backoff = backoff
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._on_warning = on_warning
        self._lock = threading.Lock()
        # The system's trust store, as the standard library uses, rather than httpx's default (certifi's):
        # a cluster's own CA is in the former.
        ssl_context = ssl.create_default_context()
        self._servers = [
            _Server(
                url,
                i,
                threading.Condition(self._lock),
                _Client(
                    url,
                    self._headers,
                    connections=max_inflight_per_server,
                    connect_timeout=connect_timeout,
                    timeout=request_timeout,
                    ssl_context=ssl_context,
                ),
            )
            for i, url in enumerate(normal)
        ]
        self._pending: deque[_Job] = deque()
        self._closing = False
        self._checked = False
        self._check_error: EngineError | None = None
        self._check_lock = threading.Lock()
        self._check_warnings: list[str] = []

    # ------------------------------------------------------------------ session start

    def check(self) -> list[str]:
        """Probe every server (GET /v1/models, /version) and settle the model; returns warnings.

        Raises EngineError (one line naming the URL and the cause) when no server answers like an
        OpenAI server, or when the model is missing or ambiguous.  Unreachable servers among live ones
        are marked down and named in the returned warning, which is also logged once.
        """
        with self._check_lock:
            if self._closing and not self._checked:  # the clients are closed: a probe would say nothing true
                raise EngineError("the OpenAI engine is closed")
            if self._check_error is not None:
                raise self._check_error
            if self._checked:
                return list(self._check_warnings)
            try:
                self._check_warnings = self._check()
            except EngineError as exc:
                self._check_error = exc
                raise
            self._checked = True
            return list(self._check_warnings)

    def _check(self) -> list[str]:
        causes: dict[str, str] = {}
        for server in self._servers:
            cause = self._probe(server)
            if cause is not None:
                causes[server.url] = cause
        live = [s for s in self._servers if s.url not in causes]
        if not live:
            raise EngineError("; ".join(f"--server-url {url}: {cause}" for url, cause in causes.items()))
        self.model = self._settle_model(live)
        warnings: list[str] = []
        for url, cause in causes.items():
            warnings.append(f"--server-url {url}: {cause}; continuing with {len(live)} of {len(self._servers)} servers")
        with self._lock:
            for server in self._servers:
                if server.url in causes:
                    server.down = causes[server.url]
        for message in warnings:
            self._warn(message)
        return warnings

    def _probe(self, server: _Server) -> str | None:
        """None if the server answers GET /v1/models like an OpenAI server, else the cause."""
        try:
            status, body = server.client.request("GET", "/v1/models", read_timeout=_PROBE_TIMEOUT)
        except httpx.HTTPError as exc:
            return _transport_cause(exc)
        if status in (401, 403):
            return f"{_server_message(status, body)} (set OPENAI_API_KEY to the server's --api-key)"
        try:
            data = json.loads(body)
            models = tuple(str(m["id"]) for m in data["data"])
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {status}" if status != 200 else "the answer is not a model list"
            return f"not an OpenAI-compatible server (GET /v1/models: {detail})"
        server.models = models
        try:
            status, body = server.client.request("GET", "/version", read_timeout=_PROBE_TIMEOUT)
            if status == 200:
                version = json.loads(body).get("version")
                server.version = str(version) if version else None
        except (httpx.HTTPError, ValueError, AttributeError):
            pass  # only vLLM has /version
        return None

    def _settle_model(self, live: list[_Server]) -> str:
        if self.model is not None:
            for server in live:
                if self.model not in server.models:
                    raise EngineError(
                        f"--server-url {server.url}: does not serve model {self.model!r} "
                        f"(it serves: {', '.join(server.models) or 'nothing'})"
                    )
            return self.model
        for server in live:
            if len(server.models) != 1:
                raise EngineError(
                    f"--server-url {server.url}: serves {len(server.models)} models "
                    f"({', '.join(server.models)}); name the one to use"
                )
        names = {s.models[0] for s in live}
        if len(names) > 1:
            served = ", ".join(f"{s.url} serves {s.models[0]}" for s in live)
            raise EngineError(f"--server-url: the servers serve different models: {served}")
        return names.pop()

    def _warn(self, message: str) -> None:
        logger.warning("%s", message)
        if self._on_warning is not None:
            self._on_warning(message)

    # ------------------------------------------------------------------ requests

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        try:
            self.check()
        except EngineError as exc:
            future.set_running_or_notify_cancel()
            future.set_exception(exc)
            return future
        job = _Job(request, future, self._payload(request))
        with self._lock:
            if self._closing:
                failures = [(job, EngineError("the OpenAI engine is closed"))]
            else:
                self._pending.append(job)
                failures = self._dispatch_locked()
        self._fail(failures)
        return future

    def _payload(self, request: GenerationRequest) -> bytes:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": 1,
            # vLLM extras: the harness renders <bos> and chat markup itself, and wants them kept
            # in the output; the stop string is reported in stop_reason, never in the text.
            "add_special_tokens": request.add_special_tokens,
            "skip_special_tokens": request.skip_special_tokens,
            "include_stop_str_in_output": False,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        return json.dumps(body).encode()

    def _dispatch_locked(self) -> list[tuple[_Job, BaseException]]:
        """Hand pending jobs to the least-loaded live servers with room; returns jobs to fail."""
        while self._pending:
            live = [s for s in self._servers if s.down is None]
            if not live:
                error = self._all_down_error()
                failures = [(job, error) for job in self._pending]
                self._pending.clear()
                return failures
            room = [s for s in live if s.inflight < self.max_inflight_per_server]
            if not room:
                break
            # Ties go to the server that got fewer requests so far, so idle servers share the work.
            server = min(room, key=lambda s: (s.inflight, s.assigned, s.index))
            job = self._pending.popleft()
            if not job.started:
                if not job.future.set_running_or_notify_cancel():
                    continue  # cancelled by the caller while it waited
                job.started = True
            job.attempts = 0
            server.inflight += 1
            server.assigned += 1
            server.queue.append(job)
            if len(server.queue) > server.idle and len(server.workers) < self.max_inflight_per_server:
                worker = threading.Thread(
                    target=self._work,
                    args=(server,),
                    daemon=True,
                    name=f"openai-engine-{server.index}-{len(server.workers)}",
                )
                server.workers.append(worker)
                worker.start()
            server.cond.notify()
        return []

    def _all_down_error(self) -> EngineError:
        causes = "; ".join(f"{s.url}: {s.down}" for s in self._servers)
        return EngineError(f"all servers down: {causes}")

    @staticmethod
    def _fail(failures: list[tuple[_Job, BaseException]]) -> None:
        # Outside the lock: done-callbacks may submit the next turn at once.
        for job, error in failures:
            if job.started:
                job.future.set_exception(error)
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)

    def _work(self, server: _Server) -> None:
        while True:
            with self._lock:
                server.idle += 1
                while not server.queue and not self._closing and server.down is None:
                    server.cond.wait()
                server.idle -= 1
                if not server.queue:
                    return
                job = server.queue.popleft()
            try:
                self._run(server, job)
            except Exception as exc:  # a bug of ours fails its request; it must never leave it waiting forever
                if not job.future.done():
                    error = EngineError(f"{server.url}: internal error: {exception_line(exc)}")
                    self._finish(server, job, error=error)

    def _run(self, server: _Server, job: _Job) -> None:
        """Serve one job on one server until it succeeds, fails, or must move elsewhere."""
        while True:
            with self._lock:
                closing, down = self._closing, server.down is not None
            if closing:
                return self._finish(server, job, error=EngineError("the OpenAI engine was closed"))
            if down:
                return self._requeue(server, job)
            started = time.monotonic()
            try:
                status, body = server.client.request("POST", "/v1/completions", job.payload)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):  # connected, but no whole answer
                # Not retried: the same request would take as long again.
                cause = f"no answer within {self.request_timeout:g} s"
                if self._failed_for_good(server, job, cause, f"{cause}, and no answer to GET /v1/models either"):
                    continue
                return None
            except httpx.HTTPError as exc:
                cause = _transport_cause(exc)
            else:
                if status == 200:
                    return self._succeed(server, job, body, time.monotonic() - started)
                cause = _server_message(status, body)
                if status < 500 and status not in (408, 429):
                    with self._lock:
                        server.failing = 0  # it answered: the request is at fault, not the server
                    return self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
            if not self._retry_or_give_up(server, job, cause):
                return None

    def _failed_for_good(self, server: _Server, job: _Job, cause: str, down_cause: str | None = None) -> bool:
        """A request failed on `server` past its retries or its time.  It fails alone while the server answers
        its health check: the fault is the request's (one the server resets every time, say), and other
        requests must not pay for it.  A server that does not answer, or that failed `_DOWN_AFTER` different
        requests in a row, is marked down and the request moves on: returns True, and the loop's head moves it."""
        with self._lock:
            if self._closing or server.down is not None:
                return True  # the loop's head settles it
            server.failing += 1
            in_a_row = server.failing
        if in_a_row < _DOWN_AFTER and self._answers(server):
            self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
            return False
        if in_a_row >= _DOWN_AFTER:
            self._mark_down(server, f"{cause}; {in_a_row} different requests failed in a row")
        else:
            self._mark_down(server, down_cause or cause)
        return True

    def _retry_or_give_up(self, server: _Server, job: _Job, cause: str) -> bool:
        """After a failure that may pass: wait and return True to retry, or settle the job."""
        with self._lock:
            if self._closing or server.down is not None:
                return True  # the loop's head settles it
            server.retries += 1
            job.attempts += 1
            exhausted = job.attempts > self.connect_retries
        if exhausted:
            return self._failed_for_good(server, job, cause)
        delay = min(self.backoff * 2 ** (job.attempts - 1), _MAX_DELAY)
        logger.info("%s: %s; retry %d/%d in %.2g s", server.url, cause, job.attempts, self.connect_retries, delay)
        with self._lock:
            server.cond.wait_for(lambda: self._closing or server.down is not None, timeout=delay)
        return True

    def _answers(self, server: _Server) -> bool:
        try:
            server.client.request("GET", "/v1/models", read_timeout=_PROBE_TIMEOUT)
            return True
        except httpx.HTTPError:
            return False

    def _succeed(self, server: _Server, job: _Job, body: bytes, seconds: float) -> None:
        try:
            completion = self._completion(body, seconds, server.url)
        except _Unreadable as exc:
            return self._finish(server, job, error=EngineError(f"{server.url}: unreadable response: {exc}"))
        with self._lock:
            server.failing = 0
        return self._finish(server, job, completion=completion)

    @staticmethod
    def _completion(body: bytes, seconds: float, url: str) -> Completion:
        """The completion in a 200 answer; every byte is the server's, so every field is checked."""
        text = body.decode("utf-8", "replace")
        title = _html_title(text)
        if title is not None:
            raise _Unreadable("an HTML page" + (f" ({title})" if title else ""))
        try:
            data = json.loads(text)
        except ValueError:
            raise _Unreadable(f"not JSON ({_one_line(text, 80) or 'empty body'})") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Unreadable("no choices in the answer")
        choice = choices[0]
        # A null text is no completion: taken as "" the turn would pass for a model that wrote nothing.
        if not isinstance(choice.get("text"), str):
            raise _Unreadable(f"choices[0].text is {json.dumps(choice.get('text'))[:40]}, not a string")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        stop_reason = choice.get("stop_reason")
        generated_tokens = _count(usage.get("completion_tokens"))
        # A server with a reasoning parser counts the thinking itself (OpenAI's reasoning_tokens).
        generated = usage.get("completion_tokens_details")
        reasoning = generated.get("reasoning_tokens") if isinstance(generated, dict) else None
        return Completion(
            text=choice["text"],
            finish_reason=str(choice.get("finish_reason") or "length"),
            stop_reason=stop_reason if isinstance(stop_reason, (str, int)) else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=generated_tokens,
            cached_tokens=_count(details["cached_tokens"]) if details.get("cached_tokens") is not None else None,
            # Anything but a count (null, "many", -1) is no count; more than the completion's own is cut to it.
            thinking_tokens=min(reasoning, generated_tokens) if _count(reasoning) == reasoning else None,
            seconds=seconds,
            extra={"server": url},
        )

    def _finish(
        self,
        server: _Server,
        job: _Job,
        *,
        completion: Completion | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            # Free the slot before resolving, so a callback that submits sees the true load.
            server.inflight -= 1
            if completion is not None:
                server.ok += 1
            else:
                server.failed += 1
            failures = self._dispatch_locked()
        if completion is not None:
            job.future.set_result(completion)
        else:
            failures.append((job, error or EngineError(f"{server.url}: request failed")))
        self._fail(failures)

    def _requeue(self, server: _Server, job: _Job) -> None:
        with self._lock:
            server.inflight -= 1
            self._pending.appendleft(job)
            failures = self._dispatch_locked()
        self._fail(failures)

    def _mark_down(self, server: _Server, cause: str) -> None:
        with self._lock:
            if server.down is not None or self._closing:
                return
            server.down = cause
            # Jobs not yet started here go back to the head of the queue, in their order.
            self._pending.extendleft(reversed(server.queue))
            server.inflight -= len(server.queue)
            server.queue.clear()
            server.client.abort()  # running requests there notice at once and move too
            server.cond.notify_all()
            left = sum(s.down is None for s in self._servers)
        self._warn(f"--server-url {server.url} is down ({cause}); {left} of {len(self._servers)} servers left")
        with self._lock:
            failures = self._dispatch_locked()
        self._fail(failures)

    # ------------------------------------------------------------------ manifest and shutdown

    def capacity(self) -> int | None:
        return None  # a server batches what it is sent; how much is its own setting

    def info(self) -> dict[str, Any]:
        with self._lock:
            versions = sorted({s.version for s in self._servers if s.version})
            return {
                "kind": "openai",
                "urls": [s.url for s in self._servers],
                "model": self.model,
                "server_version": versions[0] if len(versions) == 1 else (versions or None),
                "options": {
                    "max_inflight_per_server": self.max_inflight_per_server,
                    "request_timeout": self.request_timeout,
                    "connect_retries": self.connect_retries,
                    "backoff": self.backoff,
                },
                "requests": {
                    s.url: {"ok": s.ok, "failed": s.failed, "retries": s.retries, "inflight": s.inflight}
                    for s in self._servers
                },
                "queued": len(self._pending),
                "down": {s.url: s.down for s in self._servers if s.down is not None},
            }

    def close(self) -> None:
        """Cancel queued requests, abort running ones (their futures fail), join the workers, close the clients."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            jobs = list(self._pending)
            self._pending.clear()
            workers: list[threading.Thread] = []
            for server in self._servers:
                jobs.extend(server.queue)
                server.inflight -= len(server.queue)
                server.queue.clear()
                server.client.abort()
                server.cond.notify_all()
                workers.extend(server.workers)
        error = EngineError("the OpenAI engine was closed")
        for job in jobs:
            if not job.future.cancel():
                job.future.set_exception(error)
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(timeout=self.connect_timeout + 5)
        for server in self._servers:
            server.client.close()

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
