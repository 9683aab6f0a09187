"""Solves the selected problems of this process: the whole run, or one pytest-xdist worker's share.

Once collection is final (after -k, -m, --lf and every other filter), the runner knows exactly which
problems its tests will ask for.  At the start of the test loop it starts the engine and the executor once,
takes what the result store already holds, and submits everything else to the scheduler at once; each test
then waits only for its own problem's trajectories.  An xdist worker's share comes from the controller
(`workerinput`, plugin/xdist.py), and so do its signals: the first ends its test loop after the test in
progress, the second stops it at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tir_harness.engines.base import Engine, EngineError, SamplingConfig
from tir_harness.engines.models import ModelError, ModelSpec, resolve_model
from tir_harness.plugin.guard import Interrupts, SafeEngine, safe_sessions
from tir_harness.plugin.options import HarnessOptions
from tir_harness.plugin.reporter import ENGINE_PROPERTY, RECORDS_PROPERTY
from tir_harness.plugin.xdist import INTERRUPTED, SIGNALS_KEY
from tir_harness.records.store import StoreError
from tir_harness.records.trajectory import END_ERROR, Trajectory
from tir_harness.records.verdict import regraded
from tir_harness.records.writer import GroupWriter
from tir_harness.run.loop import LOOP_VERSION, REFERENCE_OUTPUT_CHARS, LoopConfig, run_trajectory, sample_seed
from tir_harness.run.problems import Problem
from tir_harness.run.prompts import (
    FORMATS,
    PROMPT_TYPES,
    ChatTemplateFormat,
    PromptFormat,
    default_observation_style,
    default_prompt_type,
    format_for_model,
)
from tir_harness.run.results import Result, RunContext, make_record
from tir_harness.run.scheduler import Scheduler, automatic_max_inflight, engine_slots
from tir_harness.util.text import exception_line, sanitize

PROBLEM_FIXTURE = "problem"


@dataclass(frozen=True)
class Unavailable:
    """Stands in for the problems of a dataset that could not be found; selecting it stops the run."""

    message: str


class StartupError(Exception):
    """The run cannot start (model, engine, store); the message is one line for the user."""


class Runner:
    def __init__(self, config: pytest.Config, options: HarnessOptions, run_id: str) -> None:
        self.config = config
        self.options = options
        self.run_id = run_id
        self.work: list[Problem] = []
        self.engine: Engine | None = None
        self.executor: Any = None
        self.store: Any = None
        self._writer: GroupWriter | None = None
        self.scheduler: Scheduler | None = None
        self.context: RunContext | None = None
        self.engine_info: dict[str, Any] = {}
        self._model = ModelSpec(name="", path="")
        self._executor_config: Any = None
        self._loop: dict[int, LoopConfig] = {}
        self._futures: dict[tuple[str, int], Future[dict[str, Any]]] = {}
        self._test_ids: dict[str, str] = {}  # problem id -> the test that reports it (stored with its records)
        self._startup_error: str | None = None
        self._started = False
        self._reported_info = False
        worker = getattr(config, "workerinput", None)
        if worker is not None and worker.get(SIGNALS_KEY):
            # The xdist controller passes its signals on (plugin/xdist.py); those it sent before now come here.
            self.interrupts = Interrupts("worker")
            self.interrupts.on_stop = self._interrupted
            self.interrupts.install()
        else:
            self.interrupts = Interrupts()
        self.session: pytest.Session | None = None
        self.stop_reason: str | None = None  # set once a fault (a full store) must end the run

    # -- hooks ---------------------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = session.items
        worker = getattr(self.config, "workerinput", None)
        if worker is not None:
            # Our xdist scheduler tells each worker its share (plugin/xdist.py); under another --dist mode a worker
            # learns its problems one test at a time.
            from tir_harness.plugin.xdist import SHARE_KEY, share_items

            seat = worker.get(SHARE_KEY)
            items = [items[i] for i in share_items(seat, len(items))] if seat is not None else []
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            missing = callspec.params.get(PROBLEM_FIXTURE) if callspec is not None else None
            if isinstance(missing, Unavailable):
                raise pytest.UsageError(missing.message)
        self.session = session
        seen: dict[str, tuple[Problem, str]] = {}
        for item in items:
            problem = _problem_of(item)
            if problem is None:
                continue
            if problem.id in seen:
                # The same problem in two tests is shared; two different problems under one id would be merged.
                first, where = seen[problem.id]
                if first != problem:
                    raise pytest.UsageError(
                        f"tir-harness: problem id {problem.id} names two different problems ({where} and {item.nodeid})"
                    )
                continue
            seen[problem.id] = (problem, item.nodeid)
            self._test_ids[problem.id] = item.nodeid
            self.work.append(problem)
        if self.interrupts.stopping.is_set():
            self._interrupted()  # a signal passed on while this worker was collecting

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.interrupts.stopping.is_set() and self.interrupts.role == "worker":
            return True  # told to stop before its first test: no test runs, no engine starts
        if not self.work or self.config.option.collectonly:
            return None
        if not hasattr(self.config, "workerinput"):  # pytest-xdist's workers take their signals from the controller
            self.interrupts.install()
        try:
            self.start()
        except StartupError as exc:
            if hasattr(self.config, "workerinput"):
                self._startup_error = str(exc)  # each test fails with it: a worker cannot stop the session
            else:
                raise pytest.UsageError(str(exc)) from None
        if self.interrupts.stopping.is_set() and self.interrupts.role == "worker":
            return True  # the signal came while the engine started: nothing was submitted
        return None

    def _interrupted(self) -> None:
        """A worker's first signal (passed on by the controller): end the test loop after the test in progress;
        the trajectories in flight finish into the store when the session closes."""
        if self.session is not None:
            self.session.shouldstop = INTERRUPTED

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.close(cancel=True)
        self._exitstatus = int(session.exitstatus)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        self.interrupts.uninstall()
        if self.interrupts.abort.is_set():
            # Stopped at once on a second signal: everything finished is on disk and reported, but trajectory
            # threads may still wait on their engine, and Python would join them at exit.
            import sys

            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(getattr(self, "_exitstatus", int(pytest.ExitCode.INTERRUPTED)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Where Ctrl-C lands inside a lock wait, Python 3.11 can leave a traceback entry with no line number,
        # and pytest's own report of the interrupt then fails (exit 1 instead of 2). Such entries say
        # nothing to the user: unlink them before pytest renders the traceback.
        tb = excinfo.tb
        while tb is not None and tb.tb_next is not None:
            if tb.tb_next.tb_lineno is None:
                tb.tb_next = tb.tb_next.tb_next
            else:
                tb = tb.tb_next

    # -- the run -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        opts = self.options
        custom = self.config.hook.pytest_tir_make_engine(config=self.config, model=opts.model)
        if custom is None and not opts.model and not opts.server_urls:
            raise StartupError("tir-harness: no --model given (e.g. --model gemma-3-270m, or --server-url URL)")
        if opts.gpu_per_worker and hasattr(self.config, "workerinput"):
            from tir_harness.plugin.xdist import worker_slot

            os.environ["CUDA_VISIBLE_DEVICES"] = str(worker_slot(self.config.workerinput))
        self._model = ModelSpec(name=opts.model or "", path=opts.model or "") if custom else self._model_spec()
        self.store = self._open_store()  # before any engine: a bad store is found before generation
        self._writer = GroupWriter(self.store)
        self.engine = custom
        if self.engine is None and not opts.model:
            self.engine = self._start_engine(self._model)  # only the server knows the model's name
        model_name = opts.model or str(self.engine.info().get("model") or "server")  # type: ignore[union-attr]
        fmt = self._prompt_format(self._model, model_name)
        prompt_type = PROMPT_TYPES[opts.prompt_type or self._model.prompt_type or default_prompt_type(fmt.name)]
        from tir_harness.sandbox.executor import ExecutorConfig

        style = opts.exec_observations or default_observation_style(fmt.name, prompt_type.name)
        self._executor_config = ExecutorConfig(
            timeout=opts.exec_timeout,
            memory_mb=opts.exec_memory_mb,
            observation_style=style,
            # The reference does not cut observations: a generous cap instead of the default.
            max_output_chars=REFERENCE_OUTPUT_CHARS if style == "reference" else ExecutorConfig.max_output_chars,
        )
        sampling = SamplingConfig(
            temperature=opts.temperature, top_p=opts.top_p, max_tokens=opts.max_tokens, seed=opts.seed, stop=fmt.stop
        )
        base = LoopConfig(fmt, prompt_type, sampling, opts.max_tool_calls, opts.max_turn_chars)
        try:
            self._loop = {
                s: dataclasses.replace(base, sampling=dataclasses.replace(sampling, seed=sample_seed(opts.seed, s)))
                for s in range(opts.samples)
            }
        except ValueError as exc:
            raise StartupError(f"tir-harness: {exc}") from None
        self.context = RunContext(
            run_id=self.run_id,
            model=model_name,
            prompt_format=fmt.name,
            prompt_type=prompt_type.name,
            max_tool_calls=opts.max_tool_calls,
            executor=dataclasses.asdict(self._executor_config),
        )
        keys = {(p, s): self._key(p, s) for p in self.work for s in range(opts.samples)}
        try:
            stored = {} if opts.refresh else self.store.get_many(list(keys.values()))
        except StoreError as exc:  # a store damaged past its header is found by its first read
            raise StartupError(f"tir-harness: --store-dir {exc}") from None
        if len(stored) < len(keys):
            self.start_generation()  # a run the store already holds needs no engine at all
        if self.interrupts.stopping.is_set() and self.interrupts.role == "worker":
            return  # told to stop while the engine started
        for (problem, sample), key in keys.items():
            self._submit(problem, sample, key, stored.get(key))

    def start_generation(self) -> None:
        """Start the engine and the executor, once (a run that the store holds in full needs neither)."""
        if self.engine is None:
            self.engine = self._start_engine(self._model)
        try:
            if self.executor is None:
                from tir_harness.sandbox.executor import Executor

                self.executor = Executor(config=self._executor_config)
            isolation = self.executor.isolation  # waits for the sandbox to be ready
        except Exception as exc:
            raise StartupError(f"tir-harness: the sandbox cannot start: {exception_line(exc)}") from None
        if self.scheduler is None:
            inflight = self.options.max_inflight or automatic_max_inflight(
                engine_slots(self.engine), getattr(self._executor_config, "max_workers", None)
            )
            self.scheduler = Scheduler(inflight)
        self.engine_info = {
            **self.engine.info(),
            "model_identity": self._model.identity,
            "executor_isolation": isolation,
            "max_inflight": self.scheduler.max_inflight,  # the manifest records what --max-inflight came to
        }

    def _model_spec(self) -> ModelSpec:
        opts = self.options
        if opts.model is None:
            return ModelSpec(name="", path="")
        try:
            return resolve_model(opts.model, opts.revision)
        except ModelError as exc:
            raise StartupError(f"tir-harness: {exc}") from None

    def _start_engine(self, spec: ModelSpec) -> Engine:
        opts = self.options
        try:
            if opts.server_urls:
                from tir_harness.engines.openai import OpenAIEngine

                # --max-inflight bounds each server too; without it the engine follows the server's load.
                engine = OpenAIEngine(
                    list(opts.server_urls),
                    model=None,
                    max_inflight_per_server=opts.max_inflight,
                    request_timeout=opts.server_timeout,
                    connect_retries=opts.server_retries,
                    on_warning=self._warn,
                )
                engine.check()  # its warnings reach the terminal once, through on_warning
                return engine
            from tir_harness.engines.vllm import VLLMConfig, VLLMEngine

            return VLLMEngine(
                VLLMConfig(
                    model=spec.path,
                    revision=spec.revision,
                    dtype=opts.dtype,
                    max_model_len=opts.max_model_len,
                    tensor_parallel_size=opts.tensor_parallel_size,
                    gpu_memory_utilization=opts.gpu_memory_utilization,
                    kv_cache_memory_bytes=opts.kv_cache_memory,
                    enforce_eager=opts.enforce_eager,
                    seed=opts.seed,
                )
            )
        except EngineError as exc:
            prefix = "" if opts.server_urls else f"--model {opts.model}: "
            raise StartupError(f"tir-harness: {prefix}{exc}") from None
        except ImportError as exc:
            raise StartupError(f"tir-harness: the engine cannot be imported ({exc}); pip install -e '.[cpu]'") from None

    def _warn(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.ensure_newline()
            terminal.write_line(f"tir-harness: {message}", yellow=True)

    def _prompt_format(self, spec: ModelSpec, model_name: str) -> PromptFormat:
        name = self.options.prompt_format or spec.prompt_format or format_for_model(model_name)
        if name != "chat-template":
            return FORMATS[name]
        try:
            return ChatTemplateFormat.from_tokenizer(spec.path or model_name)
        except Exception as exc:
            raise StartupError(f"tir-harness: --prompt-format chat-template: {exc}") from None

    def store_path(self) -> Path:
        """Where the run's result store is (--store-dir, TIR_STORE_DIR, or pytest's cache)."""
        from tir_harness.records.store import resolve_store_path

        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        cache_dir = (
            cache.mkdir("tir-harness") if cache else self.config.rootpath / ".pytest_cache" / "d" / "tir-harness"
        )
        return resolve_store_path(self.options.store_dir, cache_dir)

    def _open_store(self) -> Any:
        from tir_harness.records.store import ResultStore

        path = self.store_path()
        try:
            return ResultStore(path)
        except StoreError as exc:
            raise StartupError(f"tir-harness: --store-dir {exc}") from None

    def _key(self, problem: Problem, sample: int) -> str:
        from tir_harness.records.store import KeyParts, trajectory_key

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
                executor=self.context.executor,
                loop_version=LOOP_VERSION,
            )
        )

    def _submit(self, problem: Problem, sample: int, key: str, cached: dict[str, Any] | None) -> Future[dict[str, Any]]:
        if cached is not None:
            # Stored trajectories are graded again: a better grader re-scores without regenerating.
            future: Future[dict[str, Any]] = Future()
            future.set_result({**regraded(cached, problem.dataset), "run_id": self.run_id, "cached": True})
        else:
            # Resolved once the record is durable in the store, not when the trajectory ends: a test never
            # reports a trajectory that a crash could still lose.
            future = Future()
            assert self.scheduler is not None  # start_generation made it
            self.scheduler.submit(lambda: self._run_one(future, problem, sample, key))
        self._futures[(problem.id, sample)] = future
        return future

    def _run_one(self, outer: Future[dict[str, Any]], problem: Problem, sample: int, key: str) -> None:
        try:
            record = self._solve_one(problem, sample, key)
        except BaseException as exc:
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
        """A full or broken store: the run stops after the test in progress, and the trajectory the store could
        not keep is no result (a test reports one only once it is durable).  Its test fails saying so, with an
        error record that, like an engine error's, is not stored: a rerun generates it again, and the results
        reported are exactly those in the store."""
        reason = f"cannot write the result store: {sanitize(exception_line(exc))}"
        self.stop(f"tir-harness: {reason}")
        assert self.context is not None
        error = f"internal error: {reason} (this trajectory was not kept; a rerun generates it again)"
        sampling = self._loop[sample].sampling.to_dict()
        return make_record(problem, sample, Trajectory("", end_reason=END_ERROR, error=error), self.context, key,
                           sampling)  # fmt: skip

    def _solve_one(self, problem: Problem, sample: int, key: str) -> dict[str, Any]:
        assert self.engine is not None and self.context is not None
        sampling = self._loop[sample].sampling.to_dict()
        try:
            trajectory = run_trajectory(
                problem.question,
                self._loop[sample],
                SafeEngine(self.engine),
                safe_sessions(self.executor.session),
                f"{problem.id}#s{sample}",
            )
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
        """End the run after the test in progress (a fault that makes going on pointless), saying why."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.session is not None:
            self.session.shouldstop = self.stop_reason

    def solve(self, problem: Problem, item: pytest.Item) -> Result:
        """Wait for a problem's samples; publish them on the test report for the controller's reporter."""
        if self._startup_error:
            pytest.fail(self._startup_error, pytrace=False)
        if not self._started:
            self.work.append(problem)
            try:
                self.start()
            except StartupError as exc:
                pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        records = []
        for sample in range(self.options.samples):
            future = self._futures.get((problem.id, sample))
            if future is None:  # a problem the collection did not announce (e.g. built inside the test)
                self.start_generation()
                key = self._key(problem, sample)
                future = self._submit(problem, sample, key, None if self.options.refresh else self.store.get(key))
            try:
                record = future.result()
            except KeyboardInterrupt:
                # Ctrl-C lands inside the lock wait, a frame pytest's traceback printer can fail on
                # (tb_lineno None on Python 3.11); re-raised here, the traceback starts at this line.
                raise KeyboardInterrupt from None
            records.append({**record, "test_id": item.nodeid})
        result = Result(problem, records)
        props = item.user_properties
        props.append((RECORDS_PROPERTY, json.dumps(records)))
        if not self._reported_info:
            self._reported_info = True
            props.append((ENGINE_PROPERTY, json.dumps(self.engine_info)))
        first = records[0]
        props += [
            ("prediction", str(result.answer.text)),
            ("gold", problem.answer),
            ("turns", str(len(first["turns"]))),
            ("tool_calls", str(first["tool_calls"])),
            ("end_reason", first["end_reason"]),
        ]
        failed = next((r for r in records if r["end_reason"] == END_ERROR), None)
        if failed is not None:
            # The records are published above; the test fails with what went wrong, not with "no answer".
            error = str(failed.get("error") or "unknown error")
            what = error if error.startswith("internal error") else f"engine error: {error}"
            pytest.fail(f"tir-harness: {what}", pytrace=False)
        return result

    def close(self, cancel: bool) -> None:
        self.interrupts.closing = True  # from now on a signal cuts the wait short instead of raising
        for future in self._futures.values():
            future.cancel()
        engine, scheduler = self.engine, self.scheduler

        def shut_down() -> None:
            # The engine first: requests in flight fail at once, so trajectory threads end instead of waiting.
            if engine is not None:
                engine.close()
            if scheduler is not None:
                scheduler.close(cancel=cancel)

        # In a thread of its own, so that a second Ctrl-C or SIGTERM ends the wait at once.
        closer = threading.Thread(target=shut_down, name="tir-harness-close", daemon=True)
        closer.start()
        quiet = time.monotonic() + 0.5  # a close that takes longer says why the run waits
        while closer.is_alive() and not self.interrupts.abort.is_set() and time.monotonic() < quiet:
            closer.join(0.05)
        if closer.is_alive() and self.interrupts.count and not self.interrupts.abort.is_set():
            self._warn("interrupted: finishing the trajectories in flight (interrupt again to stop at once)")
        while closer.is_alive() and not self.interrupts.abort.is_set():
            closer.join(0.05)
        if self.executor is not None:
            self.executor.close()  # kills the sandboxes and removes their folders, whatever is still running
        if self._writer is not None and not closer.is_alive():
            self._writer.close()  # commits what the last trajectories queued
        if self.store is not None and not closer.is_alive():
            self.store.close()  # left open after an abort: a thread may be inside a write, and SQLite is crash-safe
        self.engine = self.scheduler = self.executor = self.store = self._writer = None


def _settle(future: Future[Any], result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve `future` unless the run's close cancelled it meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def _problem_of(item: pytest.Item) -> Problem | None:
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(PROBLEM_FIXTURE) if callspec is not None else None
    return value if isinstance(value, Problem) else None
