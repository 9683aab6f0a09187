"""docs/extending.md's worked examples, run as written from outside the package.

"Add an engine": the page's engine file is imported by a test project's conftest.py (as the page says), a
scripted HTTP server stands in for llama.cpp's /completion endpoint, and a benchmark runs through it in a real
pytest process, with the real sandbox and store.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
WAIT = 300  # seconds for a pytest process on a loaded machine


def _section_blocks(title: str, language: str) -> list[str]:
    text = DOC.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


class _LlamaCpp(BaseHTTPRequestHandler):
    """/completion as llama.cpp answers it: first a code block (cut at the stop string), then, once the prompt
    holds the code's output, the boxed answer."""

    bodies: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if "OBSERVED 42" in body["prompt"]:
            reply = {"content": " The answer is \\boxed{42}.", "stop_type": "eos", "stopping_word": ""}
        else:
            reply = {"content": '```python\nprint("OBSERVED", 6 * 7)\n```\n', "stop_type": "word",
                     "stopping_word": "```output"}  # fmt: skip
        data = json.dumps({**reply, "tokens_evaluated": 10, "tokens_predicted": 5}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def llamacpp() -> Iterator[str]:
    _LlamaCpp.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LlamaCpp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=WAIT)


BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def _project(tmp_path: Path) -> Path:
    engine_file, conftest = _section_blocks("Add an engine", "python")[:2]
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_llamacpp.py").write_text(engine_file)
    (project / "conftest.py").write_text(conftest)
    (project / "test_bench.py").write_text(BENCH)
    (project / "problems.jsonl").write_text(json.dumps({"id": "q1", "question": "What is 6 * 7?", "answer": "42"}))
    return project


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist",
               "--model=org/name", "--prompt-format=plain", f"--store-dir={project / 'store'}", *args]  # fmt: skip
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=WAIT)


def test_an_engine_registered_from_a_conftest_runs_a_problem_end_to_end(tmp_path: Path, llamacpp: str) -> None:
    project = _project(tmp_path)
    run_dir = tmp_path / "run"
    done = _pytest(project, "--engine=llamacpp", f"--engine-arg=url={llamacpp}", "--engine-arg", '{"slots": 3}',
                   f"--report-dir={run_dir}")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (record,) = [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    assert record["correct"] and record["prediction"] == "42"
    assert record["turns"][0]["observation"].strip() == "OBSERVED 42"  # the code ran in the sandbox
    assert record["turns"][0]["stop_reason"] == "```output"
    assert [b["n_predict"] for b in _LlamaCpp.bodies] == [1024, 1024]  # the run's sampling reached the server
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "llamacpp" and manifest["engine"]["slots"] == 3
    assert manifest["engine"]["max_inflight"] == 4  # capacity() 3, plus 25%
    assert manifest["engine"]["engine_args"] == {"url": llamacpp, "slots": 3}
    assert manifest["options"]["engine"] == "llamacpp"


def test_an_engine_and_its_arguments_from_the_ini_reach_the_engine(tmp_path: Path, llamacpp: str) -> None:
    project = _project(tmp_path)
    run_dir = tmp_path / "run"
    args = json.dumps({"url": llamacpp, "slots": 3})
    done = _pytest(project, "-o", "tir_engine=llamacpp", "-o", f"tir_engine_arg={args}", f"--report-dir={run_dir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "llamacpp" and manifest["engine"]["slots"] == 3
    assert manifest["engine"]["engine_args"] == {"url": llamacpp, "slots": 3}


def test_an_unknown_engine_or_engine_arg_is_one_line_before_anything_runs(tmp_path: Path, llamacpp: str) -> None:
    project = _project(tmp_path)
    done = _pytest(project, "--engine=llamacpp", "--engine-arg=slot=8")
    assert done.returncode == 4, done.stdout[-3000:]
    assert "ERROR: tir-harness: --engine-arg slot: not an argument of the llamacpp engine; did you mean slots?" in (
        done.stderr
    )
    assert "Traceback" not in done.stdout + done.stderr and _LlamaCpp.bodies == []
    done = _pytest(project, "--engine=llamacp")
    assert done.returncode == 4
    assert "ERROR: --engine: unknown engine 'llamacp'; known: llamacpp, openai, vllm" in done.stderr
