"""Command-line options of the pytest plugin, parsed once into a frozen `HarnessOptions`."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tir_harness.run.loop import MAX_RUN_SEED, MAX_TURN_CHARS, MIN_TURN_CHARS, SAMPLE_BITS
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES

GROUP = "tir-harness"


def _size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 536870912, 512M, 2G)")
    factor = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2)]
    value = int(float(match.group(1)) * factor)
    if value < 1:  # vLLM would take 0 bytes, then fail to start once the model is loaded
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _shard(text: str) -> str:
    from tir_harness.run.shards import parse_shard

    try:
        return str(parse_shard(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _bounded(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """A float option within [low, high] (or (low, high]); nan and infinities are refused everywhere: a
    number that far off is a typo, and downstream it overflows or sends garbage to the engine."""
    opening = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"must be a number in {opening}{low:g}, {high:g}], got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def _sandbox_limit(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option that becomes the sandbox's `ExecutorConfig.<name>`, checked at parsing by the sandbox's own
    rule (its minimum memory, for one): the run would otherwise stop at its start with an internal error."""

    def check(text: str) -> Any:
        value = parse(text)
        from tir_harness.sandbox.executor import ExecutorConfig

        try:
            ExecutorConfig(**{name: value})
        except ValueError as exc:  # "ExecutorConfig.memory_mb must be >= 16, got 8"
            rule = str(exc).partition(" must be ")[2]
            raise argparse.ArgumentTypeError(f"must be {rule} (the sandbox's limit)" if rule else str(exc)) from None
        return value

    check.__name__ = parse.__name__
    return check


_DAY = 86400.0  # seconds: the longest timeout that makes sense; larger ones overflow the sandbox's timers


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "tir-harness: evaluate a model on math problems with a Python tool")
    add = group.addoption
    add(
        "--model",
        default=os.environ.get("TIR_MODEL"),
        help="alias, local folder or Hugging Face id (env TIR_MODEL)",
    )
    add("--revision", default=None, help="model revision on the hub")
    add("--prompt-format", choices=[*FORMATS, "chat-template"], default=None,
        help="prompt format; default: the alias's, else guessed from the model name")  # fmt: skip
    add("--prompt-type", choices=list(PROMPT_TYPES), default=None,
        help="tora (the reference's TIR prompt), cot (no tool), tora-instruct (this project's instruction), "
        "tora-fewshot (base models); default: the alias's, else tora for the reference's formats")  # fmt: skip
    add(
        "--data-dir",
        default=None,
        help="folder with <dataset>/<split>.jsonl (env TIR_DATA_DIR); else the shipped test sets, else the hub",
    )
    add("--split", choices=["test", "train"], default=None,
        help="run every dataset benchmark on this split (train: for training data; datasets without it are "
        "deselected); default: each test's own, the test split for benchmarks/")  # fmt: skip
    add("--server-url", action="append", default=[],
        help="OpenAI-compatible server(s) instead of in-process vLLM; repeat or comma-separate")  # fmt: skip
    add("--server-timeout", type=_bounded(0.0, _DAY, low_open=True), default=600.0,
        help="seconds one request to a server may take, from sending it to the answer's last byte "
        "(default 600)")  # fmt: skip
    add("--server-retries", type=_int_range(0, 100), default=6,
        help="retries of a request a server failed (connection lost, 5xx), with backoff (default 6)")  # fmt: skip
    add("--max-tool-calls", type=_int_range(0, 1000), default=4, help="code executions per trajectory (default 4)")
    add("--max-tokens", type=_positive_int, default=1024, help="tokens per model turn (default 1024)")
    add("--max-turn-chars", type=_int_range(MIN_TURN_CHARS), default=MAX_TURN_CHARS,
        help="characters of one model turn kept; a longer completion keeps its head and tail around a marker, "
        f"and the turn records the cut (default {MAX_TURN_CHARS})")  # fmt: skip
    # vLLM's own limits (SamplingParams): temperature in [0, 2], top_p in (0, 1].
    add("--temperature", type=_bounded(0.0, 2.0), default=0.0, help="sampling temperature, 0 to 2 (default 0: greedy)")
    add("--top-p", type=_bounded(0.0, 1.0, low_open=True), default=1.0, help="nucleus sampling, in (0, 1]")
    # Sample i of a run with seed s samples with s * 2**SAMPLE_BITS + i (run/loop.py's sample_seed): these bounds
    # keep that injective and inside a signed 64-bit integer.
    add("--seed", type=_int_range(1 - MAX_RUN_SEED, MAX_RUN_SEED - 1), default=0,
        help="the run's seed; sample i samples with seed * 2**20 + i (default 0)")  # fmt: skip
    add("--samples", type=_int_range(1, 2**SAMPLE_BITS), default=1,
        help="trajectories per problem (pass@k, maj@k)")  # fmt: skip
    add("--shard", type=_shard, default=None, metavar="I/N",
        help="solve share I of N of the selected problems (round-robin over their sorted test ids); "
        "`tir-harness merge` joins the N runs")  # fmt: skip
    add("--dtype", default="auto", help="vLLM dtype (auto, bfloat16, float16, float32)")
    add("--max-model-len", type=_positive_int, default=None)
    add("--tensor-parallel-size", type=_positive_int, default=1)
    add("--gpu-memory-utilization", type=_bounded(0.0, 1.0, low_open=True), default=None)
    add(
        "--kv-cache-memory",
        type=_size,
        default=None,
        help="KV cache size for vLLM, e.g. 512M (needed on CPU)",
    )
    add("--enforce-eager", action="store_true", help="disable CUDA graphs / compilation in vLLM")
    add("--max-inflight", type=_positive_int, default=None,
        help="trajectories in flight per process, and at most that many requests per --server-url; default: "
        "from the engine's batch size (vLLM's max_num_seqs) and the sandbox's session limit, recorded in the "
        "manifest (a server's requests then follow its load, from vLLM's /metrics)")  # fmt: skip
    add("--gpu-per-worker", action="store_true",
        help="with pytest-xdist: worker N sees only GPU N (CUDA_VISIBLE_DEVICES)")  # fmt: skip
    add("--exec-timeout", type=_sandbox_limit("timeout", _bounded(0.0, _DAY, low_open=True)), default=10.0,
        help="seconds per code execution (default 10)")  # fmt: skip
    add("--exec-memory-mb", type=_sandbox_limit("memory_mb", _int_range(1, 2**20)), default=2048,
        help="memory one sandbox session may use, in MB (default 2048)")  # fmt: skip
    add("--exec-observations", choices=["full", "reference"], default=None,
        help="what the model sees of its code: full (output, last value, traceback tail) or reference "
        "(the reference implementation's); default: reference with the reference's prompts, else full")  # fmt: skip
    add("--report-dir", default=None, help="where this run's reports go (default reports/<model>-<time>)")
    add("--store-dir", default=None, help="result store (env TIR_STORE_DIR; default in the pytest cache dir)")
    add("--refresh", action="store_true", help="regenerate even when the store holds a result")
    add("--baseline", default=None, help="a previous trajectories.jsonl (or run dir) to compare against")
    add(
        "--gate",
        action="store_true",
        help="exit status from the baseline comparison, not from single problems",
    )
    add("--max-drop", type=_bounded(0.0, 100.0), default=0.0, help="with --gate: tolerated accuracy drop in points")
    add("--alpha", type=_probability, default=0.05, help="with --gate: significance level of McNemar's test")


@dataclass(frozen=True)
class HarnessOptions:
    model: str | None
    revision: str | None
    prompt_format: str | None
    prompt_type: str | None
    data_dir: Path | None
    split: str | None
    server_urls: tuple[str, ...]
    server_timeout: float
    server_retries: int
    max_tool_calls: int
    max_tokens: int
    max_turn_chars: int
    temperature: float
    top_p: float
    seed: int
    samples: int
    dtype: str
    max_model_len: int | None
    tensor_parallel_size: int
    gpu_memory_utilization: float | None
    kv_cache_memory: int | None
    enforce_eager: bool
    max_inflight: int | None  # None: chosen from the engine and the sandbox (Runner.start_generation)
    gpu_per_worker: bool
    exec_timeout: float
    exec_memory_mb: int
    exec_observations: str | None
    report_dir: str | None
    store_dir: str | None
    refresh: bool
    baseline: str | None
    gate: bool
    max_drop: float
    alpha: float
    shard: str | None  # "I/N" (run/shards.py)

    @classmethod
    def from_config(cls, config: pytest.Config) -> HarnessOptions:
        get = config.getoption
        urls = tuple(u.strip() for value in get("server_url") for u in value.split(",") if u.strip())
        if urls:
            # One rule for a server URL, the engine's: what passes here is what the engine accepts.
            from tir_harness.engines.base import EngineError
            from tir_harness.engines.openai import normalize_url

            try:
                urls = tuple(dict.fromkeys(normalize_url(url) for url in urls))
            except EngineError as exc:
                raise pytest.UsageError(str(exc)) from None
        if get("gate") and not get("baseline"):
            raise pytest.UsageError("--gate needs --baseline (the run to compare against)")
        data_dir = get("data_dir") or os.environ.get("TIR_DATA_DIR")
        if data_dir and not Path(data_dir).expanduser().is_dir():
            source = "--data-dir" if get("data_dir") else "TIR_DATA_DIR"
            raise pytest.UsageError(f"{source} {data_dir}: no such folder")
        values: dict[str, Any] = {
            name: get(name) for name in cls.__dataclass_fields__ if name not in ("server_urls", "data_dir")
        }
        return cls(server_urls=urls, data_dir=Path(data_dir).expanduser() if data_dir else None, **values)
