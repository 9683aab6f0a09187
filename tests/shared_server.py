"""One real vLLM OpenAI server (Gemma 3 270M on the CPU) for every test of a session that uses `vllm_server`.

A server takes about 90 s to start on 2 cores; each test starting its own made the real tests most of the
suite's time.  The plugin starts the process as soon as collection has ended, when a selected test uses the
fixture, so its startup overlaps the tests that run before; the fixture blocks until it is ready.  Nothing is
started when no selected test needs it (`pytest tests/test_loop.py`).

Tests share it one at a time, so what one test measures on it (its /metrics counters) moves only by that test.
"""

from __future__ import annotations

import socket

import pytest

from tir_harness.engines.serve import VLLMServer

FIXTURE = "vllm_server"
MODEL = "gemma-3-270m"
READY_SECONDS = 900.0  # a bound against a server that never answers; startup on a loaded 2-core machine is ~90 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_args() -> list[str]:
    # float32 and no prefix cache: greedy output is then the same as another server's for the same request, one
    # request at a time (tests/test_real_dp.py compares this server with a data-parallel one).  The default
    # workdir is a fresh folder under the system temp dir: short, as vLLM's socket paths must stay under 108
    # characters.
    return ["--dtype", "float32", "--no-enable-prefix-caching"]


class SharedServer:
    """The session's server: started (a Popen) early, waited for when first used, stopped at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._server: VLLMServer | None = None
        self._failure: BaseException | None = None  # why it could not be started: raised by the fixture

    def start(self) -> None:
        if self._server is not None or self._failure is not None:
            return
        try:
            from tir_harness.engines.models import resolve_model

            server = VLLMServer(
                resolve_model(MODEL).path,
                port=free_port(),
                served_model_name=MODEL,
                extra_args=server_args(),
                env={"OMP_NUM_THREADS": "2"},
            )
            self._server = server.start()
        except Exception as error:  # noqa: BLE001  (reported by every test that uses it, not by collection)
            self._failure = error

    def ready(self) -> VLLMServer:
        self.start()
        if self._failure is not None:
            raise self._failure
        assert self._server is not None
        self._server.wait_ready(timeout=READY_SECONDS)
        return self._server

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @pytest.hookimpl(trylast=True)  # after every plugin has filtered the items
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._config.option.collectonly or hasattr(self._config, "workerinput"):
            # Under xdist every worker collects every item, whichever it will run: a worker starts its own
            # server (a second one, with -n 2) only when one of its tests first asks, through the fixture.
            return
        if any(FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
            self.start()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Also after Ctrl-C or a collection error; a pytest killed by SIGKILL takes the server along through its
        # parent-death signal (VLLMServer).
        self.stop()
