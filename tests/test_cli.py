"""The `tir-harness` command itself: no command, help, a report folder for regrade, a reader that leaves early."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tir_harness.cli.main import COMMANDS, main
from tir_harness.grading import GRADER_VERSION

REPO = Path(__file__).resolve().parent.parent


def _flipping_records(path: Path, count: int) -> Path:
    # Each record was marked incorrect although prediction equals gold: regrade prints one line per record.
    rows = [
        {"problem_id": f"gsm8k/test/{i:04d}", "sample": 0, "prediction": str(i), "gold": str(i), "correct": False}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_no_command_prints_help_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: tir-harness COMMAND" in err and "prepare-model" in err


def test_help_is_on_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and all(name in out for name in COMMANDS)


# What the `tir-harness` console script runs.
COMMAND = [sys.executable, "-c", "import sys; from tir_harness.cli import main; sys.exit(main())"]


def test_the_installed_command_without_arguments_exits_2() -> None:
    run = subprocess.run(COMMAND, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == "" and "usage: tir-harness" in run.stderr


def test_regrade_takes_a_report_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "gemma-3-270m-20260101-000000"
    run.mkdir()
    _flipping_records(run / "trajectories.jsonl", 3)
    assert main(["regrade", str(run)]) == 0
    out = capsys.readouterr().out
    assert "gsm8k/test/0002 #0: incorrect -> correct" in out and "3 records re-graded" in out


def test_regrade_of_a_folder_without_a_report_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regrade", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run directory (no trajectories.jsonl in it)" in err


def test_regrade_into_a_reader_that_leaves_early_ends_quietly(tmp_path: Path) -> None:
    # `tir-harness regrade X.jsonl | head -1`: far more output than a pipe buffers, and the reader closes
    # after one line. The command must end with status 0 and print no traceback.
    source = _flipping_records(tmp_path / "run.jsonl", 3000)
    process = subprocess.Popen(
        [*COMMAND, "regrade", str(source)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    try:
        status = process.wait(timeout=120)
    finally:
        process.kill()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert first.startswith(b"gsm8k/test/0000 #0: incorrect -> correct")
    assert status == 0 and stderr == "", stderr[-2000:]


def test_every_subcommand_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if f"tir-harness {name}" not in readme]
    assert not missing, f"subcommands not documented in the README: {missing}"


def test_the_store_docs_show_real_values() -> None:
    # The example records of docs/store.md: the grader version that writes records today, and problem ids as
    # the loader makes them (zero-padded, from the train split that collection uses).
    docs = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    assert set(re.findall(r'"grader_version": "([^"]*)"', docs)) == {GRADER_VERSION}
    ids = re.findall(r'"problem_id": "([^"]*)"', docs)
    assert ids and all(re.fullmatch(r"gsm8k/train/\d{4}", i) for i in ids), ids
