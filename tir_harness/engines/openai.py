"""An engine backed by one or more OpenAI-compatible servers (`vllm serve`, vLLM's api_server, others).

Requests go to the least-loaded live server with a bounded number in flight per server; the rest wait in
one queue.  Each server has a small pool of worker threads (grown on demand up to the in-flight bound),
each holding one keep-alive HTTP connection; only the standard library is used, so a machine that only
talks to remote servers needs neither vLLM nor an HTTP client package.

Failures are sorted by whose fault they are:
- the server rejects the request (4xx, e.g. prompt too long): only that request fails;
- the server is unavailable (connection refused/reset/dropped, 5xx): the request is retried with
  exponential backoff; when its retries run out and the server answered nothing else meanwhile, the
  server is marked down (reported once) and its requests move to the other servers;
- no server is left: every pending and future request fails at once with the causes.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.util.text import one_line as _one_line

logger = logging.getLogger(__name__)

_MAX_DELAY = 30.0  # seconds; the longest single backoff sleep
_PROBE_TIMEOUT = 10.0  # seconds; check() and the liveness probe after a timed-out request
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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


def _transport_cause(exc: BaseException) -> str:
    """A short cause for a transport failure, as a user would say it."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by the server"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
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
    text = _one_line(text) if text.strip() else http.client.responses.get(status, "")
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


@dataclass(frozen=True)
class _Endpoint:
    url: str
    https: bool
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> _Endpoint:
        normal = normalize_url(url)
        parts = urlsplit(normal)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        return cls(normal, https, parts.hostname or "", port, parts.path)


class _Unreadable(ValueError):
    """A 200 answer that holds no completion; the message says what is wrong with it."""


def _count(value: Any) -> int:
    """A token count from a server: a non-negative int, else 0 (usage is informative, never worth a failure)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class _AnswerTimeout(TimeoutError):
    """Connected, sent, but no answer within the request timeout."""


class _Link:
    """One keep-alive HTTP connection, used by one thread at a time; `abort()` may come from any thread."""

    def __init__(self, endpoint: _Endpoint, headers: dict[str, str], connect_timeout: float, timeout: float):
        self._endpoint = endpoint
        self._headers = headers
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._aborted = False

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._endpoint.https else http.client.HTTPConnection
        conn = cls(self._endpoint.host, self._endpoint.port, timeout=self._connect_timeout)
        conn.connect()
        if conn.sock is not None:  # connecting should be quick; a generation may take minutes
            conn.sock.settimeout(self._timeout)
        return conn

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One exchange; raises _AnswerTimeout if connected but no answer came within the timeout."""
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        for _ in range(2):
            reused = self._conn is not None
            if not reused and not self._aborted:
                self._conn = self._connect()
            if self._aborted:  # checked after connecting too: abort() may have missed the new socket
                self.close()
                raise ConnectionAbortedError("request aborted")
            assert self._conn is not None
            try:
                self._conn.request(method, self._endpoint.base_path + path, body, headers)
                response = self._conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except TimeoutError as exc:
                self.close()
                raise _AnswerTimeout() from exc
            except _STALE:
                self.close()
                # Servers close idle keep-alive connections (uvicorn after 5 s): that is no failure,
                # reconnect once at once; a fresh connection failing the same way is one.
                if not reused or self._aborted:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def abort(self) -> None:
        """Make the running and every later request fail at once (the link is not used again)."""
        self._aborted = True
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@dataclass
class _Job:
    request: GenerationRequest
    future: Future[Completion]
    payload: bytes
    started: bool = False  # the future was moved to "running" (it can no longer be cancelled)
    attempts: int = 0  # failed attempts on the current server
    first_failure: float | None = None


@dataclass
class _Server:
    endpoint: _Endpoint
    index: int
    cond: threading.Condition
    queue: deque[_Job] = field(default_factory=deque)
    workers: list[threading.Thread] = field(default_factory=list)
    links: set[_Link] = field(default_factory=set)
    idle: int = 0  # workers waiting for a job
    inflight: int = 0  # jobs queued for or running on this server
    assigned: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    last_success: float = float("-inf")
    down: str | None = None  # the cause, once the server is marked down
    models: tuple[str, ...] = ()
    version: str | None = None

    @property
    def url(self) -> str:
        return self.endpoint.url


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
        endpoints: list[_Endpoint] = []
        for url in urls:
            endpoint = _Endpoint.parse(url)
            if endpoint.url not in [e.url for e in endpoints]:
                endpoints.append(endpoint)
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
        self._servers = [_Server(e, i, threading.Condition(self._lock)) for i, e in enumerate(endpoints)]
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
        link = _Link(server.endpoint, self._headers, self.connect_timeout, _PROBE_TIMEOUT)
        try:
            status, body = link.request("GET", "/v1/models")
        except (OSError, http.client.HTTPException) as exc:
            return _transport_cause(exc)
        finally:
            link.close()
        if status in (401, 403):
            return f"{_server_message(status, body)} (set OPENAI_API_KEY to the server's --api-key)"
        try:
            data = json.loads(body)
            models = tuple(str(m["id"]) for m in data["data"])
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {status}" if status != 200 else "the answer is not a model list"
            return f"not an OpenAI-compatible server (GET /v1/models: {detail})"
        server.models = models
        link = _Link(server.endpoint, self._headers, self.connect_timeout, _PROBE_TIMEOUT)
        try:
            status, body = link.request("GET", "/version")
            if status == 200:
                version = json.loads(body).get("version")
                server.version = str(version) if version else None
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # only vLLM has /version
        finally:
            link.close()
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
            "skip_special_tokens": False,
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
            job.attempts, job.first_failure = 0, None
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
        link = _Link(server.endpoint, self._headers, self.connect_timeout, self.request_timeout)
        with self._lock:
            server.links.add(link)
        try:
            while True:
                with self._lock:
                    server.idle += 1
                    while not server.queue and not self._closing and server.down is None:
                        server.cond.wait()
                    server.idle -= 1
                    if not server.queue:
                        return
                    job = server.queue.popleft()
                self._run(server, job, link)
        finally:
            link.close()
            with self._lock:
                server.links.discard(link)

    def _run(self, server: _Server, job: _Job, link: _Link) -> None:
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
                status, body = link.request("POST", "/v1/completions", job.payload)
            except _AnswerTimeout:
                if self._answers(server):
                    error = EngineError(f"{server.url}: no answer within {self.request_timeout:g} s")
                    return self._finish(server, job, error=error)
                # It neither generates nor answers a probe: no use waiting on it again.
                self._mark_down(
                    server, f"no answer within {self.request_timeout:g} s, and no answer to GET /v1/models either"
                )
                continue
            except (OSError, http.client.HTTPException) as exc:
                cause, transport = _transport_cause(exc), True
            else:
                transport = False
                if status == 200:
                    return self._succeed(server, job, body, time.monotonic() - started)
                cause = _server_message(status, body)
                if status < 500 and status not in (408, 429):
                    return self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
            if not self._retry_or_give_up(server, job, cause, transport):
                return None

    def _retry_or_give_up(self, server: _Server, job: _Job, cause: str, transport: bool = False) -> bool:
        """After a failure that may pass: wait and return True to retry, or settle the job."""
        now = time.monotonic()
        with self._lock:
            if self._closing or server.down is not None:
                return True  # the loop's head settles it
            server.retries += 1
            job.attempts += 1
            if job.first_failure is None:
                job.first_failure = now
            exhausted = job.attempts > self.connect_retries
            healthy = server.last_success > job.first_failure
        if exhausted and healthy and not (transport and not self._answers(server)):
            # The server served others meanwhile and still answers: the fault is this request's.  (A server
            # that served others and then died is marked down below, and this request moves to a live one.)
            self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
            return False
        if exhausted:
            self._mark_down(server, cause)
            return True
        delay = min(self.backoff * 2 ** (job.attempts - 1), _MAX_DELAY)
        logger.info("%s: %s; retry %d/%d in %.2g s", server.url, cause, job.attempts, self.connect_retries, delay)
        with self._lock:
            server.cond.wait_for(lambda: self._closing or server.down is not None, timeout=delay)
        return True

    def _answers(self, server: _Server) -> bool:
        link = _Link(server.endpoint, self._headers, self.connect_timeout, _PROBE_TIMEOUT)
        try:
            link.request("GET", "/v1/models")
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            link.close()

    def _succeed(self, server: _Server, job: _Job, body: bytes, seconds: float) -> None:
        try:
            completion = self._completion(body, seconds, server.url)
        except _Unreadable as exc:
            return self._finish(server, job, error=EngineError(f"{server.url}: unreadable response: {exc}"))
        with self._lock:
            server.last_success = time.monotonic()
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
        return Completion(
            text=choice["text"],
            finish_reason=str(choice.get("finish_reason") or "length"),
            stop_reason=stop_reason if isinstance(stop_reason, (str, int)) else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_count(details["cached_tokens"]) if details.get("cached_tokens") is not None else None,
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
            for link in server.links:
                link.abort()  # running requests there notice at once and move too
            server.cond.notify_all()
            left = sum(s.down is None for s in self._servers)
        self._warn(f"--server-url {server.url} is down ({cause}); {left} of {len(self._servers)} servers left")
        with self._lock:
            failures = self._dispatch_locked()
        self._fail(failures)

    # ------------------------------------------------------------------ manifest and shutdown

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
        """Cancel queued requests, abort running ones (their futures fail), join the workers."""
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
                for link in server.links:
                    link.abort()
                server.cond.notify_all()
                workers.extend(server.workers)
        error = EngineError("the OpenAI engine was closed")
        for job in jobs:
            if not job.future.cancel():
                job.future.set_exception(error)
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(timeout=self.connect_timeout + 5)

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
