"""A reasoning model's thinking and answer token counts: per turn, per record, in the summary and the report.

The loop and records are driven by the scripted engine (its tokens are words); the in-process vLLM engine's
counting function runs on the real Gemma 3 tokenizer.  Gemma's vocabulary has no `</think>` token, so there the
count is by decoded text; the same tokenizer with `</think>` added as a token checks the count by token id.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tir_harness.analysis.render import format_terminal
from tir_harness.analysis.summary import summarize
from tir_harness.engines.base import SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.engines.vllm import count_thinking_tokens, think_close_id
from tir_harness.records import fields
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.problems import Problem
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.run.results import RunContext, make_record
from tir_harness.sandbox.executor import Executor

PLAIN = FORMATS["plain"]
# Turn 0 thinks and runs code (the block is still open when the engine stops at ```output); turn 1 closes it.
THINK_AND_RUN = "<think> Let me compute.\n```python\nprint(2 + 3)\n```\n```output\nIGNORED"
CLOSE_AND_ANSWER = "So it is five. \\boxed{4} no wait </think> The answer is \\boxed{5}."


def run(executor: Executor, turns: list[str]) -> dict[str, Any]:
    loop = LoopConfig(PLAIN, PROMPT_TYPES["tora-fewshot"], SamplingConfig(max_tokens=200, stop=PLAIN.stop), 4, 10_000)
    engine = ScriptedEngine.by_question({"Q7": turns})
    trajectory = run_trajectory("Q7", loop, engine, executor.session, "q7")
    context = RunContext("run", "model", "plain", "tora-fewshot", 4, {"timeout": 10.0})
    problem = Problem("toy/test/7", "toy", "test", "Q7", "5")
    return make_record(problem, 0, trajectory, context, "a" * 64, loop.sampling.to_dict())


@pytest.fixture(scope="module")
def executor():
    with Executor(timeout=10.0) as ex:
        yield ex


def test_each_turn_and_the_record_count_thinking_and_answer_tokens(executor: Executor) -> None:
    record = run(executor, [THINK_AND_RUN, CLOSE_AND_ANSWER])
    first, second = record["turns"]
    # The scripted engine's tokens are words: turn 0 is all thinking (its block is open), turn 1 up to </think>.
    assert first["thinking_tokens"] == first["completion_tokens"] == 9
    assert second["thinking_tokens"] == 8 and second["completion_tokens"] == 12
    assert (record["thinking_tokens"], record["answer_tokens"]) == (17, 4)
    assert record["correct"] and record["prediction"] == "5"
    jsonschema.Draft202012Validator(fields.json_schema()).validate(record)


def test_a_model_that_does_not_think_has_no_counts_in_its_record(executor: Executor) -> None:
    record = run(executor, ["The answer is \\boxed{5}."])
    assert "thinking_tokens" not in record and "answer_tokens" not in record
    assert "thinking_tokens" not in record["turns"][0]


def test_the_summary_and_terminal_report_show_thinking_and_answer_tokens(executor: Executor) -> None:
    thinking = run(executor, [THINK_AND_RUN, CLOSE_AND_ANSWER])
    plain = {**run(executor, ["The answer is \\boxed{5}."]), "problem_id": "toy/test/8"}
    cost = summarize([thinking, plain])["cost"]
    assert cost["thinking_records"] == 1
    assert (cost["thinking_tokens"]["total"], cost["answer_tokens"]["total"]) == (17.0, 4.0)
    assert "thinking 17 thinking + 4 answer tokens per trajectory with a think block (1)" in format_terminal(
        summarize([thinking, plain])
    )
    assert "thinking_tokens" not in summarize([plain])["cost"]


# ------------------------------------------------------------------------------ the vLLM engine's counting


@pytest.fixture(scope="module")
def tokenizer(gemma: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gemma)


RESPONSE = "<think>Two plus three: \\boxed{4}? No.</think> The answer is \\boxed{5}."


def test_gemma_has_no_think_token_so_the_count_is_by_decoded_text(tokenizer: Any) -> None:
    assert think_close_id(tokenizer) is None
    ids = tokenizer.encode(RESPONSE, add_special_tokens=False)
    count = count_thinking_tokens(ids, tokenizer, None)
    assert count is not None and 0 < count < len(ids)
    # The shortest prefix that holds the whole tag: one token fewer cuts it.
    assert tokenizer.decode(ids[:count]).endswith("</think>")
    assert "</think>" not in tokenizer.decode(ids[: count - 1])


def test_the_last_closing_tag_counts_and_an_open_block_is_all_thinking(tokenizer: Any) -> None:
    twice = tokenizer.encode("<think>a</think> b </think> c \\boxed{1}", add_special_tokens=False)
    count = count_thinking_tokens(twice, tokenizer, None)
    assert count is not None and tokenizer.decode(twice[:count]).count("</think>") == 2
    assert "</think>" not in tokenizer.decode(twice[count:])
    open_block = tokenizer.encode("<think>still going, 2+3 is", add_special_tokens=False)
    assert count_thinking_tokens(open_block, tokenizer, None) == len(open_block)
    assert count_thinking_tokens(tokenizer.encode("just \\boxed{5}", add_special_tokens=False), tokenizer, None) is None


def test_a_vocabulary_with_the_think_token_is_counted_by_its_id(gemma: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gemma)
    tokenizer.add_tokens(["<think>", "</think>"], special_tokens=True)
    close = think_close_id(tokenizer)
    assert close is not None
    ids = tokenizer.encode(RESPONSE, add_special_tokens=False)
    assert ids.count(close) == 1
    assert count_thinking_tokens(ids, tokenizer, close) == ids.index(close) + 1
    # With the token in the vocabulary, an open block without it is still all thinking, and no block is None.
    assert count_thinking_tokens(ids[: ids.index(close)], tokenizer, close) == ids.index(close)
    assert count_thinking_tokens(tokenizer.encode("plain", add_special_tokens=False), tokenizer, close) is None
