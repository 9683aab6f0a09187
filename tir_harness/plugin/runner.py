"""Feeds this process's run from pytest: the whole run, or one pytest-xdist worker's share.

The run itself (engine, prompt format, sandbox, store keys, seeds, scheduling) is the run layer's `Evaluation`
(run/evaluation.py); the runner only translates.  Options become its `RunConfig`; once collection is final
(after -k, -m, --lf and every other filter) the selected problems are its plan; at the start of the test loop
it starts (the engine and the executor once, what the result store holds taken from it, everything else
submitted at once); each test then waits only for its own problem's records, which the runner publishes on the
test's report.  An xdist worker's share comes from the controller
(`workerinput`, plugin/xdist.py), and so do its signals: the first ends its test loop after the test in
progress, the second stops it at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from tir_harness.plugin.guard import Interrupts
from tir_harness.plugin.options import HarnessOptions
from tir_harness.plugin.reporter import ENGINE_PROPERTY, RECORDS_PROPERTY
from tir_harness.plugin.xdist import INTERRUPTED, SIGNALS_KEY, worker_input
from tir_harness.records.trajectory import END_ERROR
from tir_harness.run.evaluation import Evaluation, RunConfig, StartupError, check_engine_args
from tir_harness.run.problems import Problem
from tir_harness.run.results import Result

PROBLEM_FIXTURE = "problem"


@dataclass(frozen=True)
class Unavailable:
    """Stands in for the problems of a dataset that could not be found; selecting it stops the run."""

    message: str


def problem_param(item: pytest.Item) -> object:
    """What an item's `problem` parameter holds (a Problem, or a stand-in), None for an item without one."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PROBLEM_FIXTURE) if callspec is not None else None


def run_config(options: HarnessOptions) -> RunConfig:
    """The run the options describe: each option of a `RunConfig` field's name (the store's folder, which needs
    pytest's cache, is added when the run starts)."""
    return RunConfig(**{f.name: getattr(options, f.name) for f in fields(RunConfig) if f.name != "store_dir"})


class Runner:
    """This process's `Evaluation`, fed from pytest: options in, collected problems in, records out as reports."""

    def __init__(self, config: pytest.Config, options: HarnessOptions, run_id: str) -> None:
        self.config = config
        self.options = options
        self.run_id = run_id
        self._startup_error: str | None = None
        self._reported_info = False
        self._test_ids: dict[str, str] = {}
        self._work: list[Problem] = []
        worker = worker_input(config)
        if worker is not None and worker.get(SIGNALS_KEY):
            # The xdist controller passes its signals on (plugin/xdist.py); those it sent before now come here.
            self.interrupts = Interrupts("worker")
            self.interrupts.on_stop = self._interrupted
            self.interrupts.install()
        else:
            self.interrupts = Interrupts()
        self.session: pytest.Session | None = None
        self._evaluation: Evaluation | None = None
        self.run_config = run_config(options)
        try:
            check_engine_args(self.run_config)  # what can be checked before the run starts, at once
        except StartupError as exc:
            raise pytest.UsageError(str(exc)) from None

    @property
    def evaluation(self) -> Evaluation:
        """The run (made when the test loop starts: the run id is final by then)."""
        if self._evaluation is None:
            hook = self.config.hook.pytest_tir_make_engine
            self._evaluation = Evaluation(
                dataclasses.replace(self.run_config, store_dir=self.store_path()),
                self.run_id,
                make_engine=lambda: hook(config=self.config, model=self.options.model),
                on_warning=self._warn,
                on_stop=self.stop,
                halted=lambda: self.interrupts.stopping.is_set() and self.interrupts.role == "worker",
            )
            self._evaluation.plan(self._work, self._test_ids)
        return self._evaluation

    @property
    def stop_reason(self) -> str | None:
        return self._evaluation.stop_reason if self._evaluation is not None else None

    # -- hooks ---------------------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = session.items
        worker = worker_input(self.config)
        if worker is not None:
            # Our xdist scheduler tells each worker its share (plugin/xdist.py); under another --dist mode a worker
            # learns its problems one test at a time.
            from tir_harness.plugin.xdist import SHARE_KEY, share_items

            seat = worker.get(SHARE_KEY)
            items = [items[i] for i in share_items(seat, len(items))] if seat is not None else []
        for item in session.items:
            missing = problem_param(item)
            if isinstance(missing, Unavailable):
                raise pytest.UsageError(missing.message)
        self.session = session
        seen: dict[str, tuple[Problem, str]] = {}
        for item in items:
            problem = problem_param(item)
            if not isinstance(problem, Problem):
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
            self._work.append(problem)
        if self.interrupts.stopping.is_set():
            self._interrupted()  # a signal passed on while this worker was collecting

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.interrupts.stopping.is_set() and self.interrupts.role == "worker":
            return True  # told to stop before its first test: no test runs, no engine starts
        if not self._work or self.config.option.collectonly:
            return None
        worker = worker_input(self.config)
        if worker is None:  # pytest-xdist's workers take their signals from the controller
            self.interrupts.install()
        try:
            self.start()
        except StartupError as exc:
            if worker is not None:
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
        if self.evaluation.started:
            return
        worker = worker_input(self.config)
        if self.options.gpu_per_worker and worker is not None:
            from tir_harness.plugin.xdist import worker_slot

            os.environ["CUDA_VISIBLE_DEVICES"] = str(worker_slot(worker))
        self.evaluation.start()

    def _warn(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.ensure_newline()
            terminal.write_line(f"tir-harness: {message}", yellow=True)

    def store_path(self) -> Path:
        """Where the run's result store is (--store-dir, TIR_STORE_DIR, or pytest's cache)."""
        from tir_harness.records.store import resolve_store_path

        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        cache_dir = (
            cache.mkdir("tir-harness") if cache else self.config.rootpath / ".pytest_cache" / "d" / "tir-harness"
        )
        return resolve_store_path(self.options.store_dir, cache_dir)

    def stop(self, reason: str) -> None:
        """End the run after the test in progress (a fault that makes going on pointless), saying why."""
        if self.session is not None:
            self.session.shouldstop = reason

    def solve(self, problem: Problem, item: pytest.Item) -> Result:
        """Wait for a problem's samples; publish them on the test report for the controller's reporter."""
        if self._startup_error:
            pytest.fail(self._startup_error, pytrace=False)
        evaluation = self.evaluation
        if not evaluation.started:
            evaluation.plan([problem])
            try:
                self.start()
            except StartupError as exc:
                pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        records = []
        for sample in range(self.options.samples):
            future = evaluation.future(problem, sample)
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
            props.append((ENGINE_PROPERTY, json.dumps(evaluation.engine_info)))
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
        if self._evaluation is None:
            return

        def slow() -> None:
            if self.interrupts.count:
                self._warn("interrupted: finishing the trajectories in flight (interrupt again to stop at once)")

        self._evaluation.close(cancel, aborted=self.interrupts.abort.is_set, on_slow=slow)
