"""The run's files: trajectories.jsonl, manifest.json, summaries, and the baseline gate.

`Reporter` runs in one process only (the controller under pytest-xdist) and is fed by
`pytest_runtest_logreport`, which sees every test of every worker: lines never interleave, and each is on
disk (written at once; fsync'd every FSYNC_SECONDS and at the end) as soon as its test has finished.

Before any test runs, the report folder is created and locked (`.tir-harness.lock`, an fcntl lock held until
the run ends: a second run into the same folder is refused instead of interleaving its lines) and the
baseline is read, so that a bad folder or baseline is one line and exit 4 before anything is generated.  A
write that fails later (a full disk) stops the run with one line; the lines already written stay whole.
Under pytest-xdist this happens when the session starts, so that the workers store under the final run id.

The result store is the source of truth for what finished: at the end the records this run stored but no test
reported (trajectories in flight when the run was interrupted, or on a worker that crashed) are added from it,
so that an interrupted run's report holds what the store holds of it (docs/reports.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from tir_harness.plugin.manifest import run_manifest
from tir_harness.plugin.options import HarnessOptions
from tir_harness.util.files import write_atomic
from tir_harness.util.text import sanitize

LOCK_FILE = ".tir-harness.lock"

RECORDS_PROPERTY = "tir_records"
FSYNC_SECONDS = 0.5  # trajectories.jsonl is fsync'd at most this often while tests report, and at the end
ENGINE_PROPERTY = "tir_engine"
PROGRESS_SECONDS = 10.0  # the progress line's cadence while tests report


def default_run_id(model: str | None, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = (model or "run").rstrip("/").replace("/", "--").replace(os.sep, "--")
    return f"{Path(name).name}-{stamp}"


class Reporter:
    def __init__(
        self,
        config: pytest.Config,
        options: HarnessOptions,
        run_dir: Path,
        aborted: Callable[[], bool] = lambda: False,
        renamed: Callable[[str], None] = lambda run_id: None,
        store_path: Callable[[], Path] | None = None,
        deferred: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
        held: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.config = config
        self._store_path = store_path  # the result store, the source of truth for what finished
        self._deferred = deferred  # a block a signal must not cut in two
        self._held = held  # how many of the run's trajectories the store held before it (None: not known here)
        self._renamed = renamed  # told the run id when the default folder's name was taken
        self._aborted = aborted  # stopped at once by a second signal: no time for plots
        self.options = options
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.records: list[dict[str, Any]] = []
        self.manifest: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.comparison: Any = None
        self.gate_result: Any = None
        self._file: BinaryIO | None = None  # unbuffered: a failed write leaves nothing behind to flush later
        self._synced = 0.0  # time.monotonic() of the last fsync of trajectories.jsonl
        self._problems_done = 0
        self._problems_correct = 0
        self._problems_total: int | None = None  # unknown on an xdist controller, which collects nothing itself
        self._generated = 0  # trajectories generated (not taken from the store) by reported tests
        self._first_report: tuple[float, int, int] | None = None  # (time, problems, generated) at the first report
        self._last_live: float | None = None
        self.clock: Callable[[], float] = time.monotonic  # a test's own clock drives the progress line
        self._lock: int | None = None
        self._baseline: list[dict[str, Any]] | None = None
        self._session: pytest.Session | None = None
        self.write_error: str | None = None  # the first failed write; nothing is written after it
        self.summary_error: str | None = None
        self._stored_before: set[str] | None = None  # keys the store held under this run id before the run
        self.from_store = 0  # records taken from the store that no test reported
        self.store_error: str | None = None

    # -- before the run --------------------------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._session = session
        # Only a run that will solve problems has a report (not a unit-test session in a repo using the plugin).
        solving_items = [i for i in session.items if {"problem", "solve"} & set(getattr(i, "fixturenames", ()))]
        solving = bool(solving_items)
        self._problems_total = len(solving_items) or None
        if solving and not self.config.option.collectonly:
            self.prepare()

    def prepare(self) -> None:
        """Create and lock the report folder and read the baseline; a problem is one line, exit 4."""
        if self._lock is not None:
            return
        if not self.options.report_dir:
            # The default folder is named after the second the run started: two runs started in the same
            # second each get their own (-2, -3, ...) rather than one refusing the other.
            base, n = self.run_dir, 1
            while (self.run_dir / LOCK_FILE).exists() and n < 100:
                n += 1
                self.run_dir = base.with_name(f"{base.name}-{n}")
            self.run_id = self.run_dir.name
            self._renamed(self.run_id)
        where = f"--report-dir {self.run_dir}" if self.options.report_dir else f"report folder {self.run_dir}"
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise pytest.UsageError(f"tir-harness: {where}: exists and is not a folder")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise pytest.UsageError(f"tir-harness: {where}: cannot write there ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                by = f" (pid {holder})" if holder.isdigit() else ""
                raise pytest.UsageError(f"tir-harness: {where}: in use by another run{by}") from None
            raise pytest.UsageError(f"tir-harness: {where}: cannot lock it ({exc.strerror})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise pytest.UsageError(f"tir-harness: {where}: cannot write there ({exc.strerror})") from None
        self._lock = fd
        self._baseline = self._baseline_records()
        self._stored_before = self._stored_keys()
        # Imported now, not at the end: a run stopped at once by a second signal has no second to spare for it.
        import tir_harness.analysis.report  # noqa: F401

    def pytest_unconfigure(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            os.close(self._lock)  # releases the lock; the file stays, so no second run can race on a new one
            self._lock = None

    # -- during the run --------------------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        if self._file is None:
            self.prepare()
            # One run per folder: a rerun into the same --report-dir rewrites it whole (the store resumes it).
            self._file = open(self.run_dir / "trajectories.jsonl", "wb", buffering=0)
            self.manifest = run_manifest(self.options, self.run_id)
            self._write_manifest()
        return self._file

    def _write_failed(self, exc: OSError, path: Path) -> None:
        if self.write_error is None:
            self.write_error = f"tir-harness: cannot write {path} ({exc.strerror or exc}); stopping the run"
        if self._session is not None:
            self._session.shouldstop = self.write_error

    def _write_manifest(self) -> None:
        write_atomic(self.run_dir / "manifest.json", json.dumps(self.manifest, indent=2, default=str) + "\n")

    # Before junitxml: the records are for us, not for the XML (the readable properties stay).  Every phase's
    # report carries a copy of the test's properties; the records are taken from the call phase only.
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        taken = {name: value for name, value in report.user_properties if name in (RECORDS_PROPERTY, ENGINE_PROPERTY)}
        if not taken:
            return
        report.user_properties = [p for p in report.user_properties if p[0] not in taken]
        if report.when != "call" or self.write_error is not None:
            return
        path = self.run_dir / "trajectories.jsonl"
        try:
            handle = self._open()
            if ENGINE_PROPERTY in taken:
                info = json.loads(taken[ENGINE_PROPERTY])
                # The sampling settings the run chose, each with its source (option, generation_config, default).
                self.manifest["sampling"] = info.pop("sampling", None)
                self.manifest["engine"] = info
                self._write_manifest()
        except OSError as exc:
            return self._write_failed(exc, path)
        if RECORDS_PROPERTY not in taken:
            return
        records = json.loads(taken[RECORDS_PROPERTY])
        with self._deferred():  # a signal now would cut a line in two, or leave it written but not counted
            self._write(handle, records)
            self._problems_done += 1
            self._problems_correct += report.passed
            self._generated += sum(1 for r in records if not r.get("cached"))
        self._live_line()

    def _write(self, handle: BinaryIO, records: list[dict[str, Any]]) -> None:
        """Append `records` to trajectories.jsonl with one write, and to the run's records."""
        path = self.run_dir / "trajectories.jsonl"
        # Sanitised as a whole line: a lone surrogate becomes its JSON escape again, so the text round-trips.
        text = "".join(sanitize(json.dumps({**r, "run_id": self.run_id}, ensure_ascii=False)) + "\n" for r in records)
        data = text.encode("utf-8")
        end = handle.tell()
        try:
            written = 0
            while written < len(data):  # an unbuffered write may take only part
                written += handle.write(data[written:]) or 0
            # The line is in the kernel once written (a kill -9 cannot lose it); fsync'd for power loss at most
            # every FSYNC_SECONDS, as one fsync costs more than a fast trajectory.  The store holds the record
            # durably before its test reports, and a rerun rewrites this file from there (docs/store.md).
            now = time.monotonic()
            if now - self._synced >= FSYNC_SECONDS:
                os.fsync(handle.fileno())
                self._synced = now
        except OSError as exc:
            # Cut back to the last whole line (truncating needs no space): every line before stays intact.
            try:
                os.ftruncate(handle.fileno(), end)
                handle.seek(end)
            except OSError:
                pass
            self._write_failed(exc, path)
        # Counted even when its line could not be written: the terminal summary then still matches pytest's count.
        for record in records:
            record["run_id"] = self.run_id
        self.records.extend(records)

    # -- the store, the source of truth ----------------------------------------------------------------------

    def _stored(self) -> Iterable[dict[str, Any]] | None:
        """The store's records of this run id; None when there is no store yet."""
        from tir_harness.records.store import ResultStore, store_file

        if self._store_path is None or not store_file(self._store_path()).is_file():
            return None
        with ResultStore(self._store_path(), create=False) as store:
            return list(store.records(run_id=self.run_id))

    def _stored_keys(self) -> set[str] | None:
        from tir_harness.records.store import StoreError

        try:
            return {str(r.get("key")) for r in self._stored() or ()}
        except (StoreError, OSError):
            return None  # a store that cannot be read now: the workers will say so, and nothing is reconciled

    def _reconcile(self) -> None:
        """Add the records this run stored but no test reported: trajectories that finished after the run was
        interrupted (the first signal lets the ones in flight finish), or on a worker that crashed before their
        tests reported.  They name their test (`test_id`) but have no pytest outcome."""
        from tir_harness.records.store import StoreError

        if self._stored_before is None or self.write_error is not None:
            return
        known = self._stored_before | {str(r.get("key")) for r in self.records}  # stored earlier, or reported
        try:
            stored = self._stored() or []
        except (StoreError, OSError) as exc:
            self.store_error = f"tir-harness: the report could not be checked against the result store ({exc})"
            return
        missing = [r for r in stored if str(r.get("key")) not in known]
        if not missing:
            return
        try:
            handle = self._open()
        except OSError as exc:
            return self._write_failed(exc, self.run_dir / "trajectories.jsonl")
        self._write(handle, missing)
        self.from_store = len(missing)

    def _live_line(self) -> None:
        # The first problem, then every PROGRESS_SECONDS at most: steady on long runs, whatever their size.
        now = self.clock()
        if self._first_report is None:
            self._first_report = (now, self._problems_done, self._generated)
        elif self._last_live is not None and now - self._last_live < PROGRESS_SECONDS:
            return
        first_line = self._last_live is None
        self._last_live = now
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None or self.config.option.verbose < 0:
            return
        from tir_harness.analysis.render import live_line

        # Rates from the first report on: the engine's start is not generation time.
        since, problems_then, generated_then = self._first_report
        elapsed = now - since
        per_second = seconds_left = None
        if elapsed > 0 and self._problems_done > problems_then:
            per_second = (self._generated - generated_then) / elapsed
            if self._problems_total:
                left = max(self._problems_total - self._problems_done, 0)
                seconds_left = left * elapsed / (self._problems_done - problems_then)
        line = live_line(
            self._problems_done, self._problems_correct, self._problems_total,
            per_second=per_second, seconds_left=seconds_left,
        )  # fmt: skip
        held = self._held() if first_line else None
        if held:
            line += f"; the store held {held:,} trajectories (not generated again)"
        terminal.ensure_newline()
        terminal.write_line(line)

    # Last: after the runner has let the trajectories in flight finish into the store.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._reconcile()
        if self._file is None:
            return
        try:
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError:
            pass  # its lines were written one test at a time, and the store has every record
        self._file = None
        self.manifest["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        self.manifest["problems"] = self._problems_done
        if self.from_store:
            self.manifest["from_store"] = self.from_store  # trajectories whose tests did not report
        self.manifest["interrupted"] = exitstatus == pytest.ExitCode.INTERRUPTED or self._aborted()
        if self.write_error:
            self.manifest["stopped"] = self.write_error
        from tir_harness.analysis.report import write_summary

        baseline = self._baseline
        if baseline is not None:
            from tir_harness.analysis.compare import GateResult, compare, gate

            self.comparison = compare(self.records, baseline)
            if self.options.gate:
                if self.comparison.n == 0:
                    self.gate_result = GateResult(False, "no problem of this run is in the baseline")
                else:
                    self.gate_result = gate(self.comparison, self.options.max_drop, self.options.alpha)
                # The gate decides the job, not individual problems: a real, significant drop fails it.
                session.exitstatus = 0 if self.gate_result.passed else 1
        # After the gate: report.html shows the verdict that decides the job.
        try:
            self._write_manifest()
            self.summary = write_summary(
                self.run_dir,
                self.records,
                baseline=baseline,
                plots=not self._aborted(),
                html=not self._aborted(),
                gate_result=self.gate_result,
            )
        except OSError as exc:
            self.summary_error = f"tir-harness: the summary could not be written to {self.run_dir} ({exc.strerror})"
            from tir_harness.analysis.summary import summarize

            self.summary = summarize(self.records)  # still shown on the terminal

    def _baseline_records(self) -> list[dict[str, Any]] | None:
        if not self.options.baseline:
            return None
        from tir_harness.records.load import ReportError, load_records

        try:
            return load_records(self.options.baseline)
        except (ReportError, OSError) as exc:
            raise pytest.UsageError(f"tir-harness: --baseline {self.options.baseline}: {exc}") from None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for error in (self.write_error, self.summary_error, self.store_error):
            if error:
                terminalreporter.write_line(error, red=True, bold=True)
        if self.from_store:
            terminalreporter.write_line(
                f"tir-harness: {self.from_store} trajectories finished without their test reporting (interrupted, or "
                "a worker crashed): in the report from the result store"
            )
        if self.summary is None:
            return
        from tir_harness.analysis.render import format_terminal

        terminalreporter.write_sep("=", "tir-harness summary")
        for line in format_terminal(self.summary):
            terminalreporter.write_line(line)
        if self.comparison is not None:
            from tir_harness.analysis.render import format_comparison

            terminalreporter.write_sep("-", f"compared with {self.options.baseline}")
            for line in format_comparison(self.comparison):
                terminalreporter.write_line(line)
        if self.gate_result is not None:
            verdict = "PASSED" if self.gate_result.passed else "FAILED"
            terminalreporter.write_line(f"gate {verdict}: {self.gate_result.reason}", bold=True)
        terminalreporter.write_line(f"reports: {self.run_dir}")
