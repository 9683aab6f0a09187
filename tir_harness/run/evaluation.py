"""A run, without pytest: `Evaluation` decides everything a run is and drives it.

Built from a frozen `RunConfig`, it resolves the model, chooses the engine (the engine registry), the prompt
format and type (with their precedence: option, then the model's alias, then the model's name), the sandbox's
and the loop's configuration and the observation style; it computes each trajectory's store key and seed,
takes what the result store already holds, schedules the rest and makes each trajectory a durable record.

    evaluation = Evaluation(RunConfig(model="gemma-3-270m"), run_id="r1")
    evaluation.plan(problems)          # the problems the run will be asked for
    evaluation.start()                 # engine, sandbox, store; everything not stored is submitted at once
    records = [evaluation.future(problem, s).result() for s in range(evaluation.config.samples)]
    evaluation.close(cancel=False)

The pytest plugin turns options into a `RunConfig`, collected items into `plan`, and records into test
reports; `tir_harness.evaluate` (run/api.py) does the same for a script.  A problem's path runs downward
from here: engine and sandbox (through the loop), grading, records.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tir_harness.engines.base import Engine, EngineError, SamplingConfig
from tir_harness.engines.models import ModelError, ModelSpec, generation_defaults, resolve_model
from tir_harness.engines.registry import ENGINES, EngineSettings, EngineType
from tir_harness.records.store import KeyParts, StoreError, trajectory_key
from tir_harness.records.trajectory import END_ERROR, Trajectory
from tir_harness.records.verdict import regraded
from tir_harness.records.writer import GroupWriter
from tir_harness.run.boundary import SafeEngine, safe_sessions
from tir_harness.run.driver import Driver
from tir_harness.run.loop import (
    LOOP_VERSION,
    MAX_TURN_CHARS,
    REFERENCE_OUTPUT_CHARS,
    LoopConfig,
    execution_mode,
    sample_seed,
)
from tir_harness.run.problems import Problem
from tir_harness.run.prompts import (
    CHAT_TEMPLATE,
    FORMATS,
    PROMPT_TYPES,
    ChatTemplateFormat,
    PromptFormat,
    default_observation_style,
    default_prompt_type,
    format_for_model,
)
from tir_harness.run.results import RunContext, make_record
from tir_harness.run.scheduler import automatic_max_inflight, driver_workers, engine_slots
from tir_harness.util.registry import RegistryError
from tir_harness.util.text import exception_line, sanitize

# The session limit's part of every store key (`keyed_executor`): ExecutorConfig's fixed default until it came
# from the machine's memory.
KEYED_MAX_WORKERS = 256
# Threads that make records (grading) from ended trajectories.
FINISHERS = 4


class StartupError(Exception):
    """The run cannot start (model, engine, store); the message is one line for the user."""


# --engine-arg keys that a harness option owns: the run's seed, the model and its revision are part of every
# record and store key, so they are set in one way only.
RESERVED_ENGINE_ARGS = {"model": "--model", "revision": "--revision", "seed": "--seed"}
# The named options that are shorthands for an engine argument, with their defaults: an engine arg and its
# shorthand may both be given only when they agree.
SHORTHANDS = {
    "dtype": ("--dtype", "dtype", "auto"),
    "max_model_len": ("--max-model-len", "max_model_len", None),
    "tensor_parallel_size": ("--tensor-parallel-size", "tensor_parallel_size", 1),
    "gpu_memory_utilization": ("--gpu-memory-utilization", "gpu_memory_utilization", None),
    "kv_cache_memory_bytes": ("--kv-cache-memory", "kv_cache_memory", None),
    "enforce_eager": ("--enforce-eager", "enforce_eager", False),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is, as plain values (the pytest options of the same names)."""

    model: str | None = None
    revision: str | None = None
    engine: str | None = None  # a registered engine; None: "openai" with server_urls, else "vllm"
    engine_args: tuple[tuple[str, Any], ...] = ()  # the engine's own arguments, (key, value) in order
    server_urls: tuple[str, ...] = ()
    server_timeout: float = 600.0
    server_retries: int = 6
    dtype: str = "auto"
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    kv_cache_memory: int | None = None
    enforce_eager: bool = False
    prompt_format: str | None = None
    prompt_type: str | None = None
    # None: chosen in `Evaluation.sampling_choice` (a reasoning model's recommendation, else SamplingConfig's).
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int = 0
    samples: int = 1
    max_tool_calls: int = 4
    max_turn_chars: int = MAX_TURN_CHARS
    exec_timeout: float = 10.0
    exec_memory_mb: int = 2048
    exec_observations: str | None = None
    store_dir: Path | None = None  # the result store (a folder or a .sqlite3 file); None: no store
    refresh: bool = False  # regenerate even what the store holds
    max_inflight: int | None = None  # None: from the engine's capacity and the sandbox's session limit
    reference_quirks: bool = False  # the reference's double BOS, special-token skipping and one seed for all

    @property
    def engine_name(self) -> str:
        return self.engine or ("openai" if self.server_urls else "vllm")


def keyed_executor(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox's settings as the store key hashes them.  The session limit changes no observation (a
    trajectory waits for a session, it never loses one), and chosen from the machine's memory (None) it would
    differ from machine to machine: keyed as the fixed 256 every run had before, so stored trajectories stay
    valid across machines and across the change."""
    if settings.get("max_workers", 0) is None:
        return {**settings, "max_workers": KEYED_MAX_WORKERS}
    return dict(settings)


def server_urls(urls: Iterable[str]) -> tuple[str, ...]:
    """The servers' roots, each once, by the engine's own rule (what passes here is what the engine accepts);
    ValueError with one line naming a bad URL."""
    from tir_harness.engines.openai import normalize_url

    try:
        return tuple(dict.fromkeys(normalize_url(url) for url in urls))
    except EngineError as exc:
        raise ValueError(str(exc)) from None


def sandbox_limit_rule(name: str, value: Any) -> str | None:
    """Why `value` cannot be the sandbox's `ExecutorConfig.<name>` (its minimum memory, for one), or None."""
    from tir_harness.sandbox.executor import ExecutorConfig

    try:
        ExecutorConfig(**{name: value})
    except ValueError as exc:  # "ExecutorConfig.memory_mb must be >= 16, got 8"
        rule = str(exc).partition(" must be ")[2]
        return f"must be {rule} (the sandbox's limit)" if rule else str(exc)
    return None


def parse_engine_args(values: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    """`KEY=VALUE` items (VALUE read as JSON when it is JSON: numbers, true, null, objects; else a string), or
    JSON objects, into (key, value) pairs.  ValueError with one line naming the item for anything else."""
    args: dict[str, Any] = {}
    for value in values:
        text = value.strip()
        if text.startswith("{"):
            try:
                pairs = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"--engine-arg {text}: not a JSON object ({exc.msg})") from None
            if not isinstance(pairs, dict):
                raise ValueError(f"--engine-arg {text}: not a JSON object")
            items = list(pairs.items())
        else:
            key, sep, raw = text.partition("=")
            if not sep:
                raise ValueError(f"--engine-arg {text}: expected KEY=VALUE or a JSON object")
            try:
                parsed: Any = json.loads(raw)
            except json.JSONDecodeError:
                parsed = raw
            items = [(key.strip(), parsed)]
        for key, parsed in items:
            if not key.isidentifier():
                raise ValueError(f"--engine-arg {text}: {key!r} is not an argument name")
            if key in args and args[key] != parsed:
                raise ValueError(f"--engine-arg {key}: given twice, as {args[key]!r} and {parsed!r}")
            args[key] = parsed
    return tuple(args.items())


def check_engine_args(config: RunConfig) -> None:
    """What can be checked of --engine-arg without the engine: reserved keys and conflicts with their named
    shorthands.  StartupError with one line."""
    for key, value in config.engine_args:
        if key in RESERVED_ENGINE_ARGS:
            raise StartupError(f"tir-harness: --engine-arg {key}: set it with {RESERVED_ENGINE_ARGS[key]}")
        if key in SHORTHANDS:
            option, field_name, default = SHORTHANDS[key]
            named = getattr(config, field_name)
            if named != default and named != value:
                raise StartupError(
                    f"tir-harness: --engine-arg {key}={json.dumps(value)} conflicts with {option} {named} (give one)"
                )


def _accepted(kind: EngineType, name: str, args: Mapping[str, Any]) -> None:
    """Unknown engine arguments are a one-line error before the engine starts."""
    if not args:
        return
    if kind.accepted_args is None:
        raise StartupError(f"tir-harness: --engine-arg {next(iter(args))}: the {name} engine takes no engine arguments")
    try:
        accepted = set(kind.accepted_args())
    except ImportError as exc:
        hint = "pip install -e '.[cpu]'"
        raise StartupError(f"tir-harness: the {name} engine cannot be imported ({exc}); {hint}") from None
    except Exception as exc:
        reason = exception_line(exc)
        raise StartupError(f"tir-harness: the {name} engine's arguments cannot be listed: {reason}") from None
    for key in args:
        if key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise StartupError(f"tir-harness: --engine-arg {key}: not an argument of the {name} engine{hint}")


def _settle(future: Future[Any], result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve `future` unless the run's close cancelled it meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class Evaluation:
    """One process's share of a run: resolves, starts and drives it (see the module docstring).

    - `make_engine`: a callable returning an engine to use instead of the registered one (the plugin's
      `pytest_tir_make_engine` hook), or None to let the registry start one.
    - `on_warning`: a line for the user (a server that is down); `on_stop`: the run should end after what is in
      progress, with this reason (the store is full); `halted`: true once the run was told to stop, after which
      nothing more is submitted.
    """

    def __init__(
        self,
        config: RunConfig,
        run_id: str,
        *,
        make_engine: Callable[[], Engine | None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_stop: Callable[[str], None] | None = None,
        halted: Callable[[], bool] = lambda: False,
    ) -> None:
        check_engine_args(config)
        self.config = config
        self.run_id = run_id
        self._make_engine = make_engine
        self._on_warning = on_warning
        self._on_stop = on_stop
        self._halted = halted
        self.work: list[Problem] = []
        self.engine: Engine | None = None
        self.executor: Any = None
        self.store: Any = None
        self.driver: Driver | None = None
        self._finisher: ThreadPoolExecutor | None = None
        self.context: RunContext | None = None
        self.engine_info: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.held: int | None = None  # trajectories of this run the store held when it started
        self._writer: GroupWriter | None = None
        self._model = ModelSpec(name="", path="")
        self.sampling_choice: dict[str, Any] = {}  # temperature, top_p, max_tokens: their values and sources
        self._kind: EngineType | None = None
        self._key_args: dict[str, Any] = {}
        self._executor_config: Any = None
        self._loop: dict[int, LoopConfig] = {}
        self._futures: dict[tuple[str, int], Future[dict[str, Any]]] = {}
        self._test_ids: dict[str, str] = {}  # problem id -> the test that reports it (stored with its records)
        self.started = False

    # -- planning and starting -------------------------------------------------------------------------------

    def plan(self, problems: Iterable[Problem], test_ids: Mapping[str, str] | None = None) -> None:
        """The problems this run will be asked for (each once); `test_ids` names who reports each, by id."""
        self.work.extend(problems)
        self._test_ids.update(test_ids or {})

    def start(self) -> None:
        """Resolve the run, open the store and submit every planned trajectory the store does not hold (a run
        the store holds in full starts no engine).  StartupError with one line for anything that stops it."""
        if self.started:
            return
        self.started = True
        cfg = self.config
        custom = self._make_engine() if self._make_engine is not None else None
        if custom is None:
            self._kind = self._engine_type()
            if not cfg.model and self._kind.needs_model:
                raise StartupError("tir-harness: no --model given (e.g. --model gemma-3-270m, or --server-url URL)")
            _accepted(self._kind, cfg.engine_name, dict(cfg.engine_args))
            self._key_args = {k: v for k, v in cfg.engine_args if k not in self._kind.neutral_args}
        self._model = ModelSpec(name=cfg.model or "", path=cfg.model or "") if custom else self._model_spec()
        # Before any engine: the settings are part of every store key.  Only the in-process engine, which
        # downloads the model anyway, reads a hub model's config files.
        self.sampling_choice = self._choose_sampling(hub=custom is None and cfg.engine_name == "vllm")
        self.engine_info = {"sampling": self.sampling_choice}
        self.store = self._open_store()  # before any engine: a bad store is found before generation
        self._writer = GroupWriter(self.store) if self.store is not None else None
        self.engine = custom
        if self.engine is None and not cfg.model:
            self.engine = self._start_engine()  # only the engine (a server) knows the model's name
        model_name = cfg.model or str(self.engine.info().get("model") or "server")  # type: ignore[union-attr]
        fmt = self._prompt_format(model_name)
        try:
            prompt_type = PROMPT_TYPES.get(cfg.prompt_type or self._model.prompt_type or default_prompt_type(fmt.name))
        except RegistryError as exc:
            raise StartupError(f"tir-harness: {exc}") from None
        from tir_harness.sandbox.executor import ExecutorConfig

        style = cfg.exec_observations or default_observation_style(fmt.name, prompt_type.name)
        self._executor_config = ExecutorConfig(
            timeout=cfg.exec_timeout,
            memory_mb=cfg.exec_memory_mb,
            observation_style=style,
            # The reference does not cut observations: a generous cap instead of the default.
            max_output_chars=REFERENCE_OUTPUT_CHARS if style == "reference" else ExecutorConfig.max_output_chars,
        )
        chosen = {name: choice["value"] for name, choice in self.sampling_choice.items() if name != "reasoning_model"}
        sampling = SamplingConfig(**chosen, seed=cfg.seed, stop=fmt.stop)
        base = LoopConfig(
            fmt,
            prompt_type,
            sampling,
            cfg.max_tool_calls,
            cfg.max_turn_chars,
            execution_mode=execution_mode(style),  # the reference's styles replay the conversation's code
            reference_quirks=cfg.reference_quirks,
        )
        try:
            # The reference sampled every sample with the run's seed (so its samples repeat): only as a quirk.
            self._loop = {
                s: dataclasses.replace(
                    base, sampling=dataclasses.replace(sampling, seed=cfg.seed if cfg.reference_quirks else
                                                       sample_seed(cfg.seed, s))
                )
                for s in range(cfg.samples)
            }  # fmt: skip
        except ValueError as exc:
            raise StartupError(f"tir-harness: {exc}") from None
        self.context = RunContext(
            run_id=self.run_id,
            model=model_name,
            prompt_format=fmt.name,
            prompt_type=prompt_type.name,
            max_tool_calls=cfg.max_tool_calls,
            executor=dataclasses.asdict(self._executor_config),
        )
        keys = {(p, s): self.key(p, s) for p in self.work for s in range(cfg.samples)}
        try:
            stored = {} if cfg.refresh or self.store is None else self.store.get_many(list(keys.values()))
            self.held = len(stored)  # said by the first progress line
        except StoreError as exc:  # a store damaged past its header is found by its first read
            raise StartupError(f"tir-harness: --store-dir {exc}") from None
        if len(stored) < len(keys):
            self.start_generation()  # a run the store already holds needs no engine at all
        if self._halted():
            return  # told to stop while the engine started
        for (problem, sample), key in keys.items():
            self._submit(problem, sample, key, stored.get(key))

    def start_generation(self) -> None:
        """Start the engine and the executor, once (a run that the store holds in full needs neither)."""
        if self.engine is None:
            self.engine = self._start_engine()
        try:
            if self.executor is None:
                from tir_harness.sandbox.executor import Executor

                self.executor = Executor(config=self._executor_config)
            isolation = self.executor.isolation  # waits for the sandbox to be ready
        except Exception as exc:
            raise StartupError(f"tir-harness: the sandbox cannot start: {exception_line(exc)}") from None
        sessions = self.executor.max_workers  # the session limit, from the machine's memory unless given
        if self.driver is None:
            inflight = self.config.max_inflight or automatic_max_inflight(engine_slots(self.engine), sessions)
            # Beyond `sessions`, a trajectory reaching its first code block waits for one to end (never evicts).
            self.driver = Driver(
                SafeEngine(self.engine),
                safe_sessions(self.executor.session),
                workers=driver_workers(inflight),
                max_inflight=inflight,
                max_sessions=sessions,
            )
            # Grading (the sympy verdicts may take seconds) runs here, not in the driver's threads, which
            # advance every trajectory; it is CPU work under the GIL, so a few threads are as fast as many.
            self._finisher = ThreadPoolExecutor(FINISHERS, thread_name_prefix="tir-finish")
        self.engine_info = {
            **self.engine.info(),
            "model_identity": self._model.identity,
            "executor_isolation": isolation,
            "max_inflight": self.driver.max_inflight,  # the manifest records what --max-inflight came to
            "max_sessions": sessions,  # and what the session limit came to
            "sampling": self.sampling_choice,
        }
        if self.config.engine_args:
            self.engine_info["engine_args"] = dict(self.config.engine_args)

    def _choose_sampling(self, hub: bool) -> dict[str, Any]:
        """Temperature, top_p and max_tokens, each with where it came from: the option ("option"); else, for a
        reasoning model, its generation_config.json ("generation_config"); else SamplingConfig's default
        ("default": greedy, 1024 tokens, what every run had before).  Models that do not think keep the defaults,
        so their runs, store keys and the reference reproduction are what they were."""
        cfg = self.config
        given = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}
        recommended = None
        if self._model.path and any(value is None for value in given.values()):
            try:
                recommended = generation_defaults(self._model, hub=hub)
            except ModelError as exc:
                raise StartupError(f"tir-harness: {exc}") from None
        reasoning = recommended is not None and recommended.reasoning
        choice: dict[str, Any] = {"reasoning_model": reasoning}
        for name, value in given.items():
            if value is not None:
                choice[name] = {"value": value, "source": "option"}
            elif reasoning and getattr(recommended, name) is not None:
                choice[name] = {"value": getattr(recommended, name), "source": "generation_config"}
            elif reasoning and name == "max_tokens" and recommended.context is not None:
                # Thinking runs long and the usual configs give no length: up to the context (--max-model-len
                # when smaller); the engines stop a turn where prompt and turn fill the context.
                value = min(recommended.context, cfg.max_model_len or recommended.context)
                choice[name] = {"value": value, "source": "model context"}
            else:
                choice[name] = {"value": getattr(SamplingConfig, name), "source": "default"}
        return choice

    def _engine_type(self) -> EngineType:
        try:
            return ENGINES.get(self.config.engine_name)
        except RegistryError as exc:
            raise StartupError(f"tir-harness: --engine: {exc}") from None

    def _model_spec(self) -> ModelSpec:
        cfg = self.config
        if cfg.model is None:
            return ModelSpec(name="", path="")
        try:
            return resolve_model(cfg.model, cfg.revision)
        except ModelError as exc:
            raise StartupError(f"tir-harness: {exc}") from None

    def _start_engine(self) -> Engine:
        cfg, spec = self.config, self._model
        kind = self._kind or self._engine_type()
        settings = EngineSettings(
            model=spec.path,
            revision=spec.revision,
            seed=cfg.seed,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            kv_cache_memory_bytes=cfg.kv_cache_memory,
            enforce_eager=cfg.enforce_eager,
            server_urls=cfg.server_urls,
            server_timeout=cfg.server_timeout,
            server_retries=cfg.server_retries,
            max_inflight=cfg.max_inflight,
            args=dict(cfg.engine_args),
            on_warning=self._on_warning,
        )
        try:
            return kind.start(settings)
        except EngineError as exc:
            prefix = f"--model {cfg.model}: " if cfg.model and kind.needs_model else ""
            raise StartupError(f"tir-harness: {prefix}{exc}") from None
        except ImportError as exc:
            raise StartupError(f"tir-harness: the engine cannot be imported ({exc}); pip install -e '.[cpu]'") from None

    def _prompt_format(self, model_name: str) -> PromptFormat:
        """The prompt format: --prompt-format, else the model alias's, else the one the model's name implies."""
        try:
            name = format_for_model(model_name, self.config.prompt_format, self._model.prompt_format)
        except RegistryError as exc:
            raise StartupError(f"tir-harness: {exc}") from None
        if name != CHAT_TEMPLATE:
            return FORMATS.get(name)
        try:
            return ChatTemplateFormat.from_tokenizer(self._model.path or model_name)
        except Exception as exc:
            raise StartupError(f"tir-harness: --prompt-format chat-template: {exc}") from None

    def _open_store(self) -> Any:
        if self.config.store_dir is None:
            return None
        from tir_harness.records.store import ResultStore

        try:
            return ResultStore(self.config.store_dir)
        except StoreError as exc:
            raise StartupError(f"tir-harness: --store-dir {exc}") from None

    # -- trajectories ------------------------------------------------------------------------------------------

    def key(self, problem: Problem, sample: int) -> str:
        """The result store's key of a problem's sample: everything that determines its trajectory."""
        loop = self._loop[sample]
        assert self.context is not None
        return trajectory_key(
            KeyParts(
                model=self._model.identity or self.context.model,
                model_revision=self._model.revision,
                prompt_format=loop.prompt_format.name,
                prompt_type=loop.prompt_type.name,
                prompt=loop.prompt_format.first_prompt(problem.question, loop.prompt_type),
                sampling=loop.sampling.to_dict(),
                seed=loop.sampling.seed,
                sample=sample,
                max_tool_calls=loop.max_tool_calls,
                max_turn_chars=loop.max_turn_chars,
                executor=keyed_executor(self.context.executor),
                loop_version=LOOP_VERSION,
                engine_args=self._key_args,
                reference_quirks=self.config.reference_quirks,
                execution_mode=loop.execution_mode,
            )
        )

    def future(self, problem: Problem, sample: int) -> Future[dict[str, Any]]:
        """The future record of a problem's sample; a problem the plan did not announce is submitted now."""
        future = self._futures.get((problem.id, sample))
        if future is None:
            if not self.started:
                self.plan([problem])
                self.start()
                future = self._futures.get((problem.id, sample))
        if future is None:  # a problem the collection did not announce (e.g. built inside the test)
            self.start_generation()
            key = self.key(problem, sample)
            cached = None if self.config.refresh or self.store is None else self.store.get(key)
            future = self._submit(problem, sample, key, cached)
        return future

    def _submit(self, problem: Problem, sample: int, key: str, cached: dict[str, Any] | None) -> Future[dict[str, Any]]:
        if cached is not None:
            # Stored trajectories are graded again: a better grader re-scores without regenerating.
            future: Future[dict[str, Any]] = Future()
            record = regraded(cached, problem.dataset, answer_kind=problem.answer_kind)
            future.set_result({**record, "run_id": self.run_id, "cached": True})
        else:
            # Resolved once the record is durable in the store, not when the trajectory ends: nobody is ever told
            # of a trajectory that a crash could still lose.
            future = Future()
            assert self.driver is not None and self._finisher is not None  # start_generation made them
            finisher = self._finisher
            trajectory = self.driver.start(problem.question, self._loop[sample], f"{problem.id}#s{sample}")

            def finish(done: Future[Trajectory]) -> None:
                try:
                    finisher.submit(self._finish_one, future, done, problem, sample, key)
                except RuntimeError as exc:  # the finishing pool is shut down (a close that gave up waiting)
                    _settle(future, exception=exc)

            trajectory.add_done_callback(finish)
        self._futures[(problem.id, sample)] = future
        return future

    def _finish_one(
        self, outer: Future[dict[str, Any]], done: Future[Trajectory], problem: Problem, sample: int, key: str
    ) -> None:
        """A trajectory that ended (or failed, or was dropped) as its record, resolved once it is durable."""
        if done.cancelled():  # dropped by close(cancel=True) before it started: nothing to keep
            outer.cancel()
            return
        try:
            record = self._solve_one(problem, sample, key, done)
        except BaseException as exc:  # never a future that hangs
            _settle(outer, exception=exc)
            raise
        writer = self._writer
        if record["end_reason"] == END_ERROR or writer is None:  # engine failures are retried, not remembered
            _settle(outer, record)
            return
        try:
            stored = writer.put(key, record)
        except Exception as exc:  # the writer is closed: the run is ending
            _settle(outer, self._store_failed(exc, problem, sample, key))
            return

        def durable(done: Future[None]) -> None:
            exc = done.exception()
            _settle(outer, record if exc is None else self._store_failed(exc, problem, sample, key))

        stored.add_done_callback(durable)

    def _store_failed(self, exc: BaseException, problem: Problem, sample: int, key: str) -> dict[str, Any]:
        """A full or broken store: the run stops after what is in progress, and the trajectory the store could
        not keep is no result (one is reported only once it is durable).  It ends as an error record that, like an
        engine error's, is not stored: a rerun generates it again, and the results reported are exactly those in
        the store."""
        reason = f"cannot write the result store: {sanitize(exception_line(exc))}"
        self.stop(f"tir-harness: {reason}")
        assert self.context is not None
        error = f"internal error: {reason} (this trajectory was not kept; a rerun generates it again)"
        sampling = self._loop[sample].sampling.to_dict()
        return make_record(problem, sample, Trajectory("", end_reason=END_ERROR, error=error), self.context, key,
                           sampling)  # fmt: skip

    def _solve_one(self, problem: Problem, sample: int, key: str, done: Future[Trajectory]) -> dict[str, Any]:
        assert self.context is not None
        sampling = self._loop[sample].sampling.to_dict()
        try:
            trajectory = done.result(timeout=0)  # it is done: raises what broke it
            record = make_record(problem, sample, trajectory, self.context, key, sampling)
        except Exception as exc:
            # Whatever broke, the problem still ends as one record: its test fails with this line, the summary
            # counts it, and (like an engine error) it is not stored, so the next run tries it again.
            error = sanitize(f"internal error: {exception_line(exc)}")
            record = make_record(problem, sample, Trajectory("", end_reason=END_ERROR, error=error), self.context,
                                 key, sampling)  # fmt: skip
        # Stored with it: a record whose test never reported (an interrupt, a crashed worker) still names its test.
        record["test_id"] = self._test_ids.get(problem.id, "")
        return record

    def stop(self, reason: str) -> None:
        """End the run after what is in progress (a fault that makes going on pointless), saying why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._on_stop is not None:
            self._on_stop(self.stop_reason)

    # -- closing -------------------------------------------------------------------------------------------------

    def close(
        self,
        cancel: bool,
        aborted: Callable[[], bool] = lambda: False,
        on_slow: Callable[[], None] | None = None,
    ) -> None:
        """Finish (or, with `cancel`, drop) what is queued, then close engine, driver, sandbox and store.

        `aborted` true: stop waiting for the trajectories in flight (the store is left open: a thread may be
        inside a write, and SQLite is crash-safe).  `on_slow` is called once if closing takes more than 0.5 s."""
        for future in self._futures.values():
            future.cancel()
        engine, driver, finisher = self.engine, self.driver, self._finisher

        def shut_down() -> None:
            # The engine first: requests in flight fail at once, so trajectories end instead of waiting.
            if engine is not None:
                engine.close()
            if driver is not None:
                driver.close(cancel=cancel)
            if finisher is not None:
                finisher.shutdown(wait=True)  # the records of the last trajectories, handed to the writer

        # In a thread of its own, so that a second Ctrl-C or SIGTERM ends the wait at once.
        closer = threading.Thread(target=shut_down, name="tir-harness-close", daemon=True)
        closer.start()
        quiet = time.monotonic() + 0.5  # a close that takes longer says why the run waits
        while closer.is_alive() and not aborted() and time.monotonic() < quiet:
            closer.join(0.05)
        if closer.is_alive() and not aborted() and on_slow is not None:
            on_slow()
        while closer.is_alive() and not aborted():
            closer.join(0.05)
        if self.executor is not None:
            self.executor.close()  # kills the sandboxes and removes their folders, whatever is still running
        if self._writer is not None and not closer.is_alive():
            self._writer.close()  # commits what the last trajectories queued
        if self.store is not None and not closer.is_alive():
            self.store.close()
        self.engine = self.driver = self._finisher = self.executor = self.store = self._writer = None


__all__ = [
    "Evaluation",
    "RunConfig",
    "StartupError",
    "check_engine_args",
    "parse_engine_args",
    "sandbox_limit_rule",
    "server_urls",
]
