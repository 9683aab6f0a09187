"""`pytest benchmarks/` against a real vLLM OpenAI server on 127.0.0.1 (Gemma 3 270M on the CPU): the session's
shared one (tests/shared_server.py).  A server that dies mid-run: tests/test_real_dp.py, whose server is stopped."""

from __future__ import annotations

import http.client
import json
from typing import Any

from junitparser.xunit2 import JUnitXml  # the flavour whose test cases carry properties

from tests import realrun
from tests.test_engine_openai import failure, request, result
from tir_harness.engines.openai import OpenAIEngine

THREE = "0000 or 0001 or 0002"
SIX = " or ".join(f"00{n:02d}" for n in range(30, 36))
WAIT = 30.0  # seconds; a bound against hanging, never a synchronization


def _get(url: str, path: str) -> Any:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    connection.request("GET", path)
    data = json.loads(connection.getresponse().read())
    connection.close()
    return data


def _tokens(url: str, prompt: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    body = json.dumps({"model": "gemma-3-270m", "prompt": prompt, "add_special_tokens": False})
    connection.request("POST", "/tokenize", body, {"Content-Type": "application/json"})
    count = json.loads(connection.getresponse().read())["count"]
    connection.close()
    return int(count)


def _args(url: str, *extra: str) -> list[str]:
    return ["benchmarks/test_gsm8k.py", "--model=gemma-3-270m", f"--server-url={url}", "--max-tokens=128", *extra]


def test_a_real_vllm_server_serves_a_completion(vllm_server):
    # Here, not in test_engine_openai.py (which runs early): the shared server has started meanwhile.  Its
    # lifecycle (the process and its temporary files gone after stop) is checked by the dies-mid-run test below.
    with OpenAIEngine([vllm_server.url]) as engine:
        assert engine.check() == []
        prompt = "<bos>Question: What is 2+3?\nAnswer:"
        completion = result(engine.submit(request(prompt, max_tokens=16, stop=("\n",))))
        # The prompt already has <bos>: the server must not add a second one.
        assert completion.prompt_tokens == _tokens(vllm_server.url, prompt)
        assert completion.completion_tokens > 0 and "\n" not in completion.text
        assert completion.finish_reason in ("stop", "length")
        if completion.finish_reason == "stop":
            assert completion.stop_reason == "\n"
        # serve asks vLLM for prompt token details; without a prefix cache (the shared server has none) it
        # reports 0 cached tokens, not none.
        assert completion.cached_tokens == 0
        too_long = failure(engine.submit(request("<bos>" + "one two " * 1500, max_tokens=8)))
        assert too_long.startswith(f"{vllm_server.url}: HTTP 400: ") and "maximum context length" in too_long
        info = engine.info()
        version = _get(vllm_server.url, "/version")["version"]
        assert info["model"] == "gemma-3-270m" and info["server_version"] == version


def test_a_run_against_the_server_leaves_jsonl_and_junit(vllm_server, tmp_path):
    junit = tmp_path / "junit.xml"
    result = realrun.run(
        _args(vllm_server.url, "-k", THREE, f"--report-dir={tmp_path / 'run'}", f"--junitxml={junit}",
              f"--store-dir={tmp_path / 'store'}"),
        tmp_path,
    )  # fmt: skip
    records = realrun.records(tmp_path / "run" / "trajectories.jsonl")
    assert len(records) == 3, result.stdout[-3000:]
    assert result.returncode == (0 if all(r["correct"] for r in records) else 1)
    assert sum(t["code"] is not None for r in records for t in r["turns"]) >= 2
    for record in records:
        assert record["end_reason"] != "error" and all(t["completion_tokens"] > 0 for t in record["turns"])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "openai" and vllm_server.url in json.dumps(manifest["engine"])
    assert len([case for suite in JUnitXml.fromfile(str(junit)) for case in suite]) == 3


def test_two_xdist_workers_write_the_same_report_as_one_process(vllm_server, tmp_path):
    url = vllm_server.url
    double = realrun.run(
        _args(url, "-k", SIX, "-n", "2", f"--report-dir={tmp_path / 'two'}", f"--store-dir={tmp_path / 'store'}"),
        tmp_path,
    )  # fmt: skip
    # One process over the same store: it finds every trajectory the workers stored under the key it computes
    # itself (nothing generated again, so the comparison holds whatever the server's batching did to the
    # floating point), and reports them as the two workers did.
    single = realrun.run(
        _args(url, "-k", SIX, f"--report-dir={tmp_path / 'one'}", f"--store-dir={tmp_path / 'store'}"),
        tmp_path,
    )  # fmt: skip
    one = realrun.records(tmp_path / "one" / "trajectories.jsonl")
    two = realrun.records(tmp_path / "two" / "trajectories.jsonl")
    assert len(two) == 6, double.stdout[-3000:]
    assert len(one) == 6 and all(r["cached"] for r in one), single.stdout[-3000:]
    assert not any(r["cached"] for r in two) and all(r["end_reason"] != "error" for r in two)
    assert "2 workers" in double.stdout
    assert single.returncode == double.returncode
    assert {r["problem_id"]: realrun.stable(r) for r in two} == {r["problem_id"]: realrun.stable(r) for r in one}
    assert "tir-harness summary" in double.stdout
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two")]
    assert summaries[0]["accuracy"] == summaries[1]["accuracy"]


