"""Exact prompt strings for every format and prompt type, first turn and after an observation."""

import pytest

from tir_harness.run.loop import _add_model_text
from tir_harness.run.prompts import (
    FORMATS,
    PROMPT_TYPES,
    ChatTemplateFormat,
    Message,
    first_messages,
    format_for_model,
)

Q = "What is 2+3?"
TORA = (
    "What is 2+3?\n\nSolve the problem by reasoning step by step. You may write Python code in a ```python "
    "block; its output will be shown to you in a ```output block. Put your final answer within \\boxed{}."
)
COT = "What is 2+3?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
CODE = "Let me compute.\n```python\nprint(2+3)\n```\n"


def test_prompt_types_build_the_first_message():
    assert PROMPT_TYPES["tora"].first_message(Q) == TORA
    assert PROMPT_TYPES["cot"].first_message(Q) == COT
    fewshot = PROMPT_TYPES["tora-fewshot"].first_message(Q)
    assert fewshot.startswith("Question: A baker makes 24 muffins")
    assert fewshot.endswith("---\n\nQuestion: What is 2+3?\nSolution:")
    assert fewshot.count("```python\n") == 3 and fewshot.count("```output\n") == 3
    assert PROMPT_TYPES["tora"].uses_tool and not PROMPT_TYPES["cot"].uses_tool


def test_gemma_matches_the_reference_layout():
    fmt = FORMATS["gemma"]
    first = fmt.render(first_messages(Q, PROMPT_TYPES["tora"]))
    assert first == f"<bos><start_of_turn>user\n{TORA}<end_of_turn>\n<start_of_turn>model\n"
    messages = fmt.with_observation([*first_messages(Q, PROMPT_TYPES["tora"]), Message("assistant", CODE)], "5", False)
    second = fmt.render(messages)
    assert second == (
        first + CODE + "<end_of_turn>\n<start_of_turn>user\n```output\n5\n```<end_of_turn>\n<start_of_turn>model\n"
    )
    assert fmt.stop == ("<end_of_turn>", "```output")


def test_mistral():
    fmt = FORMATS["mistral"]
    messages = first_messages(Q, PROMPT_TYPES["cot"])
    assert fmt.render(messages) == f"<s>[INST] {COT} [/INST]"
    messages = fmt.with_observation([*messages, Message("assistant", CODE)], "5", False)
    assert fmt.render(messages) == f"<s>[INST] {COT} [/INST]{CODE}</s>[INST] ```output\n5\n``` [/INST]"


def test_llama3_includes_the_question():
    fmt = FORMATS["llama3"]
    messages = first_messages(Q, PROMPT_TYPES["tora"])
    head = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assistant = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert fmt.render(messages) == f"{head}{TORA}<|eot_id|>{assistant}"
    messages = fmt.with_observation([*messages, Message("assistant", CODE)], "5", True)
    assert fmt.render(messages) == (
        f"{head}{TORA}<|eot_id|>{assistant}{CODE}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n```output\n5\n```\nReach max function call limit.<|eot_id|>"
        f"{assistant}"
    )


def test_deepseek_appends_observations_inline():
    fmt = FORMATS["deepseek"]
    messages = first_messages(Q, PROMPT_TYPES["tora"])
    first = fmt.render(messages)
    assert first == f"<｜begin▁of▁sentence｜>User: {TORA}\n\nAssistant:"
    messages = fmt.with_observation([*messages, Message("assistant", CODE)], "5", False)
    assert fmt.render(messages) == first + CODE + "```output\n5\n```\n"


def test_plain_completion_for_base_models():
    fmt = FORMATS["plain"]
    messages = first_messages(Q, PROMPT_TYPES["tora-fewshot"])
    first = fmt.render(messages)
    assert first == PROMPT_TYPES["tora-fewshot"].first_message(Q) + "\n"
    messages = fmt.with_observation([*messages, Message("assistant", CODE)], "5", True)
    assert fmt.render(messages) == first + CODE + "```output\n5\n```\nReach max function call limit.\n"
    assert fmt.add_special_tokens and fmt.stop == ("```output", "---", "Question:")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_prompt_extends_the_previous_one(name):
    # Prefix caching depends on it: turn N+1's prompt starts with turn N's prompt and output.
    fmt = FORMATS[name]
    messages = first_messages(Q, PROMPT_TYPES["tora"])
    prompt = fmt.render(messages)
    for turn in range(3):
        text = f"turn {turn}\n```python\nprint({turn})\n```\n"
        messages = _add_model_text(messages, text)
        messages = fmt.with_observation(messages, str(turn), last=turn == 2)
        new_prompt = fmt.render(messages)
        assert new_prompt.startswith(prompt + text)
        assert new_prompt.endswith(fmt.generation) or fmt.inline
        prompt = new_prompt


def test_chat_template_uses_the_tokenizer_and_continues_open_turns():
    def apply(messages, generation):
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if generation else "")

    fmt = ChatTemplateFormat(apply, ["</s>"])
    messages = first_messages(Q, PROMPT_TYPES["cot"])
    assert fmt.render(messages) == f"<user>{COT}</user><assistant>"
    messages = fmt.with_observation([*messages, Message("assistant", CODE)], "5", False)
    assert fmt.render(messages) == (
        f"<user>{COT}</user><assistant>{CODE}</assistant><user>```output\n5\n```</user><assistant>"
    )
    assert fmt.stop == ("</s>", "```output")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("google/gemma-1.1-7b-it", "gemma"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
        ("my-llama3-sft", "llama3"),
        ("deepseek-ai/deepseek-math-7b-rl", "deepseek"),
        ("Qwen/Qwen2.5-Math-7B-Instruct", "chat-template"),
        ("meta-llama/Llama-2-7b-chat-hf", "chat-template"),
    ],
)
def test_format_from_model_name(model, expected):
    assert format_for_model(model) == expected
