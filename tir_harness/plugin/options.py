"""Options of the pytest plugin (one table, `OPTIONS`), parsed once into a frozen `HarnessOptions`.

Every option is a command-line flag and an ini setting named `tir_<option>` (`tir_max_tokens = 512` under
`[tool.pytest.ini_options]` in pyproject.toml, or `[pytest]` in pytest.ini); the command line wins, then the
environment variable where the option has one, then the ini file.
"""

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

from tir_harness.run.evaluation import parse_engine_args, sandbox_limit_rule, server_urls
from tir_harness.run.extensions import RegistryError, check, names
from tir_harness.run.loop import MAX_RUN_SEED, MAX_TURN_CHARS, MIN_TURN_CHARS, SAMPLE_BITS
from tir_harness.util.arguments import int_range, positive_int

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


def _sandbox_limit(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An option that becomes the sandbox's `ExecutorConfig.<name>`, checked at parsing by the sandbox's own
    rule (its minimum memory, for one): the run would otherwise stop at its start with an internal error."""

    def check(text: str) -> Any:
        value = parse(text)
        rule = sandbox_limit_rule(name, value)
        if rule is not None:
            raise argparse.ArgumentTypeError(rule)
        return value

    check.__name__ = parse.__name__
    return check


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text

    parse.__name__ = "choice"
    return parse


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {text!r}")


_DAY = 86400.0  # seconds: the longest timeout that makes sense; larger ones overflow the sandbox's timers


@dataclass(frozen=True)
class Option:
    """One harness option: its command-line flag, its ini setting (`tir_<dest>` under [tool.pytest.ini_options]
    or [pytest]) and, where one exists, its environment variable.  The command line wins, then the environment,
    then the ini file, then `default`."""

    flag: str  # "--max-tokens"
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None  # parses (and checks) a value given as text
    kind: str = "value"  # "value", "flag" (no value on the command line), "list" (repeatable; comma-separated)
    env: str | None = None
    registry: str | None = None  # the registry kind the value names: checked once conftests have registered
    path: bool = False  # a path: an ini value is relative to the ini file's folder
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def ini(self) -> str:
        return f"tir_{self.dest}"


OPTIONS: tuple[Option, ...] = (
    Option("--model", "alias, local folder or Hugging Face id (env TIR_MODEL)", env="TIR_MODEL"),
    Option("--revision", "model revision on the hub"),
    Option("--prompt-format", "prompt format ({names}); default: the alias's, else guessed from the model name",
           registry="prompt format"),
    Option("--prompt-type", "prompt type ({names}): tora (the reference's TIR prompt), cot (no tool), "
           "tora-instruct (this project's instruction), tora-fewshot (base models); default: the alias's, else "
           "tora for the reference's formats", registry="prompt type"),
    Option("--data-dir", "folder with <dataset>/<split>.jsonl (env TIR_DATA_DIR); else the shipped test sets, "
           "else the hub", env="TIR_DATA_DIR", path=True),
    Option("--split", "run every dataset benchmark on this split (train: for training data; datasets without it "
           "are deselected); default: each test's own, the test split for benchmarks/", type=_choice("test", "train")),
    Option("--engine", "a registered engine ({names}; more through entry points or register_engine); default: "
           "openai with --server-url, else vllm", registry="engine"),
    Option("--engine-arg", "an argument of the engine (vLLM's EngineArgs: quantization=fp8, max_num_seqs=64, ...) "
           "as KEY=VALUE, VALUE read as JSON when it is JSON; repeat, or give one JSON object.  Recorded in the "
           "manifest; those that change outputs are part of the store key", default=(), kind="list",
           metavar="KEY=VALUE"),
    Option("--server-url", "OpenAI-compatible server(s) instead of in-process vLLM; repeat or comma-separate",
           default=(), kind="list"),
    Option("--server-timeout", "seconds one request to a server may take, from sending it to the answer's last "
           "byte (default 600)", 600.0, _bounded(0.0, _DAY, low_open=True)),
    Option("--server-retries", "retries of a request a server failed (connection lost, 5xx), with backoff "
           "(default 6)", 6, int_range(0, 100)),
    Option("--max-tool-calls", "code executions per trajectory (default 4)", 4, int_range(0, 1000)),
    # Unset sampling options are chosen by the run: a reasoning model's generation_config.json, else greedy and
    # 1024 tokens (run/evaluation.py); the manifest records the values and where each came from.
    Option("--max-tokens", "tokens per model turn (default: a reasoning model's generation config, else its "
           "context; else 1024)", None, positive_int),
    Option("--max-turn-chars", "characters of one model turn kept; a longer completion keeps its head and tail "
           f"around a marker, and the turn records the cut (default {MAX_TURN_CHARS})", MAX_TURN_CHARS,
           int_range(MIN_TURN_CHARS)),
    # vLLM's own limits (SamplingParams): temperature in [0, 2], top_p in (0, 1].
    Option("--temperature", "sampling temperature, 0 to 2 (default: a reasoning model's generation config, else "
           "0: greedy)", None, _bounded(0.0, 2.0)),
    Option("--top-p", "nucleus sampling, in (0, 1] (default: a reasoning model's generation config, else 1)", None,
           _bounded(0.0, 1.0, low_open=True)),
    # Sample i of a run with seed s samples with s * 2**SAMPLE_BITS + i (run/loop.py's sample_seed): these bounds
    # keep that injective and inside a signed 64-bit integer.
    Option("--seed", "the run's seed; sample i samples with seed * 2**20 + i (default 0)", 0,
           int_range(1 - MAX_RUN_SEED, MAX_RUN_SEED - 1)),
    Option("--samples", "trajectories per problem (pass@k, maj@k)", 1, int_range(1, 2**SAMPLE_BITS)),
    Option("--dtype", "vLLM dtype (auto, bfloat16, float16, float32)", "auto"),
    Option("--max-model-len", "vLLM's context length (default: the model's)", None, positive_int),
    Option("--tensor-parallel-size", "GPUs one vLLM engine spans (default 1)", 1, positive_int),
    Option("--gpu-memory-utilization", "vLLM's share of GPU memory, in (0, 1]", None,
           _bounded(0.0, 1.0, low_open=True)),
    Option("--kv-cache-memory", "KV cache size for vLLM, e.g. 512M (needed on CPU)", None, _size),
    Option("--enforce-eager", "disable CUDA graphs / compilation in vLLM", False, kind="flag"),
    Option("--max-inflight", "trajectories in flight per process, and at most that many requests per --server-url; "
           "default: from the engine's capacity (vLLM's max_num_seqs) and the sandbox's session limit, recorded in "
           "the manifest (a server's requests then follow its load, from vLLM's /metrics)", None, positive_int),
    Option("--shard", "solve share I of N of the selected problems (round-robin over their sorted test ids); "
           "`tir-harness merge` joins the N runs", None, _shard, metavar="I/N"),
    Option("--gpu-per-worker", "with pytest-xdist: worker N sees only GPU N (CUDA_VISIBLE_DEVICES)", False,
           kind="flag"),
    Option("--reference-quirks", "the model's input as the reference built it: a second BOS, the server's "
           "special-token skipping, one seed for every sample (docs/fidelity.md, Quirks)", False, kind="flag"),
    Option("--exec-timeout", "seconds per code execution (default 10)", 10.0,
           _sandbox_limit("timeout", _bounded(0.0, _DAY, low_open=True))),
    Option("--exec-memory-mb", "memory one sandbox session may use, in MB (default 2048)", 2048,
           _sandbox_limit("memory_mb", int_range(1, 2**20))),
    Option("--exec-observations", "what the model sees of its code ({names}): full (output, last value, "
           "traceback tail) or reference (the reference implementation's); default: automatic, reference with "
           "the reference's prompts, else full", registry="observation style"),
    Option("--report-dir", "where this run's reports go (default reports/<model>-<time>)", path=True),
    Option("--store-dir", "result store (env TIR_STORE_DIR; default in the pytest cache dir)", env="TIR_STORE_DIR",
           path=True),
    Option("--refresh", "regenerate even when the store holds a result", False, kind="flag"),
    Option("--baseline", "a previous trajectories.jsonl (or run dir) to compare against", path=True),
    Option("--gate", "exit status from the baseline comparison, not from single problems", False, kind="flag"),
    Option("--max-drop", "with --gate: tolerated accuracy drop in points", 0.0, _bounded(0.0, 100.0)),
    Option("--alpha", "with --gate: significance level of McNemar's test", 0.05, _probability),
)  # fmt: skip
BY_DEST = {option.dest: option for option in OPTIONS}


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "tir-harness: evaluate a model on math problems with a Python tool")
    for option in OPTIONS:
        help_ = option.help
        if option.registry is not None:  # the entries registered when --help runs (built-ins, entry points)
            help_ = help_.replace("{names}", ", ".join(names(option.registry)))
        # default None: "not on the command line", so that the environment and the ini file can say more.
        if option.kind == "flag":
            group.addoption(option.flag, action="store_true", default=None, help=help_)
        elif option.kind == "list":
            group.addoption(option.flag, action="append", default=None, help=help_)
        else:
            group.addoption(option.flag, type=option.type, default=None, help=help_, metavar=option.metavar)
        parser.addini(option.ini, f"{option.flag}: {help_}", type="string", default=None)


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str]:
    """An option's value and where it came from (the flag, the variable or the ini setting, for messages)."""
    given = config.getoption(option.dest)
    if given is not None:
        return given, option.flag
    if option.env and os.environ.get(option.env):
        text = os.environ[option.env]
        return _parse(option, text, option.env), option.env
    raw = config.getini(option.ini)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return option.default, option.flag
    where = f"{option.ini} ({config.inipath.name if config.inipath else 'ini file'})"
    value = _parse(option, str(raw).strip(), where)
    if option.path and config.inipath is not None and value is not None:
        value = str(config.inipath.parent / Path(value).expanduser())
    return value, where


def _parse(option: Option, text: str, where: str) -> Any:
    try:
        if option.kind == "flag":
            return _flag(text)
        if option.kind == "list":
            return [text]
        return option.type(text) if option.type is not None else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class HarnessOptions:
    model: str | None
    revision: str | None
    engine: str | None
    engine_args: tuple[tuple[str, Any], ...]
    prompt_format: str | None
    prompt_type: str | None
    data_dir: Path | None
    split: str | None
    server_urls: tuple[str, ...]
    server_timeout: float
    server_retries: int
    max_tool_calls: int
    max_tokens: int | None
    max_turn_chars: int
    temperature: float | None
    top_p: float | None
    seed: int
    samples: int
    dtype: str
    max_model_len: int | None
    tensor_parallel_size: int
    gpu_memory_utilization: float | None
    kv_cache_memory: int | None
    enforce_eager: bool
    max_inflight: int | None  # None: chosen from the engine and the sandbox (Evaluation.start_generation)
    gpu_per_worker: bool
    exec_timeout: float
    exec_memory_mb: int
    exec_observations: str | None
    reference_quirks: bool
    shard: str | None  # "I/N" (run/shards.py)
    report_dir: str | None
    store_dir: str | None
    refresh: bool
    baseline: str | None
    gate: bool
    max_drop: float
    alpha: float

    @classmethod
    def from_config(cls, config: pytest.Config) -> HarnessOptions:
        """The options from the command line, the environment and the ini file; values naming registry entries
        are checked here, once conftests have registered theirs (plugin/hooks.py)."""
        resolved = {option.dest: _resolve(config, option) for option in OPTIONS}

        def get(name: str) -> Any:
            return resolved[name][0]

        for option in OPTIONS:
            value, where = resolved[option.dest]
            if option.registry is not None and value is not None:
                try:
                    check(option.registry, value)
                except RegistryError as exc:
                    raise pytest.UsageError(f"{where}: {exc}") from None
        urls = tuple(u.strip() for value in get("server_url") for u in value.split(",") if u.strip())
        if urls:
            try:
                urls = server_urls(urls)
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
        if get("gate") and not get("baseline"):
            raise pytest.UsageError("--gate needs --baseline (the run to compare against)")
        data_dir = get("data_dir")
        if data_dir and not Path(data_dir).expanduser().is_dir():
            raise pytest.UsageError(f"{resolved['data_dir'][1]} {data_dir}: no such folder")
        try:
            engine_args = parse_engine_args(get("engine_arg"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        own = ("server_urls", "data_dir", "engine_args")
        values: dict[str, Any] = {name: get(name) for name in cls.__dataclass_fields__ if name not in own}
        data = Path(data_dir).expanduser() if data_dir else None
        return cls(server_urls=urls, data_dir=data, engine_args=engine_args, **values)
