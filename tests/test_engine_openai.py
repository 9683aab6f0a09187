"""OpenAIEngine against scripted fake servers, `tir-harness serve` planning and lifecycle (the real vLLM server:
tests/test_real_server.py)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tir_harness.cli.serve import main, parse_args
from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.engines.openai import OpenAIEngine, normalize_url
from tir_harness.engines.serve import (
    CPU_DEFAULTS,
    ServerPlan,
    group_gpus,
    parse_gpus,
    plan_servers,
    vllm_args,
)

REPO = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds; a bound against hanging, never a synchronization


# ---------------------------------------------------------------------------- a scriptable fake server


@dataclass
class Reply:
    text: str = "ok"
    status: int = 200
    message: str = ""  # the error message for status != 200
    drop: bool = False  # close the connection without answering
    hold: threading.Event | None = None  # answer only once this is set
    finish_reason: str = "stop"
    stop_reason: str | int | None = None
    cached_tokens: int | None = None
    raw: bytes | None = None  # send these bytes as the body, as they are
    content_type: str = "application/json"
    drip: float = 0.0  # seconds between two bytes of the body (headers at once), as a stuck proxy may send it


class _Listener(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of clients connect at once; the default backlog of 5 drops their SYNs


@dataclass
class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 whose answers a test scripts through `respond`."""

    models: list[str] = field(default_factory=lambda: ["fake-model"])
    respond: Callable[[dict[str, Any]], Reply] = lambda body: Reply(text=f"echo:{body['prompt']}")
    port: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)  # may be shared by fakes
    metrics: Callable[[FakeOpenAI], str] | None = None  # the /metrics page (404 without), under `cond`
    tls: ssl.SSLContext | None = None  # serve HTTPS with this server-side context

    def __post_init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.drips: list[tuple[int, int]] = []  # (bytes of the body sent, its length) of each dripped answer
        self.active = 0
        self.max_active = 0
        self.holds: list[threading.Event] = []
        self._sockets: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with owner.cond:
                    owner._sockets.add(self.connection)

            def finish(self) -> None:
                with owner.cond:
                    owner._sockets.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _send(self, status: int, data: dict[str, Any], drip: float = 0.0) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not drip:
                    self.wfile.write(payload)
                    return
                sent = 0
                try:
                    self.wfile.flush()
                    while sent < len(payload):
                        time.sleep(drip)  # the server's pace, not a synchronization
                        self.wfile.write(payload[sent : sent + 1])
                        self.wfile.flush()
                        sent += 1
                except OSError:
                    self.close_connection = True
                finally:
                    with owner.cond:
                        owner.drips.append((sent, len(payload)))
                        owner.cond.notify_all()

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m} for m in owner.models]})
                elif self.path == "/version":
                    self._send(200, {"version": "fake-1.0"})
                elif self.path == "/metrics" and owner.metrics is not None:
                    with owner.cond:
                        page = owner.metrics(owner).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.cond:
                    owner.bodies.append(body)
                    owner.active += 1
                    owner.max_active = max(owner.max_active, owner.active)
                    owner.cond.notify_all()
                reply = Reply(status=500, message="no reply")
                try:
                    reply = owner.respond(body)
                    if reply.hold is not None:
                        reply.hold.wait(WAIT)
                finally:
                    # Before answering: the client may send its next request as soon as it reads this one.
                    with owner.cond:
                        owner.active -= 1
                        owner.cond.notify_all()
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif reply.raw is not None:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.raw)))
                    self.end_headers()
                    self.wfile.write(reply.raw)
                elif reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.message, "code": reply.status}})
                else:
                    details = None if reply.cached_tokens is None else {"cached_tokens": reply.cached_tokens}
                    self._send(200, {
                        "choices": [{"index": 0, "text": reply.text, "finish_reason": reply.finish_reason,
                                     "stop_reason": reply.stop_reason}],
                        "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": len(reply.text),
                                  "prompt_tokens_details": details},
                    }, reply.drip)  # fmt: skip

        httpd = _Listener(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()

    def die(self) -> None:
        """Stop listening and cut every open connection, like a killed process."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self.cond:
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restart(self) -> None:
        self.start()  # same port

    def hold(self) -> threading.Event:
        event = threading.Event()
        self.holds.append(event)
        return event

    def wait_until(self, predicate: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), "the fake server never saw the expected requests"

    def prompts(self) -> list[str]:
        with self.cond:
            return [b["prompt"] for b in self.bodies]

    def release(self) -> None:
        for event in self.holds:
            event.set()


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeOpenAI]]:
    made: list[FakeOpenAI] = []

    def make(**kwargs: Any) -> FakeOpenAI:
        made.append(FakeOpenAI(**kwargs))
        return made[-1]

    yield make
    for fake in made:
        fake.release()
        fake.die()


@pytest.fixture
def engines() -> Iterator[Callable[..., OpenAIEngine]]:
    made: list[OpenAIEngine] = []

    def make(urls: list[str], **kwargs: Any) -> OpenAIEngine:
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("connect_retries", 2)
        made.append(OpenAIEngine(urls, **kwargs))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def request(prompt: str, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(prompt, SamplingConfig(**sampling))


def result(future: Future[Completion]) -> Completion:
    return future.result(timeout=WAIT)


def failure(future: Future[Completion]) -> str:
    with pytest.raises(EngineError) as caught:
        future.result(timeout=WAIT)
    message = str(caught.value)
    assert "\n" not in message
    return message


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_threads(before: set[threading.Thread]) -> int:
    """Live worker threads started since `before` was taken: this test's engine's, not another test's."""
    return sum(t.name.startswith("openai-engine") for t in set(threading.enumerate()) - before)


# ---------------------------------------------------------------------------- requests and answers


def test_completion_is_mapped_and_the_request_carries_the_sampling_and_vllm_extras(fakes, engines):
    fake = fakes(respond=lambda body: Reply(text=" 2+3=5", stop_reason="```output", cached_tokens=7))
    engine = engines([fake.url])
    assert isinstance(engine, Engine)
    sampling = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 77, "seed": 5, "stop": ("```output", "---")}
    completion = result(engine.submit(request("<bos>Q: 2+3?", **sampling)))
    assert completion.text == " 2+3=5"
    assert (completion.finish_reason, completion.stop_reason) == ("stop", "```output")
    assert (completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens) == (12, 6, 7)
    assert completion.extra["server"] == fake.url
    (body,) = fake.bodies
    assert body == {
        "model": "fake-model", "prompt": "<bos>Q: 2+3?", "max_tokens": 77, "temperature": 0.7, "top_p": 0.9,
        "n": 1, "seed": 5, "stop": ["```output", "---"], "add_special_tokens": False,
        "skip_special_tokens": False, "include_stop_str_in_output": False,
    }  # fmt: skip


def test_reference_quirks_ask_the_server_to_add_a_bos_and_skip_special_tokens(fakes, engines):
    fake = fakes()
    engine = engines([fake.url])
    quirky = GenerationRequest("<bos>Q", SamplingConfig(), "r", add_special_tokens=True, skip_special_tokens=True)
    result(engine.submit(quirky))
    (body,) = fake.bodies
    assert (body["add_special_tokens"], body["skip_special_tokens"]) == (True, True)


def test_without_cached_token_details_cached_tokens_is_none_and_no_seed_is_sent(fakes, engines):
    fake = fakes()
    engine = engines([fake.url])
    completion = result(engine.submit(request("hi", seed=None)))
    assert completion.cached_tokens is None and completion.text == "echo:hi"
    assert "seed" not in fake.bodies[0] and "stop" not in fake.bodies[0]


def test_info_names_the_servers_model_version_and_counts(fakes, engines):
    fake = fakes()
    engine = engines([fake.url + "/v1/"])
    engine.check()
    result(engine.submit(request("a")))
    info = engine.info()
    assert json.loads(json.dumps(info)) == info  # plain builtins
    assert info["kind"] == "openai" and info["urls"] == [fake.url] and info["model"] == "fake-model"
    assert info["server_version"] == "fake-1.0"
    assert info["requests"][fake.url]["ok"] == 1 and info["down"] == {}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("localhost:8000", "http://localhost:8000"), ("http://h:1/v1", "http://h:1"),
     ("https://h/base/v1/", "https://h/base"), (" http://h:2/ ", "http://h:2")],
)  # fmt: skip
def test_server_urls_are_normalized(given, expected):
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://h:1", "http://h:port"])
def test_a_bad_server_url_is_a_one_line_error_naming_it(bad):
    with pytest.raises(EngineError, match="^--server-url"):
        OpenAIEngine([bad])


# ---------------------------------------------------------------------------- check()


def test_check_of_an_unreachable_url_is_one_line_naming_it_and_the_cause(engines):
    port = closed_port()
    with pytest.raises(EngineError) as caught:
        engines([f"127.0.0.1:{port}"]).check()
    assert str(caught.value) == f"--server-url http://127.0.0.1:{port}: connection refused"


def test_check_of_a_server_that_is_not_openai_compatible(engines):
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(EngineError) as caught:
            engines([url]).check()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert str(caught.value) == f"--server-url {url}: not an OpenAI-compatible server (GET /v1/models: HTTP 404)"


def test_check_with_some_servers_unreachable_warns_once_and_uses_the_live_ones(fakes, engines):
    live = fakes()
    dead = f"http://127.0.0.1:{closed_port()}"
    warned: list[str] = []
    engine = engines([dead, live.url], on_warning=warned.append)
    (warning,) = engine.check()
    assert warning.startswith(f"--server-url {dead}: connection refused") and warned == [warning]
    futures = [engine.submit(request(f"p{i}")) for i in range(4)]
    assert {result(f).extra["server"] for f in futures} == {live.url}
    assert engine.info()["down"] == {dead: "connection refused"}
    assert engine.check() == [warning] and warned == [warning]  # reported once


def test_the_model_is_taken_from_v1_models_unless_ambiguous_or_missing(fakes, engines):
    two = fakes(models=["a", "b"])
    with pytest.raises(EngineError, match=rf"^--server-url {two.url}: serves 2 models \(a, b\)"):
        engines([two.url]).check()
    assert engines([two.url], model="b").check() == []
    with pytest.raises(EngineError, match=rf"^--server-url {two.url}: does not serve model 'c'"):
        engines([two.url], model="c").check()
    other = fakes(models=["z"])
    with pytest.raises(EngineError, match="serve different models"):
        engines([fakes(models=["y"]).url, other.url]).check()


def test_submit_without_check_checks_first_and_a_failed_check_fails_the_future(fakes, engines):
    fake = fakes()
    assert result(engines([fake.url]).submit(request("x"))).text == "echo:x"
    port = closed_port()
    message = failure(engines([f"127.0.0.1:{port}"]).submit(request("x")))
    assert message == f"--server-url http://127.0.0.1:{port}: connection refused"


# ---------------------------------------------------------------------------- scheduling


def test_requests_go_to_the_least_loaded_server(fakes, engines):
    def respond(body: dict[str, Any]) -> Reply:
        return Reply(hold=gate) if body["prompt"].startswith("hold") else Reply(text="fast")

    gate = threading.Event()
    both = threading.Condition()
    a, b = fakes(respond=respond, cond=both), fakes(respond=respond, cond=both)
    engine = engines([a.url, b.url], max_inflight_per_server=8)
    held = [engine.submit(request(f"hold{i}")) for i in range(3)]
    a.wait_until(lambda: a.active + b.active == 3)
    lighter = a if len(a.prompts()) < len(b.prompts()) else b
    heavier = b if lighter is a else a
    assert (len(lighter.prompts()), len(heavier.prompts())) == (1, 2)
    for i in range(6):  # one at a time: the lighter server stays lighter
        assert result(engine.submit(request(f"fast{i}"))).extra["server"] == lighter.url
    assert not any(p.startswith("fast") for p in heavier.prompts())
    gate.set()
    assert all(result(f).text == "ok" for f in held)


def test_in_flight_requests_per_server_are_bounded_and_the_rest_queue(fakes, engines):
    gate = threading.Event()
    fake = fakes(respond=lambda body: Reply(hold=gate))
    before = set(threading.enumerate())
    engine = engines([fake.url], max_inflight_per_server=2)
    futures = [engine.submit(request(f"p{i}")) for i in range(7)]
    fake.wait_until(lambda: fake.active == 2)
    assert engine.info()["queued"] == 5
    assert engine_threads(before) == 1  # the event loop's, whatever is in flight or queued
    gate.set()
    assert [result(f).text for f in futures] == ["ok"] * 7
    assert fake.max_active == 2 and len(fake.bodies) == 7
    assert sorted(fake.prompts()) == sorted(f"p{i}" for i in range(7))


def test_hundreds_of_requests_in_flight_take_one_thread(fakes, engines):
    gate = threading.Event()
    fake = fakes(respond=lambda body: Reply(hold=gate))
    before = set(threading.enumerate())
    engine = engines([fake.url], max_inflight_per_server=300)
    futures = [engine.submit(request(f"p{i}")) for i in range(300)]
    fake.wait_until(lambda: fake.active == 300)  # all at the server at once
    assert engine_threads(before) == 1 and engine.info()["queued"] == 0
    gate.set()
    assert all(result(f).text == "ok" for f in futures)


def vllm_metrics(slots: Callable[[], int]) -> Callable[[FakeOpenAI], str]:
    """vLLM's /metrics for a server that runs `slots()` sequences at once and queues the rest (two engines)."""

    def page(fake: FakeOpenAI) -> str:
        running, waiting = min(fake.active, slots()), max(0, fake.active - slots())
        lines = ["# TYPE vllm:num_requests_running gauge"]
        for engine in (0, 1):  # summed over a data-parallel server's engines
            lines.append(f'vllm:num_requests_running{{engine="{engine}",model_name="m"}} {running / 2}')
            lines.append(f'vllm:num_requests_waiting{{engine="{engine}",model_name="m"}} {waiting / 2}')
        return "\n".join(lines) + "\n"

    return page


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)  # polling a condition, bounded by WAIT


def test_the_window_follows_the_servers_queue_from_its_metrics(fakes, engines):
    slots = [8]
    gates = {f"p{i}": threading.Event() for i in range(300)}
    fake = fakes(respond=lambda body: Reply(hold=gates[body["prompt"]]), metrics=vllm_metrics(lambda: slots[0]))
    engine = engines([fake.url], max_inflight_per_server=None, metrics_interval=0.02)
    engine.check()
    futures = [engine.submit(request(f"p{i}")) for i in range(300)]
    fake.wait_until(lambda: fake.active == 256)  # the first window of a server that reports its load
    server = engine.info()["requests"][fake.url]
    assert server["inflight"] == 256 and engine.info()["queued"] == 44
    # It runs 8 and queues 248: the window shrinks to what it runs plus a short queue (16).
    wait_for(lambda: engine.info()["requests"][fake.url]["window"] == 24)
    for i in range(100):
        gates[f"p{i}"].set()
    assert all(result(f).text == "ok" for f in futures[:100])
    assert engine.info()["queued"] == 44 and len(fake.bodies) == 256  # backpressure: nothing more was sent
    with fake.cond:
        slots[0] = 1000  # now it runs all it gets: the window grows until the queue is gone
    wait_for(lambda: engine.info()["queued"] == 0)
    assert len(fake.bodies) == 300 and engine.info()["requests"][fake.url]["window"] >= 200
    for gate in gates.values():
        gate.set()
    assert all(result(f).text == "ok" for f in futures)


def test_a_server_without_metrics_gets_the_users_bound_or_the_default(fakes, engines):
    fake = fakes()
    assert engines([fake.url], max_inflight_per_server=None).info()["requests"][fake.url]["window"] == 256
    assert engines([fake.url], max_inflight_per_server=1000).info()["requests"][fake.url]["window"] == 1000


def _endless_server(head: bytes) -> tuple[str, list[int], threading.Event]:
    """A server that answers every request with `head` and then zeros until the client hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[int] = []
    done = threading.Event()

    def serve() -> None:
        with listener:
            while not done.is_set():
                conn, _ = listener.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    if data.startswith(b"GET /v1/models"):
                        page = json.dumps({"data": [{"id": "m"}]}).encode()
                        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(page), page))  # fmt: skip
                        continue
                    if data.startswith(b"GET"):
                        conn.sendall(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                        continue
                    total = 0
                    block = b"0" * 65536 if b"chunked" not in head else b"10000\r\n" + b"0" * 65536 + b"\r\n"
                    try:
                        conn.sendall(head)
                        while total < 2**30:
                            conn.sendall(block)
                            total += 65536
                    except OSError:
                        pass
                    sent.append(total)
                    done.set()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", sent, done


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"],
    ids=["content-length", "until-close", "chunked"],
)  # fmt: skip
def test_a_gigabyte_answer_is_cut_off_not_read(engines, head):
    url, sent, done = _endless_server(head)
    engine = engines([url], max_response_bytes=2**20, request_timeout=WAIT)
    message = failure(engine.submit(request("x")))
    assert message.startswith(f"{url}: unreadable response: the answer is ")
    assert message.endswith("over the 1048576-byte limit")
    assert done.wait(WAIT)
    assert sent[0] < 2**28, "the client read far past its limit"


def test_a_rejected_request_fails_alone_without_retries(fakes, engines):
    too_long = "This model's maximum context length is 2048 tokens. However, your prompt contains 2049"

    def respond(body: dict[str, Any]) -> Reply:
        return Reply(status=400, message=too_long) if body["prompt"] == "long" else Reply()

    fake = fakes(respond=respond)
    engine = engines([fake.url])
    futures = [engine.submit(request(p)) for p in ("a", "long", "b")]
    assert failure(futures[1]) == f"{fake.url}: HTTP 400: {too_long}"
    assert result(futures[0]).text == result(futures[2]).text == "ok"
    assert fake.prompts().count("long") == 1
    assert engine.info()["down"] == {}


HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(raw=b'{"choices": [{"text": null, "finish_reason": "stop"}]}'),
         "unreadable response: choices[0].text is null, not a string"),
        (Reply(raw=b'{"choices": []}'), "unreadable response: no choices in the answer"),
        (Reply(raw=b'{"object": "error"}'), "unreadable response: no choices in the answer"),
        (Reply(raw=b'{"choices": [{"text": "cut'), 'unreadable response: not JSON ({"choices": [{"text": "cut)'),
        (Reply(raw=b""), "unreadable response: not JSON (empty body)"),
        (Reply(raw=HTML, content_type="text/html"), "unreadable response: an HTML page (502 Bad Gateway)"),
        (Reply(status=404, raw=HTML, content_type="text/html"), "HTTP 404: an HTML page (502 Bad Gateway)"),
        (Reply(status=422, raw=b'{"detail": "max_tokens must be at least 1"}'),
         "HTTP 422: max_tokens must be at least 1"),
        (Reply(status=400, raw=b"plain words"), "HTTP 400: plain words"),
    ],
    ids=["text-null", "no-choices", "error-object", "cut-json", "empty", "html-200", "html-404", "detail", "text"],
)  # fmt: skip
def test_a_bad_answer_fails_its_request_with_what_was_wrong(fakes, engines, reply, message):
    fake = fakes(respond=lambda body: reply if body["prompt"] == "bad" else Reply(text="fine"))
    engine = engines([fake.url])
    assert failure(engine.submit(request("bad"))) == f"{fake.url}: {message}"
    assert result(engine.submit(request("good"))).text == "fine"  # the server is not blamed
    assert fake.prompts().count("bad") == 1 and engine.info()["down"] == {}


def test_503_and_dropped_connections_are_retried_until_success(fakes, engines):
    # The drop comes first: on a reused keep-alive connection it would pass for an idle close.
    script = iter([Reply(drop=True), Reply(status=503, message="busy"), Reply(text="third time")])
    fake = fakes(respond=lambda body: next(script))
    engine = engines([fake.url], connect_retries=2)
    assert result(engine.submit(request("x"))).text == "third time"
    assert fake.prompts() == ["x", "x", "x"]
    assert engine.info()["requests"][fake.url]["retries"] == 2 and engine.info()["down"] == {}


class _Retried(logging.Handler):
    """Sets `seen` when the engine logs a retry: the test's signal that the server was found away."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.seen.set()


@pytest.fixture
def retries() -> Iterator[_Retried]:
    handler = _Retried()
    engine_logger = logging.getLogger("tir_harness.engines.openai")
    level = engine_logger.level
    engine_logger.addHandler(handler)
    engine_logger.setLevel(logging.INFO)
    yield handler
    engine_logger.removeHandler(handler)
    engine_logger.setLevel(level)


def test_a_server_that_restarts_is_waited_for(fakes, engines, retries):
    fake = fakes()
    engine = engines([fake.url], connect_retries=100)
    assert result(engine.submit(request("before"))).text == "echo:before"  # a keep-alive connection exists
    fake.die()
    future = engine.submit(request("during"))
    assert retries.seen.wait(WAIT)
    fake.restart()
    assert result(future).text == "echo:during"
    assert engine.info()["down"] == {}


def test_a_keep_alive_connection_the_server_closed_while_idle_is_replaced_without_a_retry(fakes, engines, retries):
    fake = fakes()
    engine = engines([fake.url], connect_retries=0)  # a failure on the stale connection would be fatal
    assert result(engine.submit(request("before"))).text == "echo:before"
    with fake.cond:
        kept = list(fake._sockets)
    assert kept  # the connection was kept alive
    for sock in kept:  # as uvicorn closes a connection idle for 5 s
        sock.shutdown(socket.SHUT_RDWR)
    assert result(engine.submit(request("after"))).text == "echo:after"
    assert engine.info()["requests"][fake.url]["retries"] == 0 and not retries.seen.is_set()
    assert engine.info()["down"] == {}


def test_a_server_that_stays_down_is_reported_once_and_its_requests_move(fakes, engines):
    a, b = fakes(), fakes()
    warned: list[str] = []
    engine = engines([a.url, b.url], max_inflight_per_server=3, on_warning=warned.append)
    engine.check()
    a.die()
    futures = [engine.submit(request(f"p{i}")) for i in range(9)]
    assert {result(f).extra["server"] for f in futures} == {b.url}
    assert sorted(b.prompts()) == sorted(f"p{i}" for i in range(9))
    assert len(warned) == 1 and warned[0].startswith(f"--server-url {a.url} is down (connection refused)")
    assert engine.info()["down"] == {a.url: "connection refused"}
    assert result(engine.submit(request("later"))).extra["server"] == b.url
    assert len(warned) == 1


def test_a_server_dying_with_requests_in_flight_moves_them(fakes, engines):
    gate_a, gate_b = threading.Event(), threading.Event()
    a = fakes(respond=lambda body: Reply(hold=gate_a))
    b = fakes(respond=lambda body: Reply(text="from b", hold=gate_b))
    engine = engines([a.url, b.url], max_inflight_per_server=2)
    futures = [engine.submit(request(f"p{i}")) for i in range(4)]
    a.wait_until(lambda: a.active == 2)
    b.wait_until(lambda: b.active == 2)
    a.die()  # cuts off the two requests it holds; they wait for room on b
    gate_b.set()
    assert [result(f).text for f in futures] == ["from b"] * 4
    assert sorted(a.prompts()) == ["p0", "p2"] and sorted(b.prompts()) == ["p0", "p1", "p2", "p3"]
    assert engine.info()["down"] == {a.url: "connection refused"}


def test_when_every_server_is_down_requests_fail_promptly_with_the_causes(fakes, engines):
    a, b = fakes(), fakes()
    engine = engines([a.url, b.url])
    engine.check()
    a.die()
    b.die()
    futures = [engine.submit(request(f"p{i}")) for i in range(6)]
    for future in futures:
        message = failure(future)
        assert message == f"all servers down: {a.url}: connection refused; {b.url}: connection refused"
    later = engine.submit(request("later"))
    assert later.done()  # no waiting at all once nothing is left
    assert failure(later).startswith("all servers down")


def test_a_request_without_answer_within_the_timeout_fails_alone(fakes, engines):
    gate = threading.Event()
    fake = fakes(respond=lambda body: Reply(hold=gate) if body["prompt"] == "slow" else Reply())
    engine = engines([fake.url], request_timeout=0.2)
    assert failure(engine.submit(request("slow"))) == f"{fake.url}: no answer within 0.2 s"
    assert result(engine.submit(request("quick"))).text == "ok"
    assert engine.info()["down"] == {}


def test_the_request_timeout_bounds_the_whole_answer_even_one_dripping_a_byte_at_a_time(fakes, engines):
    # About 300 bytes at one per 50 ms: 15 s to send, each byte far within any read timeout.
    fake = fakes(respond=lambda body: Reply(text="x" * 200, drip=0.05) if body["prompt"] == "drip" else Reply())
    engine = engines([fake.url], request_timeout=1.0)
    assert failure(engine.submit(request("drip"))) == f"{fake.url}: no answer within 1 s"
    fake.wait_until(lambda: len(fake.drips) == 1)  # the server noticed the connection was gone
    (sent, length), = fake.drips
    assert sent < length / 2, "the answer was read to its end: only each byte's wait was bounded"
    assert result(engine.submit(request("quick"))).text == "ok"
    assert engine.info()["down"] == {}


def test_a_request_the_server_always_resets_fails_alone_and_the_others_go_on(fakes, engines):
    fake = fakes(respond=lambda body: Reply(drop=True) if body["prompt"] == "poison" else Reply(text="fine"))
    engine = engines([fake.url], max_inflight_per_server=1, connect_retries=2)
    before = [engine.submit(request(f"a{i}")) for i in range(3)]
    poisoned = engine.submit(request("poison"))
    after = [engine.submit(request(f"b{i}")) for i in range(3)]
    assert failure(poisoned) == f"{fake.url}: the server closed the connection without answering"
    assert fake.prompts().count("poison") == 3  # tried, then retried twice
    assert [result(f).text for f in before + after] == ["fine"] * 6
    assert engine.info()["down"] == {}


def test_a_server_that_fails_several_different_requests_in_a_row_is_marked_down(fakes, engines):
    warned: list[str] = []
    fake = fakes(respond=lambda body: Reply(status=500, message="engine dead"))  # GET /v1/models still answers
    engine = engines([fake.url], max_inflight_per_server=1, connect_retries=1, on_warning=warned.append)
    futures = [engine.submit(request(f"p{i}")) for i in range(5)]
    said = f"{fake.url}: HTTP 500: engine dead"
    assert [failure(f) for f in futures[:2]] == [said, said]  # each fails alone while the server answers
    down = "HTTP 500: engine dead; 3 different requests failed in a row"
    assert [failure(f) for f in futures[2:]] == [f"all servers down: {fake.url}: {down}"] * 3
    assert engine.info()["down"] == {fake.url: down}
    assert warned == [f"--server-url {fake.url} is down ({down}); 0 of 1 servers left"]
    assert fake.prompts() == ["p0", "p0", "p1", "p1", "p2", "p2"]


def test_a_bug_in_a_worker_fails_its_request_instead_of_leaving_it_waiting(fakes, engines, monkeypatch):
    fake = fakes()
    engine = engines([fake.url])

    def broken(self, server, job):
        raise KeyError("oops")

    monkeypatch.setattr(OpenAIEngine, "_run", broken)
    assert failure(engine.submit(request("p"))) == f"{fake.url}: internal error: KeyError: 'oops'"
    monkeypatch.undo()
    assert result(engine.submit(request("q"))).text == "echo:q"  # the slot was given back, the worker lives on


def test_close_cancels_queued_work_fails_running_work_and_joins_threads(fakes, engines):
    gate = threading.Event()
    fake = fakes(respond=lambda body: Reply(hold=gate))
    before = set(threading.enumerate())
    engine = engines([fake.url], max_inflight_per_server=1)
    futures = [engine.submit(request(f"p{i}")) for i in range(3)]
    fake.wait_until(lambda: fake.active == 1)
    assert engine_threads(before) == 1
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert "closed" in failure(futures[0])
    assert futures[1].cancelled() and futures[2].cancelled()
    assert engine_threads(before) == 0  # joined
    assert "closed" in failure(engine.submit(request("after")))


def test_a_done_callback_may_submit_the_next_turn(fakes, engines):
    fake = fakes()
    engine = engines([fake.url], max_inflight_per_server=1)
    chained: list[Future[Completion]] = []
    submitted = threading.Event()

    def next_turn(f: Future[Completion]) -> None:
        chained.append(engine.submit(request(f.result().text + "+turn2")))
        submitted.set()

    first = engine.submit(request("turn1"))
    first.add_done_callback(next_turn)
    result(first)
    assert submitted.wait(WAIT)  # callbacks run after result() returns: waiters are woken first
    assert result(chained[0]).text == "echo:echo:turn1+turn2"


# ---------------------------------------------------------------------------- tir-harness serve


def test_gpus_are_parsed_and_grouped_for_tensor_parallelism():
    assert parse_gpus("0,1, 2,3") == ["0", "1", "2", "3"]
    assert group_gpus(["0", "1", "2", "3"]) == [("0",), ("1",), ("2",), ("3",)]
    assert group_gpus(["0", "1", "2", "3"], 2) == [("0", "1"), ("2", "3")]
    assert plan_servers(["4", "5", "6", "7"], 2, 9000) == [ServerPlan(9000, ("4", "5")), ServerPlan(9001, ("6", "7"))]
    assert plan_servers(None, 1, 8000) == [ServerPlan(8000, ())]


@pytest.mark.parametrize(
    ("call", "message"),
    [(lambda: parse_gpus("0,,1"), "--gpus '0,,1'"), (lambda: parse_gpus("0,1,0"), "GPU 0 listed twice"),
     (lambda: group_gpus(["0", "1", "2"], 2), "3 GPUs do not split into groups of --tensor-parallel-size 2"),
     (lambda: group_gpus(["0"], 0), "--tensor-parallel-size 0"),
     (lambda: plan_servers(["0", "1"], 1, 65535), "--port 65535")],
)  # fmt: skip
def test_bad_gpu_options_are_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_data_parallel_servers_take_their_engines_gpus_and_pass_the_size_on():
    assert plan_servers(None, 1, 8000, 2) == [ServerPlan(8000, ())]  # the CPU case: one URL, two engines
    assert plan_servers([str(g) for g in range(8)], 1, 8000, 8) == [ServerPlan(8000, tuple("01234567"))]
    assert plan_servers(list("0123"), 1, 9000, 2) == [ServerPlan(9000, ("0", "1")), ServerPlan(9001, ("2", "3"))]
    with pytest.raises(ValueError, match="6 GPUs do not split into servers of --data-parallel-size 4"):
        plan_servers(list("012345"), 1, 8000, 4)
    args = vllm_args("/m", served_model_name="m", host="h", port=1, data_parallel_size=2)
    assert args[args.index("--data-parallel-size") + 1] == "2"
    mine = vllm_args("/m", served_model_name="m", host="h", port=1, data_parallel_size=2,
                     extra_args=["--data-parallel-size=4"])  # fmt: skip
    assert "--data-parallel-size" not in mine and mine[-1] == "--data-parallel-size=4"
    parsed, _ = parse_args(["gemma-3-270m", "-dp", "2"])
    assert parsed.data_parallel_size == 2


def test_vllm_arguments_add_cpu_defaults_unless_the_user_gave_them():
    args = vllm_args("/m", served_model_name="gemma", host="127.0.0.1", port=8001, cpu_defaults=True,
                     extra_args=["--max-model-len=4096", "--dtype", "float32"])  # fmt: skip
    assert args[:8] == ["--model", "/m", "--served-model-name", "gemma", "--host", "127.0.0.1", "--port", "8001"]
    assert "--enable-prompt-tokens-details" in args and "--enforce-eager" in args
    assert args.count("--max-model-len=4096") == 1 and "--max-model-len" not in args
    assert args[-3:] == ["--max-model-len=4096", "--dtype", "float32"]
    assert all(flag in args for flag, _ in CPU_DEFAULTS if flag != "--max-model-len")
    gpu = vllm_args("/m", served_model_name="m", host="0.0.0.0", port=1, tensor_parallel_size=2)
    assert gpu[gpu.index("--tensor-parallel-size") + 1] == "2" and "--enforce-eager" not in gpu


def test_serve_arguments_split_at_the_double_dash():
    args, extra = parse_args(["gemma-3-270m", "--gpus", "0,1", "-tp", "2", "--", "--dtype", "half", "--port", "1"])
    assert (args.model, args.gpus, args.tensor_parallel_size, args.port) == ("gemma-3-270m", "0,1", 2, 8000)
    assert extra == ["--dtype", "half", "--port", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["m", "--gpus", "0,1,2", "-tp", "2"], "--gpus 0,1,2: 3 GPUs do not split"),
     (["m", "-tp", "2"], "--tensor-parallel-size needs --gpus"),
     (["no-such-alias-or-folder"], "--model no-such-alias-or-folder: not an alias")],
)  # fmt: skip
def test_serve_rejects_bad_options_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tir-harness serve: ") and message in err and err.count("\n") == 1


def test_serve_refuses_a_port_in_use(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([str(tmp_path), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err


FAKE_VLLM = """
    import http.server, json, os, pathlib, subprocess, sys, time
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like the engine core
    record = {"pid": os.getpid(), "child": child.pid, "args": args, "tmpdir": os.environ["TMPDIR"],
              "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}
    pathlib.Path(os.environ["FAKE_VLLM_RECORD"], f"{port}.json").write_text(json.dumps(record))
    if os.environ.get("FAKE_VLLM_DIE") == str(port):
        # Only once the other server has started, so that the test can see it stopped.
        other = pathlib.Path(os.environ["FAKE_VLLM_RECORD"], f"{port - 1}.json")
        for _ in range(3000):
            if other.exists():
                break
            time.sleep(0.01)
        print("RuntimeError: CUDA out of memory (fake)", flush=True)
        sys.exit(3)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _consecutive_free_ports(count: int) -> int:
    for _ in range(50):
        first = closed_port()
        if first + count <= 65535 and all(closed_port_free(first + i) for i in range(count)):
            return first
    raise AssertionError("no free consecutive ports")


def closed_port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def fake_vllm(tmp_path: Path) -> dict[str, str]:
    package = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "api_server.py").write_text(textwrap.dedent(FAKE_VLLM))
    (tmp_path / "records").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), str(REPO)]),
               FAKE_VLLM_RECORD=str(tmp_path / "records"), PYTHONUNBUFFERED="1")  # fmt: skip
    return env


def _serve(tmp_path: Path, env: dict[str, str], port: int, *extra: str) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "tir_harness.cli.main",
        "serve",
        str(tmp_path / "model"),
        "--gpus",
        "0,1,2,3",
        "-tp",
        "2",
        "--port",
        str(port),
        "--ready-timeout",
        "60",
        "--log-dir",
        str(tmp_path / "logs"),
        *extra,
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_starts_a_server_per_gpu_group_prints_the_urls_and_stops_all_on_a_signal(stop, tmp_path, fake_vllm):
    port = _consecutive_free_ports(2)
    serve = _serve(tmp_path, fake_vllm, port, "--", "--dtype", "half")
    records: list[dict[str, Any]] = []
    try:
        lines = []
        assert serve.stdout is not None
        for line in serve.stdout:
            lines.append(line)
            if "--server-url" in line:
                break
        urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
        assert lines[-1].strip() == f"--server-url {','.join(urls)}", "".join(lines)
        records = [json.loads((tmp_path / "records" / f"{p}.json").read_text()) for p in (port, port + 1)]
        assert [r["cuda"] for r in records] == ["0,1", "2,3"]
        for record, p in zip(records, (port, port + 1), strict=True):
            args = record["args"]
            assert args[args.index("--port") + 1] == str(p) and args[-2:] == ["--dtype", "half"]
            assert args[args.index("--tensor-parallel-size") + 1] == "2"
            assert record["tmpdir"].startswith(str(tmp_path / "logs"))
        connection = http.client.HTTPConnection("127.0.0.1", port + 1, timeout=WAIT)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        serve.send_signal(stop)
        code = serve.wait(WAIT)
    assert code == 0
    for record in records:
        assert not _running(record["pid"]) and not _running(record["child"])


def test_serve_reports_a_server_that_dies_while_starting_and_stops_the_others(tmp_path, fake_vllm):
    port = _consecutive_free_ports(2)
    serve = _serve(tmp_path, {**fake_vllm, "FAKE_VLLM_DIE": str(port + 1)}, port)
    out, err = serve.communicate(timeout=90)
    assert serve.returncode == 1, out + err
    assert f"vLLM server on port {port + 1} exited with code 3" in err
    assert "CUDA out of memory (fake)" in err  # the log tail
    healthy = json.loads((tmp_path / "records" / f"{port}.json").read_text())
    assert not _running(healthy["pid"]) and not _running(healthy["child"])


def test_a_servers_reasoning_token_count_is_the_completions_thinking_tokens(fakes, engines):
    def answer(reasoning: object) -> Reply:
        details = {"reasoning_tokens": reasoning}
        usage = {"prompt_tokens": 3, "completion_tokens": 40, "completion_tokens_details": details}
        body = {"choices": [{"index": 0, "text": "</think> 5", "finish_reason": "stop"}], "usage": usage}
        return Reply(raw=json.dumps(body).encode())

    counts = iter([30, 99, "many", None, -1, True])
    fake = fakes(respond=lambda body: answer(next(counts)))
    engine = engines([fake.url])
    # A count past the completion's own is cut to it; one that is not a count is no count.
    assert [result(engine.submit(request("Q"))).thinking_tokens for _ in range(6)] == [30, 40, None, None, None, None]
