"""Exact prompt strings for every format and prompt type, first turn and after an observation."""

import pytest

from tir_harness.run.prompts import (
    FORMATS,
    MAX_CALLS_NOTE,
    PROMPT_TYPES,
    ChatTemplateFormat,
    Message,
    PromptType,
    default_observation_style,
    default_prompt_type,
    first_messages,
    format_for_model,
)

Q = "What is 2+3?"
# The reference implementation's strings, copied from its source (docs/fidelity.md).
INTEGRATE = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
REASON = "Please reason step by step, and put your final answer within \\boxed{}."
INSTRUCT = (
    "What is 2+3?\n\nSolve the problem by reasoning step by step. You may write Python code in a ```python "
    "block; its output will be shown to you in a ```output block. Put your final answer within \\boxed{}."
)
COT = f"What is 2+3?\n{REASON}"
CODE = "Let me compute.\n```python\nprint(2+3)\n```\n"
STRIPPED = "Let me compute.\n```python\nprint(2+3)\n```"
L3_USER = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
L3_ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>\n\n"

FIRST = {
    ("gemma", "tora"): f"<bos><start_of_turn>user\n{Q}<end_of_turn>\n<start_of_turn>model\n",
    ("gemma", "cot"): f"<bos><start_of_turn>user\n{Q}\n{REASON}<end_of_turn>\n<start_of_turn>model\n",
    ("mistral", "tora"): f"<s> [INST] {Q} [/INST]",
    ("mistral", "cot"): f"<s> [INST] {Q}\n{REASON} [/INST]",
    ("deepseek", "tora"): f"User: {Q}\n{INTEGRATE}\n\nAssistant: ",
    ("deepseek", "cot"): f"User: {Q}\n{REASON}\n\nAssistant: ",
    # Fixed: the reference's Llama 3 tora prompt dropped the question.
    ("llama3", "tora"): f"{L3_USER}{Q}\n{INTEGRATE}<|eot_id|>{L3_ASSISTANT}",
    ("llama3", "cot"): f"{L3_USER}{Q}\n{REASON}<|eot_id|>{L3_ASSISTANT}",
}
WRAPPER = {
    "gemma": "<end_of_turn>\n<start_of_turn>user\n```output\n5\n```<end_of_turn>\n<start_of_turn>model\n",
    "mistral": "</s> [INST] ```output\n5\n``` [/INST]",
    "deepseek": "\n```output\n5\n```\n",
    "llama3": f"<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n```output\n5\n```<|eot_id|>{L3_ASSISTANT}",
}
STOP = {
    "gemma": ("<end_of_turn>", "<eos>", "```output", "<start_of_turn>"),
    "mistral": ("<s>", "</s>", "[INST]", "```output"),
    "deepseek": ("<｜end▁of▁sentence｜>", "User", "```output"),
    "llama3": ("<|eot_id|>", "<|start_header_id|>user", "```output"),
}


def after_turn(fmt, messages, text=CODE, observation="5"):
    return fmt.with_observation(fmt.with_model_text(messages, text), observation)


def test_prompt_types_build_the_first_message():
    assert PROMPT_TYPES["tora-instruct"].first_message(Q, "gemma") == INSTRUCT
    assert PROMPT_TYPES["cot"].first_message(Q, "plain") == COT
    fewshot = PROMPT_TYPES["tora-fewshot"].first_message(Q, "plain")
    assert fewshot.startswith("Question: A baker makes 24 muffins")
    assert fewshot.endswith("---\n\nQuestion: What is 2+3?\nSolution:")
    assert fewshot.count("```python\n") == 3 and fewshot.count("```output\n") == 3
    assert PROMPT_TYPES["tora"].uses_tool and not PROMPT_TYPES["cot"].uses_tool
    assert PROMPT_TYPES["tora-instruct"].uses_tool


@pytest.mark.parametrize(("name", "prompt_type"), sorted(FIRST))
def test_first_prompts_are_the_references_byte_for_byte(name, prompt_type):
    assert FORMATS[name].first_prompt(Q, PROMPT_TYPES[prompt_type]) == FIRST[name, prompt_type]


@pytest.mark.parametrize("name", sorted(WRAPPER))
def test_second_prompt_is_first_plus_stripped_text_plus_wrapper(name):
    fmt = FORMATS[name]
    messages = first_messages(Q, PROMPT_TYPES["tora"], name)
    assert fmt.render(after_turn(fmt, messages)) == FIRST[name, "tora"] + STRIPPED + WRAPPER[name]


@pytest.mark.parametrize("name", sorted(STOP))
def test_stop_strings_are_the_references(name):
    assert FORMATS[name].stop == STOP[name]


def test_one_bos_the_text_carries_it_or_the_tokenizer_adds_it():
    for name in ("gemma", "mistral", "llama3"):
        assert not FORMATS[name].add_special_tokens, name
    assert FORMATS["deepseek"].add_special_tokens and not FIRST["deepseek", "tora"].startswith("<｜begin")
    assert FORMATS["plain"].add_special_tokens


def test_defaults_reproduce_the_reference_for_its_formats():
    assert [default_prompt_type(f) for f in ("gemma", "mistral", "deepseek", "llama3")] == ["tora"] * 4
    assert default_prompt_type("plain") == "tora-fewshot"
    assert default_prompt_type("chat-template") == "tora-instruct"
    assert default_observation_style("gemma", "tora") == "reference"
    assert default_observation_style("llama3", "cot") == "reference"
    assert default_observation_style("gemma", "tora-instruct") == "full"
    assert default_observation_style("plain", "tora-fewshot") == "full"
    assert MAX_CALLS_NOTE == "\nReach max function call limit."


def test_plain_completion_for_base_models():
    fmt = FORMATS["plain"]
    messages = first_messages(Q, PROMPT_TYPES["tora-fewshot"])
    first = fmt.render(messages)
    assert first == PROMPT_TYPES["tora-fewshot"].first_message(Q, "plain") + "\n"
    assert fmt.render(after_turn(fmt, messages)) == first + STRIPPED + "\n```output\n5\n```\n"
    assert fmt.stop == ("```output", "---", "Question:")


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_prompt_extends_the_previous_one(name):
    # Prefix caching depends on it: turn N+1's prompt starts with turn N's prompt and stripped output.
    fmt = FORMATS[name]
    messages = first_messages(Q, PROMPT_TYPES["tora"], name)
    prompt = fmt.render(messages)
    for turn in range(3):
        text = f"turn {turn}\n```python\nprint({turn})\n```\n  "
        messages = after_turn(fmt, messages, text, str(turn))
        new_prompt = fmt.render(messages)
        assert new_prompt.startswith(prompt + text.rstrip())
        assert new_prompt.endswith(fmt.generation) or fmt.inline
        prompt = new_prompt


def test_chat_template_uses_the_tokenizer_and_continues_open_turns():
    def apply(messages, generation):
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if generation else "")

    fmt = ChatTemplateFormat(apply, ["</s>"])
    messages = first_messages(Q, PROMPT_TYPES["cot"])
    assert fmt.render(messages) == f"<user>{COT}</user><assistant>"
    messages = fmt.with_observation([*messages, Message("assistant", STRIPPED)], "5")
    assert fmt.render(messages) == (
        f"<user>{COT}</user><assistant>{STRIPPED}</assistant><user>```output\n5\n```</user><assistant>"
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
        ("Qwen/Qwen2.5-Math-7B-Instruct", "qwen25-math"),  # its own format (tests/test_fidelity_qwen.py)
        ("Qwen/Qwen2.5-7B-Instruct", "chat-template"),
        ("meta-llama/Llama-2-7b-chat-hf", "chat-template"),
    ],
)
def test_format_from_model_name(model, expected):
    assert format_for_model(model) == expected


# -- the system role ---------------------------------------------------------------------------------------------

SYSTEM = "You are a careful mathematician."
WITH_SYSTEM = {
    # Gemma has no system turn: its own template puts the system text at the head of the first user turn.
    "gemma": f"<bos><start_of_turn>user\n{SYSTEM}\n\n{Q}<end_of_turn>\n<start_of_turn>model\n",
    "mistral": f"<s> [INST] {SYSTEM}\n\n{Q} [/INST]",
    "llama3": (
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{Q}<|eot_id|>{L3_ASSISTANT}"
    ),
    "deepseek": f"{SYSTEM}\n\nUser: {Q}\n\nAssistant: ",
    "plain": f"{SYSTEM}\n\n{Q}\n",
}


@pytest.mark.parametrize("name", sorted(WITH_SYSTEM))
def test_every_format_renders_a_system_message_as_its_model_expects(name):
    fmt = FORMATS[name]
    messages = [Message("system", SYSTEM), Message("user", Q)]
    assert fmt.render(messages) == WITH_SYSTEM[name]
    # Later turns only append: the system text stays where it was, once.
    after = after_turn(fmt, messages)
    assert fmt.render(after).startswith(WITH_SYSTEM[name]) and fmt.render(after).count(SYSTEM) == 1


def test_a_prompt_type_with_a_system_prompt_sends_it_first():
    qwen_like = PromptType("qwen-like", True, lambda q, fmt="": f"{q}\n{INTEGRATE}", system=SYSTEM)
    assert first_messages(Q, qwen_like) == [Message("system", SYSTEM), Message("user", f"{Q}\n{INTEGRATE}")]
    assert first_messages(Q, PROMPT_TYPES["tora"], "gemma") == [Message("user", Q)]  # none: no system message
    expected = WITH_SYSTEM["llama3"].replace(f"{Q}<|eot_id|>", f"{Q}\n{INTEGRATE}<|eot_id|>")
    assert FORMATS["llama3"].first_prompt(Q, qwen_like) == expected


def test_a_message_has_one_of_three_roles():
    with pytest.raises(ValueError, match="system, user, assistant"):
        Message("tool", "5")


# Qwen2.5's chat template (its tokenizer_config.json), with its default system prompt when none is given.
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within "
    "\\\\boxed{}.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN_TOOL_SYSTEM = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)


def test_a_qwen_style_system_prompt_renders_through_a_real_tokenizers_chat_template(gemma, tmp_path):
    import json
    import shutil
    from pathlib import Path

    # A real tokenizer (Gemma's files) carrying Qwen2.5's chat template: what `--prompt-format chat-template`
    # loads for a Qwen model.
    shutil.copy(Path(gemma) / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((Path(gemma) / "tokenizer_config.json").read_text())
    config["chat_template"] = QWEN_TEMPLATE
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    fmt = ChatTemplateFormat.from_tokenizer(str(tmp_path))
    qwen_tool = PromptType("qwen-tool", True, lambda q, fmt="": q, system=QWEN_TOOL_SYSTEM)
    first = fmt.first_prompt(Q, qwen_tool)
    assert first == (
        f"<|im_start|>system\n{QWEN_TOOL_SYSTEM}<|im_end|>\n<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"
    )
    # The model's turn continues after the observation, the system prompt once at the head.
    messages = after_turn(fmt, first_messages(Q, qwen_tool))
    assert fmt.render(messages) == (
        f"{first}{STRIPPED}<|im_end|>\n<|im_start|>user\n```output\n5\n```<|im_end|>\n<|im_start|>assistant\n"
    )
