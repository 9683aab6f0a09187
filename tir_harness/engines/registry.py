"""Engines by name: `ENGINES` maps a name to an `EngineType` that says how to start one and what it accepts.

Built-ins: `vllm` (in-process vLLM, the default) and `openai` (OpenAI-compatible servers, the default with
--server-url).  A third party adds one with `register_engine` (in a module its conftest.py or package
imports), or through an entry point of the group `tir_harness.engines` whose object is an `EngineType`:

    [project.entry-points."tir_harness.engines"]
    sglang = "my_package.engines:SGLANG"

Each engine declares the `--engine-arg` keys it accepts, so that an unknown key is a one-line error before the
engine starts, and which of them leave its outputs unchanged (the others are part of the result store's key).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tir_harness.engines.base import Engine, EngineError
from tir_harness.util.registry import Registry


@dataclass(frozen=True)
class EngineSettings:
    """What a run tells the engine it starts.  The named settings are the command line's shorthands; `args` are
    the engine's own arguments (--engine-arg), already checked against the engine's `accepted_args`."""

    model: str = ""  # what to load: a folder or a hub id ("" for an engine that knows its model, a server)
    revision: str | None = None
    seed: int = 0
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_memory_bytes: int | None = None
    enforce_eager: bool = False
    server_urls: tuple[str, ...] = ()
    server_timeout: float = 600.0
    server_retries: int = 6
    max_inflight: int | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    on_warning: Callable[[str], None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class EngineType:
    """A kind of engine.

    - `start(settings)` returns a started `Engine`, or raises `EngineError` with one line for the user.
    - `accepted_args()`: the --engine-arg keys it takes (called before the engine starts; it may import the
      engine's library); None: it takes none.
    - `neutral_args`: accepted keys that do not change what the model writes (batch size, memory, caching);
      every other engine arg is part of the result store's key, so a store never answers for another setup.
    - `needs_model`: False for an engine that knows its model (a server): --model is then optional.
    """

    start: Callable[[EngineSettings], Engine]
    accepted_args: Callable[[], Collection[str]] | None = None
    neutral_args: frozenset[str] = frozenset()
    needs_model: bool = True
    description: str = ""


ENGINES: Registry[EngineType] = Registry("engine", "tir_harness.engines", accepts=EngineType)


def register_engine(
    name: str,
    start: Callable[[EngineSettings], Engine],
    *,
    accepted_args: Callable[[], Collection[str]] | None = None,
    neutral_args: Collection[str] = (),
    needs_model: bool = True,
    description: str = "",
) -> EngineType:
    """Register an engine under `name` (what --engine names); returns its `EngineType`."""
    return ENGINES.register(name, EngineType(start, accepted_args, frozenset(neutral_args), needs_model, description))


# -- the built-ins (their modules are imported only when they start, so nothing here pulls in vLLM) -------------


def _start_vllm(settings: EngineSettings) -> Engine:
    from tir_harness.engines.vllm import VLLMConfig, VLLMEngine

    return VLLMEngine(
        VLLMConfig(
            model=settings.model,
            revision=settings.revision,
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            tensor_parallel_size=settings.tensor_parallel_size,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            kv_cache_memory_bytes=settings.kv_cache_memory_bytes,
            enforce_eager=settings.enforce_eager,
            seed=settings.seed,
            engine_args=tuple(sorted(settings.args.items())),
        )
    )


def _vllm_args() -> Collection[str]:
    from tir_harness.engines.vllm import accepted_args

    return accepted_args()


def _start_openai(settings: EngineSettings) -> Engine:
    if not settings.server_urls:
        raise EngineError("the openai engine needs --server-url")
    from tir_harness.engines.openai import OpenAIEngine

    # --max-inflight bounds each server too; without it the engine follows the server's load (its /metrics).
    engine = OpenAIEngine(
        list(settings.server_urls),
        model=None,
        max_inflight_per_server=settings.max_inflight,
        request_timeout=settings.server_timeout,
        connect_retries=settings.server_retries,
        on_warning=settings.on_warning,
    )
    engine.check()  # its warnings reach the user once, through on_warning
    return engine


# vLLM's EngineArgs that change how fast, not what, the model writes (the rest are part of the store key).
VLLM_NEUTRAL_ARGS = frozenset(
    {
        "max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching", "prefix_caching_hash_algo",
        "gpu_memory_utilization", "kv_cache_memory_bytes", "swap_space", "cpu_offload_gb", "block_size",
        "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "enforce_eager",
        "enable_chunked_prefill", "disable_log_stats", "max_parallel_loading_workers", "download_dir",
        "distributed_executor_backend", "disable_custom_all_reduce", "compilation_config", "use_tqdm_on_load",
        "async_scheduling", "stream_interval", "num_gpu_blocks_override", "hf_token", "trust_remote_code",
    }
)  # fmt: skip

register_engine(
    "vllm",
    _start_vllm,
    accepted_args=_vllm_args,
    neutral_args=VLLM_NEUTRAL_ARGS,
    description="vLLM in-process (default); --engine-arg KEY=VALUE reaches vLLM's EngineArgs",
)
register_engine(
    "openai",
    _start_openai,
    needs_model=False,
    description="OpenAI-compatible servers (--server-url; the default when one is given)",
)

__all__ = ["ENGINES", "EngineSettings", "EngineType", "register_engine"]
