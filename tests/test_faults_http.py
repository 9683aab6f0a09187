"""Engine faults through the whole plugin, with fake OpenAI servers on 127.0.0.1: what the server said reaches the
test's failure line, and a dead server is announced once."""

from __future__ import annotations

import json
import socket

import pytest

from tests.test_engine_openai import FakeOpenAI, Reply

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_mine(problem, solve):
    assert solve(problem).answer == problem.answer
"""

HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>"


def respond(body: dict) -> Reply:
    prompt = body["prompt"]
    if "LONG" in prompt:
        return Reply(status=400, message="This model's maximum context length is 2048 tokens")
    if "NULL" in prompt:
        return Reply(raw=b'{"choices": [{"text": null}]}')
    if "HTML" in prompt:
        return Reply(raw=HTML, content_type="text/html")
    if "POISON" in prompt:  # a request this server resets every time, healthy as it is otherwise
        return Reply(drop=True)
    return Reply(text="It is \\boxed{42}.")


@pytest.fixture
def server():
    fake = FakeOpenAI(respond=respond)
    yield fake
    fake.die()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_what_the_server_said_is_the_tests_failure_line(pytester, server, tmp_path):
    pytester.makepyfile(test_bench=BENCH)
    rows = [{"id": n, "question": f"{n.upper()}: 6*7?", "answer": "42"} for n in ("ok", "long", "null", "html")]
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dead = f"http://127.0.0.1:{closed_port()}"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--server-url={dead},{server.url}", "--prompt-format=plain",
        f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}", "--server-retries=1",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=3)
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    for name, said in [
        ("long", "HTTP 400: This model's maximum context length is 2048 tokens"),
        ("null", "unreadable response: choices[0].text is null, not a string"),
        ("html", "unreadable response: an HTML page (502 Bad Gateway)"),
    ]:
        line = f"tir-harness: engine error: {server.url}: {said}"
        result.stdout.fnmatch_lines([f"_* test_mine[[]{name}[]] _*", line], consecutive=True)
    # The dead server of two is announced once, and the run goes on with the live one.
    assert text.count(f"--server-url {dead}: connection refused") == 1
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert len(records) == 4 and sum(r["end_reason"] == "error" for r in records) == 3
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["n"] == 4 and summary["accuracy"]["overall"]["correct"] == 1


def test_one_request_the_server_always_resets_fails_only_its_problem(pytester, server, tmp_path):
    pytester.makepyfile(test_bench=BENCH)
    rows = [{"id": "poison", "question": "POISON: 6*7?", "answer": "42"}]
    rows += [{"id": f"ok{i}", "question": f"OK {i}: 6*7?", "answer": "42"} for i in range(6)]
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--server-url={server.url}", "--prompt-format=plain",
        f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}", "--server-retries=1",
        "--max-inflight=1",  # one request at a time: the poisoned one's retries see no other success
    )  # fmt: skip
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines([
        "_* test_mine[[]poison[]] _*",
        f"tir-harness: engine error: {server.url}: the server closed the connection without answering",
    ], consecutive=True)  # fmt: skip
    assert "is down" not in result.stdout.str() and "all servers down" not in result.stdout.str()
