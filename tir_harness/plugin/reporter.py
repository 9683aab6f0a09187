"""The run's files: trajectories.jsonl, manifest.json, summaries, and the baseline gate.

`Reporter` runs in one process only (the controller under pytest-xdist) and is fed by
`pytest_runtest_logreport`, which sees every test of every worker: lines never interleave, and each is on
disk (flushed and fsync'd) as soon as its test has finished.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import IO, Any

import pytest

from tir_harness.plugin.manifest import run_manifest
from tir_harness.plugin.options import HarnessOptions
from tir_harness.util.files import write_atomic

RECORDS_PROPERTY = "tir_records"
ENGINE_PROPERTY = "tir_engine"


def default_run_id(model: str | None, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = (model or "run").rstrip("/").replace("/", "--").replace(os.sep, "--")
    return f"{Path(name).name}-{stamp}"


class Reporter:
    def __init__(self, config: pytest.Config, options: HarnessOptions, run_dir: Path) -> None:
        self.config = config
        self.options = options
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.records: list[dict[str, Any]] = []
        self.manifest: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.comparison: Any = None
        self.gate_result: Any = None
        self._file: IO[str] | None = None
        self._problems_done = 0
        self._problems_correct = 0
        self._next_live = 1

    def _open(self) -> IO[str]:
        if self._file is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # One run per folder: a rerun into the same --report-dir rewrites it whole (the store resumes it).
            self._file = open(self.run_dir / "trajectories.jsonl", "w", encoding="utf-8")
            self.manifest = run_manifest(self.options, self.run_id)
            self._write_manifest()
        return self._file

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
        if report.when != "call":
            return
        handle = self._open()
        if ENGINE_PROPERTY in taken:
            self.manifest["engine"] = json.loads(taken[ENGINE_PROPERTY])
            self._write_manifest()
        if RECORDS_PROPERTY not in taken:
            return
        records = json.loads(taken[RECORDS_PROPERTY])
        for record in records:
            record["run_id"] = self.run_id
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        self.records.extend(records)
        self._problems_done += 1
        self._problems_correct += report.passed
        self._live_line()

    def _live_line(self) -> None:
        # Every power of two, then every 100 problems: frequent early, quiet on long runs.
        if self._problems_done < self._next_live:
            return
        self._next_live = self._next_live * 2 if self._next_live < 100 else self._next_live + 100
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None or self.config.option.verbose < 0:
            return
        from tir_harness.analysis.render import live_line

        terminal.ensure_newline()
        terminal.write_line(live_line(self._problems_done, self._problems_correct, None))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._file is None:
            return
        self._file.close()
        self.manifest["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        self.manifest["problems"] = self._problems_done
        self.manifest["interrupted"] = exitstatus == pytest.ExitCode.INTERRUPTED
        self._write_manifest()
        from tir_harness.analysis.report import write_summary

        baseline = self._baseline_records()
        self.summary = write_summary(self.run_dir, self.records, baseline=baseline)
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

    def _baseline_records(self) -> list[dict[str, Any]] | None:
        if not self.options.baseline:
            return None
        from tir_harness.records.load import ReportError, load_records

        try:
            return load_records(self.options.baseline)
        except (ReportError, OSError) as exc:
            raise pytest.UsageError(f"--baseline {self.options.baseline}: {exc}") from None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
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
