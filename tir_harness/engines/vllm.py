"""vLLM in-process, driven request by request so that new turns join running batches.

One engine thread owns the `LLM` (built and stepped from the same thread, which is measurably faster) and
feeds it from a queue: a request is added the moment it is submitted and its future resolves the moment it
finishes, so no trajectory waits for another's turn (continuous batching, no barrier between rounds).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from tir_harness.engines.base import Completion, EngineError, GenerationRequest
from tir_harness.engines.torch_addons import block_mismatched_addons
from tir_harness.util.text import THINK_CLOSE, THINK_OPEN
from tir_harness.util.text import exception_line as _first_line


@dataclass(frozen=True)
class VLLMConfig:
    model: str
    revision: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_memory_bytes: int | None = None
    enforce_eager: bool = False
    seed: int = 0
    enable_prefix_caching: bool = True
    # vLLM's EngineArgs as (key, value) pairs (--engine-arg), over the fields above; checked by `accepted_args`.
    engine_args: tuple[tuple[str, Any], ...] = ()


@dataclass
class _Pending:
    request: GenerationRequest
    future: Future[Completion]
    started: float


CPU_KV_CACHE_BYTES = 2**30
_STOP = object()
_RESET_CACHE = object()


class VLLMEngine:
    """`Engine` over `vllm.LLM`; construction blocks until the model is loaded or raises EngineError."""

    def __init__(self, config: VLLMConfig) -> None:
        self.config = config
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
        self._history: dict[str, tuple[str, list[int]]] = {}  # request id -> (full text, its token ids)
        self._ids = itertools.count()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._version = ""
        self._think_close_id: int | None = None  # the vocabulary's `</think>` token, when it has one
        # For benchmarks/perf/loop.py: time with at least one request in the engine, steps taken, and the sum
        # over steps of the requests in the engine (their ratio is the mean batch size).
        self.busy_seconds = 0.0
        self.steps = 0
        self.step_sequences = 0
        self.max_num_seqs: int | None = None  # sequences vLLM batches at once, once the model is loaded
        self.cached_tokens = 0
        self._thread = threading.Thread(target=self._run, name="tir-vllm-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise EngineError(f"vLLM could not start {config.model}: {_first_line(self._error)}") from self._error

    def submit(self, request: GenerationRequest) -> Future[Completion]:
        future: Future[Completion] = Future()
        if self._closed:
            future.set_exception(EngineError("the engine is closed"))
        else:
            self._queue.put((request, future))
        return future

    def reset_prefix_cache(self) -> None:
        """Forget cached prefixes (benchmarks compare schedulers from the same cold start)."""
        done: Future[Completion] = Future()
        self._queue.put((_RESET_CACHE, done))
        done.result()

    def info(self) -> dict[str, Any]:
        config = {**asdict(self.config), "engine_args": dict(self.config.engine_args)}
        return {"kind": "vllm", "vllm_version": self._version, **config, "max_num_seqs": self.max_num_seqs}

    def capacity(self) -> int | None:
        return self.max_num_seqs

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    # -- the engine thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            llm = self._build()
        except BaseException as exc:  # reported by __init__
            self._error = exc
            self._ready.set()
            return
        engine, tokenizer = llm.llm_engine, llm.get_tokenizer()
        self._think_close_id = think_close_id(tokenizer)
        try:  # vLLM's own choice for this device unless set: the harness sizes its in-flight count from it
            self.max_num_seqs = int(engine.vllm_config.scheduler_config.max_num_seqs)
        except (AttributeError, TypeError, ValueError):
            pass
        self._ready.set()
        try:
            while True:
                busy = engine.has_unfinished_requests()
                if not self._admit(engine, tokenizer, block=not busy):
                    break
                if engine.has_unfinished_requests():
                    batch = engine.get_num_unfinished_requests()
                    start = time.perf_counter()
                    outputs = engine.step()
                    self.busy_seconds += time.perf_counter() - start
                    self.steps += 1
                    self.step_sequences += batch
                    for output in outputs:
                        if output.finished:
                            self._finish(output, tokenizer)
        except BaseException as exc:
            self._fail_all(EngineError(f"vLLM failed: {_first_line(exc)}"))
            raise
        finally:
            self._fail_all(EngineError("the engine was closed before this request finished"))
            del engine, llm

    def _build(self) -> Any:
        _prepare_import()
        import vllm

        self._version = vllm.__version__
        # Unset options are left to vLLM's own defaults.
        kwargs: dict[str, Any] = {k: v for k, v in asdict(self.config).items() if v is not None}
        kwargs.pop("engine_args")
        kwargs.update(self.config.engine_args)
        # vLLM seeds its global generators with this and wants 0..2**32-1; the run's seed may be negative or
        # larger (every request carries its own sample's seed anyway).
        kwargs["seed"] = int(kwargs.get("seed") or 0) % 2**32
        if _on_cpu():
            # vLLM's CPU build refuses to start without an explicit KV cache size on a machine with other
            # work on it, and compiling graphs costs more than it saves for short runs.
            kwargs["enforce_eager"] = True
            kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        # Keep blocks that hold generated tokens reusable: turn N+1 extends turn N's output.
        return vllm.LLM(**kwargs, prefix_cache_retention_interval=None)

    def _admit(self, engine: Any, tokenizer: Any, block: bool) -> bool:
        """Move submitted requests into the engine; False once close() was called."""
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        while True:
            try:
                item = self._queue.get(block=block)
            except queue.Empty:
                return True
            block = False
            if item is _STOP:
                engine.abort_request(list(self._pending))
                return False
            request, future = item
            if not future.set_running_or_notify_cancel():
                continue
            if request is _RESET_CACHE:
                engine.reset_prefix_cache()
                future.set_result(None)
                continue
            rid = f"{request.request_id or 'req'}#{next(self._ids)}"
            try:
                ids = self._token_ids(request, tokenizer)
                s = request.sampling
                params = SamplingParams(
                    temperature=s.temperature,
                    top_p=s.top_p,
                    max_tokens=s.max_tokens,
                    seed=s.seed,
                    stop=list(s.stop),
                    skip_special_tokens=request.skip_special_tokens,
                    output_kind=RequestOutputKind.FINAL_ONLY,
                )
                engine.add_request(rid, TokensPrompt(prompt_token_ids=ids), params)
            except Exception as exc:  # a bad request (e.g. too long) fails alone; the engine keeps running
                future.set_exception(EngineError(_first_line(exc)))
                continue
            self._pending[rid] = _Pending(request, future, time.perf_counter())

    def _token_ids(self, request: GenerationRequest, tokenizer: Any) -> list[int]:
        previous = self._history.pop(request.continues, None) if request.continues else None
        if previous is not None and request.prompt.startswith(previous[0]):
            rest = request.prompt[len(previous[0]) :]
            return previous[1] + tokenizer.encode(rest, add_special_tokens=False)
        return tokenizer.encode(request.prompt, add_special_tokens=request.add_special_tokens)

    def _finish(self, output: Any, tokenizer: Any) -> None:
        pending = self._pending.pop(output.request_id, None)
        if pending is None:
            return
        result = output.outputs[0]
        cached = getattr(output, "num_cached_tokens", None)
        self.cached_tokens += cached or 0
        if pending.request.request_id:
            # What the prompt plus everything generated decodes to; the next turn extends exactly this text.
            ids = list(output.prompt_token_ids) + list(result.token_ids)
            decoded = tokenizer.decode(result.token_ids, skip_special_tokens=False)
            self._history[pending.request.request_id] = (pending.request.prompt + decoded, ids)
            if len(self._history) > 4096:  # turns that never continue (final answers) must not pile up
                self._history.pop(next(iter(self._history)))
        pending.future.set_result(
            Completion(
                text=result.text,
                finish_reason=result.finish_reason or "stop",
                stop_reason=result.stop_reason,
                prompt_tokens=len(output.prompt_token_ids),
                completion_tokens=len(result.token_ids),
                cached_tokens=cached,
                thinking_tokens=count_thinking_tokens(list(result.token_ids), tokenizer, self._think_close_id),
                seconds=time.perf_counter() - pending.started,
            )
        )

    def _fail_all(self, error: EngineError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                item[1].set_exception(error)


def think_close_id(tokenizer: Any) -> int | None:
    """The id of `</think>` when the vocabulary has it as one token (DeepSeek-R1 distills, Qwen3), else None."""
    try:
        token_id = tokenizer.get_vocab().get(THINK_CLOSE)
    except Exception:  # a tokenizer without a plain vocabulary: counted by text
        return None
    return token_id if isinstance(token_id, int) else None


def count_thinking_tokens(token_ids: list[int], tokenizer: Any, close_id: int | None) -> int | None:
    """How many of a completion's tokens are thinking: up to and including its last `</think>`; all of them when
    it opens a think block that never closes; None without a think block.

    With `</think>` in the vocabulary the token is looked up; otherwise (a model that writes the tag as ordinary
    text) the count is the shortest prefix whose decoded text holds every `</think>` of the completion, by
    bisection over prefixes (a prefix never decodes to fewer tags than a shorter one)."""

    def decode(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=False))

    if close_id is not None and close_id in token_ids:
        return len(token_ids) - token_ids[::-1].index(close_id)
    text = decode(token_ids)
    tags = text.count(THINK_CLOSE) if close_id is None else 0
    if not tags:
        return len(token_ids) if THINK_OPEN in text else None
    low, high = 1, len(token_ids)
    while low < high:
        middle = (low + high) // 2
        if decode(token_ids[:middle]).count(THINK_CLOSE) >= tags:
            high = middle
        else:
            low = middle + 1
    return low


def _prepare_import() -> None:
    # Before vllm is imported: keep the engine core in this process (much faster on few CPU cores).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    block_mismatched_addons()


def accepted_args() -> frozenset[str]:
    """The keys `vllm.LLM` passes on to vLLM's `EngineArgs` (what --engine-arg may set)."""
    _prepare_import()
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    return frozenset(f.name for f in dataclasses.fields(EngineArgs))


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()

