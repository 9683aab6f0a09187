"""An engine backed by one or more OpenAI-compatible servers (`vllm serve`, vLLM's api_server, a router, others).

Requests go to the least-loaded live server with a bounded number in flight per server; the rest wait in
one queue in the harness.  Every request is a task on one event loop, in one thread (`openai-engine-loop`),
over `engines/http.py`'s keep-alive connections: thousands in flight cost thousands of sockets, not
thousands of threads.  Futures are resolved on that thread, so their done-callbacks must not block (submitting
the next turn is fine).

How many requests one server gets at once (its window): at most `max_inflight_per_server`, or, given None,
as many as the server keeps up with.  A vLLM server says so in `/metrics` (`vllm:num_requests_running`,
`vllm:num_requests_waiting`, summed over its data-parallel engines): while its queue stays short the window
grows (up to `AUTO_CEILING`), and when the queue grows past a short allowance the window shrinks to this
client's share of what the server runs (backpressure: work waits in the harness, where it can still go to
another server, rather than in one server's queue).  A server without vLLM's metrics gets `DEFAULT_WINDOW`.

Failures are sorted by whose fault they are:
- the server rejects the request (4xx, e.g. prompt too long), or answers something that is no completion
  (a null text, an HTML page, a body over `max_response_bytes`): only that request fails;
- the server is unavailable (connection refused/reset/dropped, 5xx, 408, 429): the request is retried with
  exponential backoff; when its retries run out, or it got no whole answer within the request timeout,
  that request fails alone if the server still answers its health check (GET /v1/models): one poisoned
  request must not take a healthy server, and every other problem of the run, down with it.  The server is
  marked down (reported once; its queued and running requests move to the other servers) only when it fails
  that check, or when `_DOWN_AFTER` different requests in a row failed on it that way;
- no server is left: every pending and future request fails at once with the causes.

The request timeout bounds the whole exchange, from connecting to the answer's last byte (http.py), so a
server that drips its answer a byte at a time cannot hold a request past it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tir_harness.engines import http
from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.util.text import exception_line
from tir_harness.util.text import one_line as _one_line

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_DELAY = 30.0  # seconds; the longest single backoff sleep
_PROBE_TIMEOUT = 10.0  # seconds; check(), the liveness probe after a failed request, and /metrics
# Below the 5 s after which uvicorn (so vLLM) closes an idle connection: we drop it first, so a request is
# never sent on a connection the server is closing at that moment (a failure no one could tell from a crash).
_KEEPALIVE_EXPIRY = 4.0  # seconds
# Different requests that failed in a row on one server (retries run out, or no answer in time), each time
# with the server still answering its health check, before the server itself counts as down.
_DOWN_AFTER = 3
# The largest answer read: a completion of --max-turn-chars (1,000,000 characters) is at most 6 MB of JSON
# (every character escaped as \uXXXX); a server sending more is cut off, not read into memory.
MAX_RESPONSE_BYTES = 32 * 2**20
_METRICS_BYTES = 4 * 2**20  # a /metrics page; vLLM's is some 100 kB per engine
# Without a limit from the user: the window of a server without vLLM's metrics (vLLM's default max_num_seqs on
# most GPUs, so one server's batch is full), and how far a server with them may take it.
DEFAULT_WINDOW = 256
AUTO_CEILING = 8192
# A server's queue may hold this many requests (or an eighth of what it runs, if more) before the window
# shrinks: a short queue keeps its batch full between one request's end and the next one's arrival.
_QUEUE_ALLOWANCE = 16
_METRIC = re.compile(r"^(vllm:num_requests_(?:running|waiting))(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.M)


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
    text = _one_line(text) if text.strip() else _reason(status)
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


class _Unreadable(ValueError):
    """A 200 answer that holds no completion; the message says what is wrong with it."""


def _count(value: Any) -> int:
    """A token count from a server: a non-negative int, else 0 (usage is informative, never worth a failure)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def parse_load(text: str) -> tuple[int, int] | None:
    """(running, waiting) from a vLLM `/metrics` page, summed over its engines; None if it has neither."""
    totals: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        try:
            number = float(value)
        except ValueError:
            continue
        if number >= 0 and number == number and number != float("inf"):  # NaN and inf say nothing
            totals[name] = totals.get(name, 0.0) + number
    if "vllm:num_requests_running" not in totals or "vllm:num_requests_waiting" not in totals:
        return None
    return int(totals["vllm:num_requests_running"]), int(totals["vllm:num_requests_waiting"])


@dataclass(eq=False)
class _Job:
    request: GenerationRequest
    future: Future[Completion]
    payload: bytes
    started: bool = False  # the future was moved to "running" (it can no longer be cancelled)
    attempts: int = 0  # failed attempts on the current server


@dataclass(eq=False)
class _Server:
    url: str
    index: int
    client: http.Client
    window: int  # requests in flight allowed now
    ceiling: int  # the most the window may grow to
    running: dict[_Job, asyncio.Task[None]] = field(default_factory=dict)  # jobs in flight here, in order
    assigned: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    failing: int = 0  # different requests that failed for good in a row here, since it last answered one
    down: str | None = None  # the cause, once the server is marked down
    models: tuple[str, ...] = ()
    version: str | None = None
    metrics: bool = False  # it reports vLLM's load in /metrics
    load: tuple[int, int] | None = None  # (running, waiting) as it last reported
    watcher: asyncio.Task[None] | None = None

    @property
    def inflight(self) -> int:
        return len(self.running)


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
        max_inflight_per_server: int | None = 32,
        request_timeout: float = 600.0,
        connect_timeout: float = 10.0,
        connect_retries: int = 6,
        backoff: float = 0.5,
        api_key: str | None = None,
        on_warning: Callable[[str], None] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        metrics_interval: float = 1.0,
    ) -> None:
        if isinstance(urls, str):
            urls = [u for u in urls.split(",") if u.strip()]
        if not urls:
            raise EngineError("--server-url: no server URL given")
        if max_inflight_per_server is not None and max_inflight_per_server < 1:
            raise EngineError(f"max_inflight_per_server must be >= 1, got {max_inflight_per_server}")
        if connect_retries < 0 or backoff < 0 or request_timeout <= 0 or connect_timeout <= 0:
            raise EngineError("connect_retries and backoff must be >= 0, timeouts > 0")
        if max_response_bytes < 1024 or metrics_interval <= 0:
            raise EngineError("max_response_bytes must be >= 1024 and metrics_interval > 0")
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
        self.max_response_bytes = max_response_bytes
        self.metrics_interval = metrics_interval
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._on_warning = on_warning
        # The system's trust store, as the standard library uses: a cluster's own CA is in it.
        ssl_context = ssl.create_default_context() if any(u.startswith("https:") for u in normal) else None
        window = max_inflight_per_server or DEFAULT_WINDOW
        self._servers = [
            _Server(
                url,
                i,
                http.Client(
                    url,
                    headers,
                    connect_timeout=connect_timeout,
                    max_body=max_response_bytes,
                    ssl_context=ssl_context,
                    keepalive_expiry=_KEEPALIVE_EXPIRY,
                ),
                window=window,
                ceiling=window,
            )
            for i, url in enumerate(normal)
        ]
        self._pending: deque[_Job] = deque()  # touched on the loop thread only, like every _Server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Guards _closing and handing work to the loop: close() queues its own work behind every submit's.
        self._gate = threading.Lock()
        self._closing = False
        self._dead: EngineError | None = None  # set once every server is down: later submits fail at once
        self._checked = False
        self._check_error: EngineError | None = None
        self._check_lock = threading.Lock()
        self._check_warnings: list[str] = []

    # ------------------------------------------------------------------ the event loop

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._gate:
            if self._closing:
                raise EngineError("the OpenAI engine is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="openai-engine-loop", daemon=True
                )
                self._thread.start()
            return self._loop

    def _on_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for it (from any thread but the loop's own)."""
        loop = self._start_loop()
        if self._on_loop():
            coro.close()
            raise EngineError("internal error: a blocking engine call from the engine's own thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the loop thread, where the servers' state lives; runs it here once the loop is gone."""
        loop = self._loop
        if loop is None or self._on_loop() or loop.is_closed():
            return fn()

        async def call() -> T:
            return fn()

        try:
            return asyncio.run_coroutine_threadsafe(call(), loop).result()
        except RuntimeError:  # the loop closed meanwhile
            return fn()

    # ------------------------------------------------------------------ session start

    def check(self) -> list[str]:
        """Probe every server (GET /v1/models, /version, /metrics) and settle the model; returns warnings.

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
        async def probe_all() -> list[str | None]:
            return list(await asyncio.gather(*(self._probe(s) for s in self._servers)))

        results = self._await(probe_all())
        causes = {s.url: cause for s, cause in zip(self._servers, results, strict=True) if cause is not None}
        live = [s for s in self._servers if s.url not in causes]
        if not live:
            raise EngineError("; ".join(f"--server-url {url}: {cause}" for url, cause in causes.items()))
        self.model = self._settle_model(live)
        warnings: list[str] = []
        for url, cause in causes.items():
            warnings.append(f"--server-url {url}: {cause}; continuing with {len(live)} of {len(self._servers)} servers")

        def settle() -> None:
            for server in self._servers:
                if server.url in causes:
                    server.down = causes[server.url]
                    server.client.close()
                elif server.metrics and self._loop is not None:
                    server.watcher = self._loop.create_task(self._watch(server))

        self._call(settle)
        for message in warnings:
            self._warn(message)
        return warnings

    async def _probe(self, server: _Server) -> str | None:
        """None if the server answers GET /v1/models like an OpenAI server, else the cause."""
        try:
            status, body = await server.client.request("GET", "/v1/models", timeout=_PROBE_TIMEOUT)
        except (http.HTTPError, http.TooLarge) as exc:
            return str(exc)
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
            status, body = await server.client.request("GET", "/version", timeout=_PROBE_TIMEOUT)
            if status == 200:
                version = json.loads(body).get("version")
                server.version = str(version) if version else None
        except (http.HTTPError, http.TooLarge, ValueError, AttributeError):
            pass  # only vLLM has /version
        load = await self._read_load(server)
        if load is not None:
            server.metrics, server.load = True, load
            if self.max_inflight_per_server is None:
                server.ceiling = AUTO_CEILING
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
            job = _Job(request, future, self._payload(request))
            with self._gate:
                if self._closing:
                    raise EngineError("the OpenAI engine is closed")
                if self._dead is not None:  # no waiting at all once nothing is left
                    raise self._dead
                assert self._loop is not None  # check() started it
                self._loop.call_soon_threadsafe(self._enqueue, job)
        except EngineError as exc:
            future.set_running_or_notify_cancel()
            future.set_exception(exc)
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

    def _enqueue(self, job: _Job) -> None:
        if self._closing:
            return self._fail([(job, EngineError("the OpenAI engine is closed"))])
        self._pending.append(job)
        self._fail(self._dispatch())

    def _dispatch(self) -> list[tuple[_Job, BaseException]]:
        """Start pending jobs on the least-loaded live servers with room; returns jobs to fail."""
        assert self._loop is not None
        while self._pending:
            live = [s for s in self._servers if s.down is None]
            if not live:
                error = self._all_down_error()
                failures = [(job, error) for job in self._pending]
                self._pending.clear()
                return failures
            room = [s for s in live if s.inflight < s.window]
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
            server.assigned += 1
            server.running[job] = self._loop.create_task(self._serve(server, job))
        return []

    def _all_down_error(self) -> EngineError:
        causes = "; ".join(f"{s.url}: {s.down}" for s in self._servers)
        return EngineError(f"all servers down: {causes}")

    @staticmethod
    def _fail(failures: list[tuple[_Job, BaseException]]) -> None:
        for job, error in failures:
            if job.started:
                job.future.set_exception(error)
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)

    async def _serve(self, server: _Server, job: _Job) -> None:
        try:
            await self._run(server, job)
        except asyncio.CancelledError:
            raise  # whoever cancelled it (a server given up, close()) settled the job
        except Exception as exc:  # a bug of ours fails its request; it must never leave it waiting forever
            error = EngineError(f"{server.url}: internal error: {exception_line(exc)}")
            self._finish(server, job, error=error)

    async def _run(self, server: _Server, job: _Job) -> None:
        """Serve one job on one server until it succeeds, fails, or must move elsewhere."""
        while True:
            if server.down is not None:
                return self._requeue(server, job)
            started = time.monotonic()
            try:
                status, body = await server.client.request(
                    "POST", "/v1/completions", job.payload, timeout=self.request_timeout
                )
            except http.Deadline:  # connected, but no whole answer
                # Not retried: the same request would take as long again.
                cause = f"no answer within {self.request_timeout:g} s"
                if await self._failed_for_good(server, job, cause, f"{cause}, and no answer to GET /v1/models either"):
                    continue
                return None
            except http.TooLarge as exc:  # the server's doing, but of this answer only
                return self._finish(server, job, error=EngineError(f"{server.url}: unreadable response: {exc}"))
            except http.HTTPError as exc:
                cause = str(exc)
            else:
                if status == 200:
                    return self._succeed(server, job, body, time.monotonic() - started)
                cause = _server_message(status, body)
                if status < 500 and status not in (408, 429):
                    server.failing = 0  # it answered: the request is at fault, not the server
                    return self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
            if not await self._retry_or_give_up(server, job, cause):
                return None

    async def _failed_for_good(self, server: _Server, job: _Job, cause: str, down_cause: str | None = None) -> bool:
        """A request failed on `server` past its retries or its time.  It fails alone while the server answers
        its health check: the fault is the request's (one the server resets every time, say), and other
        requests must not pay for it.  A server that does not answer, or that failed `_DOWN_AFTER` different
        requests in a row, is marked down and the request moves on: returns True, and the loop's head moves it."""
        answers = server.down is None and await self._answers(server)
        if server.down is not None:
            return True  # given up meanwhile (by another request): the loop's head moves this one
        if not answers:
            self._mark_down(server, down_cause or cause)
            return True
        # Counted only once the server answered: requests failing at once on a server that is gone (each
        # still waiting for its probe) are one cause, not several.
        server.failing += 1
        if server.failing >= _DOWN_AFTER:
            self._mark_down(server, f"{cause}; {server.failing} different requests failed in a row")
            return True
        self._finish(server, job, error=EngineError(f"{server.url}: {cause}"))
        return False

    async def _retry_or_give_up(self, server: _Server, job: _Job, cause: str) -> bool:
        """After a failure that may pass: wait and return True to retry, or settle the job."""
        if server.down is not None:
            return True
        server.retries += 1
        job.attempts += 1
        if job.attempts > self.connect_retries:
            return await self._failed_for_good(server, job, cause)
        delay = min(self.backoff * 2 ** (job.attempts - 1), _MAX_DELAY)
        logger.info("%s: %s; retry %d/%d in %.2g s", server.url, cause, job.attempts, self.connect_retries, delay)
        await asyncio.sleep(delay)  # cancelled at once if the server is given up or the engine closes
        return True

    async def _answers(self, server: _Server) -> bool:
        try:
            await server.client.request("GET", "/v1/models", timeout=_PROBE_TIMEOUT)
            return True
        except (http.HTTPError, http.TooLarge):
            return False

    def _succeed(self, server: _Server, job: _Job, body: bytes, seconds: float) -> None:
        try:
            completion = self._completion(body, seconds, server.url)
        except _Unreadable as exc:
            return self._finish(server, job, error=EngineError(f"{server.url}: unreadable response: {exc}"))
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
        if server.running.pop(job, None) is None:
            return  # moved or settled by someone else meanwhile
        if completion is not None:
            server.ok += 1
        else:
            server.failed += 1
        # Free the slot before resolving, so a callback that submits sees the true load.
        failures = self._dispatch()
        if completion is not None:
            job.future.set_result(completion)
        else:
            failures.append((job, error or EngineError(f"{server.url}: request failed")))
        self._fail(failures)

    def _requeue(self, server: _Server, job: _Job) -> None:
        if server.running.pop(job, None) is None:
            return
        self._pending.appendleft(job)
        self._fail(self._dispatch())

    def _mark_down(self, server: _Server, cause: str) -> None:
        if server.down is not None or self._closing:
            return
        server.down = cause
        # Its running requests go back to the head of the queue, in their order; the calling task's own job
        # moves when its loop sees the server down.
        current = asyncio.current_task()
        moved = [job for job, task in server.running.items() if task is not current]
        for job in moved:
            server.running.pop(job).cancel()
        self._pending.extendleft(reversed(moved))
        server.client.close()
        if server.watcher is not None and server.watcher is not current:
            server.watcher.cancel()
        left = sum(s.down is None for s in self._servers)
        if not left:
            with self._gate:
                self._dead = self._all_down_error()
        self._warn(f"--server-url {server.url} is down ({cause}); {left} of {len(self._servers)} servers left")
        self._fail(self._dispatch())

    # ------------------------------------------------------------------ backpressure

    async def _read_load(self, server: _Server) -> tuple[int, int] | None:
        try:
            status, body = await server.client.request(
                "GET", "/metrics", timeout=_PROBE_TIMEOUT, max_body=_METRICS_BYTES
            )
        except (http.HTTPError, http.TooLarge):
            return None
        return parse_load(body.decode("utf-8", "replace")) if status == 200 else None

    async def _watch(self, server: _Server) -> None:
        """Adapt the server's window to its load, as long as it is up (a failed read changes nothing)."""
        while server.down is None and not self._closing:
            await asyncio.sleep(self.metrics_interval)
            if not server.running and not self._pending:
                continue  # idle: nothing to learn, nothing to send
            load = await self._read_load(server)
            if load is not None and server.down is None:
                self.adapt(server, *load)

    def adapt(self, server: _Server, running: int, waiting: int) -> None:
        """Set `server`'s window from the load it reports (on the loop thread)."""
        server.load = (running, waiting)
        allowance = max(_QUEUE_ALLOWANCE, running // 8)
        if waiting > allowance and server.inflight:
            # Our share of what it runs plus the allowance: other clients of the server shrink theirs alike.
            share = server.inflight * (running + allowance) / (running + waiting)
            server.window = max(1, min(server.window, int(share)))
        elif waiting <= allowance and server.inflight >= server.window and self._pending:
            server.window = min(server.ceiling, server.window + max(1, server.window // 2))
        self._fail(self._dispatch())

    # ------------------------------------------------------------------ manifest and shutdown

    def capacity(self) -> int | None:
        return None  # a server batches what it is sent; how much is its own setting

    def info(self) -> dict[str, Any]:
        return self._call(self._info)

    def _info(self) -> dict[str, Any]:
        versions = sorted({s.version for s in self._servers if s.version})
        return {
            "kind": "openai",
            "urls": [s.url for s in self._servers],
            "model": self.model,
            "server_version": versions[0] if len(versions) == 1 else (versions or None),
            "options": {
                "max_inflight_per_server": self.max_inflight_per_server or "auto",
                "request_timeout": self.request_timeout,
                "connect_retries": self.connect_retries,
                "backoff": self.backoff,
                "max_response_bytes": self.max_response_bytes,
            },
            "requests": {
                s.url: {
                    "ok": s.ok,
                    "failed": s.failed,
                    "retries": s.retries,
                    "inflight": s.inflight,
                    "window": s.window,
                    "server_load": list(s.load) if s.load is not None else None,
                }
                for s in self._servers
            },
            "queued": len(self._pending),
            "down": {s.url: s.down for s in self._servers if s.down is not None},
        }

    def close(self) -> None:
        """Cancel queued requests, abort running ones (their futures fail), stop the loop, close the connections."""
        with self._gate:
            if self._closing:
                return
            self._closing = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._on_loop():  # from a done-callback: settle everything now, let the loop end by itself
            self._abort_all()
            loop.stop()
            return

        async def shut() -> None:
            tasks = self._abort_all()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=self.connect_timeout + 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self.connect_timeout + 5)
        if not thread.is_alive():
            loop.close()

    def _abort_all(self) -> list[asyncio.Task[None]]:
        error = EngineError("the OpenAI engine was closed")
        tasks: list[asyncio.Task[None]] = []
        jobs = list(self._pending)
        self._pending.clear()
        for job in jobs:
            if not job.future.cancel():
                job.future.set_exception(error)
        for server in self._servers:
            running = list(server.running.items())
            server.running.clear()
            for job, task in running:
                task.cancel()
                tasks.append(task)
                job.future.set_exception(error)
            if server.watcher is not None:
                server.watcher.cancel()
                tasks.append(server.watcher)
            server.client.close()
        return tasks

    def __enter__(self) -> OpenAIEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
