"""Prompt formats (how a conversation becomes model input) and prompt types (what the first message asks).

A conversation is a list of `Message`s: an optional system message, the question, the model's turns, and the
tool's observations.  A format renders it to the exact text an engine continues.  Chat formats put each
observation in a user turn, as the reference implementation did for Gemma, Mistral and Llama 3; inline formats
(DeepSeek, plain completion for base models) append the ```output block to the model's own text and let it continue.
The model's text is right-stripped before anything is appended (as the reference does).  Rendering only ever
appends to the previous prompt, so an engine's prefix cache covers earlier turns.

For the reference's formats (gemma, mistral, deepseek, llama3), prompt types `tora` and `cot` give the
reference implementation's strings byte for byte (docs/fidelity.md), with two fixes: the Llama 3 `tora`
prompt carries the question, and exactly one BOS is sent (the text carries it, so engines add none).

Formats and prompt types are registries (`FORMATS`, `PROMPT_TYPES`, util/registry.py): add one with
`register_prompt_format` / `register_prompt_type` (docs/extending.md), never by editing a list here.
`format_for_model` is the one place that decides which format a model uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tir_harness.records.trajectory import MAX_CALLS_NOTE
from tir_harness.util.registry import Registry, RegistryError

__all__ = [
    "CHAT_TEMPLATE",
    "FORMATS",
    "MAX_CALLS_NOTE",
    "PROMPT_TYPES",
    "Message",
    "PromptFormat",
    "PromptType",
    "format_for_model",
    "format_names",
    "register_prompt_format",
    "register_prompt_type",
]

Role = Literal["system", "user", "assistant"]
ROLES = ("system", "user", "assistant")
# The tokenizer's own template: a format built when the engine starts (it needs the model's tokenizer).
CHAT_TEMPLATE = "chat-template"

OUTPUT_STOP = "```output"
# Qwen2.5-Math's formats: its chat markup, and plain text for its base models' `tool-integrated` prompt.
QWEN_FORMAT = "qwen25-math"
QWEN_BASE_FORMAT = "qwen25-math-base"
# Qwen2.5-Math's evaluation code (math_eval.py) stops every prompt at these, and a tool prompt at the next two.
QWEN_STOP = ("</s>", "<|im_end|>", "<|endoftext|>", "\n\n---", OUTPUT_STOP)
# The formats the reference implementation defines; for them `tora`/`cot` reproduce its prompts byte for byte.
REFERENCE_FORMATS = ("gemma", "mistral", "deepseek", "llama3")


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Message.role must be one of {', '.join(ROLES)}, got {self.role!r}")


def observation_block(text: str) -> str:
    return f"```output\n{text}\n```"


@dataclass(frozen=True)
class PromptType:
    name: str
    uses_tool: bool
    first_message: Callable[[str, str], str] = field(repr=False)  # (question, format name) -> first user message
    system: str | None = None  # a system message sent before the first user message (Qwen2.5-Math's tool prompt)
    description: str = ""  # one line, for option help


# The reference's instructions (ToRA's wording).
REFERENCE_TORA_INSTRUCTION = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
COT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Qwen2.5-Math-Instruct's tool-integrated (TIR) system message, as its model card and README give it.
QWEN_TIR_SYSTEM = REFERENCE_TORA_INSTRUCTION
# The instruction Qwen2.5-Math's evaluation code (utils.py construct_prompt) puts before its `tool-integrated`
# prompt, for base models.  Upstream writes it in a non-raw string, so its `\boxed{}` begins with a backspace
# character (`\b`) while its `\pi` keeps the backslash; reproduced, with the doubled backtick after `Rational`.
QWEN_TOOL_PREAMBLE = """\
Integrate step-by-step reasoning and Python code to solve math problems using the following guidelines:

- Analyze the question and write functions to solve the problem; the function should not take any arguments.
- Present the final result in LaTeX using a `\boxed{}` without any units.
- Utilize the `pi` symbol and `Rational`` from Sympy for $\\pi$ and fractions, and simplify all fractions and \
square roots without converting them to decimal values.

Here are some examples you may refer to:

---

"""
# This project's instruction, for instruction-tuned models that never saw the reference's tool format.
TORA_INSTRUCTION = (
    "Solve the problem by reasoning step by step. You may write Python code in a ```python block; "
    "its output will be shown to you in a ```output block. Put your final answer within \\boxed{}."
)


def _reference_tora(question: str, fmt: str) -> str:
    # The Gemma and Mistral checkpoints learned the tool format from data: the reference sends the bare question.
    # Llama 3 gets the question too (the reference dropped it: its one prompt bug, fixed here).
    if fmt in ("gemma", "mistral", "tora"):  # ToRA's own checkpoints too (its inference.py's train format)
        return question
    return f"{question}\n{REFERENCE_TORA_INSTRUCTION}"


# Worked examples written for this project, in ToRA's shape: question, a little prose, a ```python block, its
# ```output, and a \boxed{} answer.  Base models continue the pattern; the separators are also stop strings.
FEWSHOT_EXAMPLES = """\
Question: A baker makes 24 muffins every hour for 7 hours. He sells 150 of them. How many muffins are left?
Solution:
Let's compute the muffins made and subtract the ones sold.
```python
made = 24 * 7
left = made - 150
print(left)
```
```output
18
```
The baker has \\boxed{18} muffins left.

---

Question: Solve for $x$: $5x - 3 = 2x + 12$.
Solution:
We solve the linear equation with sympy.
```python
from sympy import symbols, Eq, solve
x = symbols('x')
print(solve(Eq(5*x - 3, 2*x + 12), x))
```
```output
[5]
```
So $x = \\boxed{5}$.

---

Question: What is $\\frac{3}{4} + \\frac{5}{6}$? Express the answer as a common fraction.
Solution:
We add the fractions exactly.
```python
from fractions import Fraction
print(Fraction(3, 4) + Fraction(5, 6))
```
```output
19/12
```
The sum is \\boxed{\\frac{19}{12}}.

---

"""

PROMPT_TYPES: Registry[PromptType] = Registry("prompt type", "tir_harness.prompt_types", accepts=PromptType)


def register_prompt_type(prompt_type: PromptType) -> PromptType:
    """Add a prompt type under its name (a duplicate name is a one-line RegistryError)."""
    return PROMPT_TYPES.register(prompt_type.name, prompt_type)


for _type in (
    PromptType("tora", True, _reference_tora, description="the reference's tool-integrated prompt"),
    PromptType("cot", False, lambda q, fmt="": f"{q}\n{COT_INSTRUCTION}", description="chain of thought, no tool"),
    PromptType("tora-instruct", True, lambda q, fmt="": f"{q}\n\n{TORA_INSTRUCTION}",
               description="this project's tool instruction, for instruction-tuned models"),
    PromptType("tora-fewshot", True, lambda q, fmt="": f"{FEWSHOT_EXAMPLES}Question: {q}\nSolution:",
               description="worked examples to continue, for base models"),
    # Qwen2.5-Math-Instruct's own prompts (docs/fidelity.md, "Qwen2.5-Math"): the instruction is the system
    # message, the user turn is the bare question.
    PromptType("qwen25-math-tir", True, lambda q, fmt="": q, system=QWEN_TIR_SYSTEM,
               description="Qwen2.5-Math-Instruct's tool-integrated prompt (its system message)"),
    PromptType("qwen25-math-cot", False, lambda q, fmt="": q, system=COT_INSTRUCTION,
               description="Qwen2.5-Math's evaluation code's qwen25-math-cot prompt"),
    PromptType("qwen25-math-tool-integrated", True, lambda q, fmt="": f"{QWEN_TOOL_PREAMBLE}Question: {q}\n\nSolution:",
               description="Qwen2.5-Math's evaluation code's tool-integrated prompt, zero-shot, for base models"),
):  # fmt: skip
    register_prompt_type(_type)


def default_prompt_type(fmt: str) -> str:
    """The reference's own prompt for its formats; Qwen2.5-Math's tool prompt for its format; few-shot for base
    models; this project's instruction else."""
    if fmt in REFERENCE_FORMATS:
        return "tora"
    if fmt == QWEN_FORMAT:
        return "qwen25-math-tir"
    if fmt == QWEN_BASE_FORMAT:
        return "qwen25-math-tool-integrated"
    return "tora-fewshot" if fmt == "plain" else "tora-instruct"


def default_observation_style(fmt: str, prompt_type: str) -> str:
    """What the model sees of its code: the reference's observations when its prompts are reproduced, Qwen2.5-
    Math's executor's when its prompts are."""
    if fmt in REFERENCE_FORMATS and prompt_type in ("tora", "cot"):
        return "reference"
    if fmt in (QWEN_FORMAT, QWEN_BASE_FORMAT) and prompt_type.startswith("qwen25-math"):
        return "qwen25-math"
    return "full"


@dataclass(frozen=True)
class PromptFormat:
    """How one model family reads a conversation.

    `user`/`assistant` wrap a finished message; `generation` opens the model's turn; `inline` formats add
    observations to the model's own message (`inline_observation`) instead of a user turn.  A system message
    is wrapped by `system` (Llama 3's system header) or, when `system` is None, folded into the first user
    message as `system_fold` says (Gemma and Mistral have no system turn); with no system message, nothing of
    either appears.
    """

    name: str
    begin: str
    user: str  # with {content}
    assistant: str  # with {content}; a finished model turn
    generation: str  # opens the model's turn
    stop: tuple[str, ...]
    inline: bool = False
    add_special_tokens: bool = False  # True when the tokenizer, not `begin`, supplies the BOS token
    inline_observation: str = "\n```output\n{observation}\n```\n"  # with {observation}; inline formats only
    system: str | None = None  # with {content}; None: the system message is folded into the first user message
    system_fold: str = "{system}\n\n{content}"  # how it is folded (with {system} and {content})

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt that asks the model to continue the last assistant message, or to start one."""
        parts = [self.begin]
        messages = self._placed_system(messages, parts)
        for i, message in enumerate(messages):
            if message.role == "user":
                parts.append(self.user.format(content=message.content))
            elif i == len(messages) - 1:
                parts.append(self.generation + message.content)  # still being written
            else:
                parts.append(self.assistant.format(content=message.content))
        if not messages or messages[-1].role == "user":
            parts.append(self.generation)
        return "".join(parts)

    def _placed_system(self, messages: Sequence[Message], parts: list[str]) -> Sequence[Message]:
        """The conversation without its system messages: rendered into `parts`, or folded into the first user
        message."""
        system = [m.content for m in messages if m.role == "system"]
        if not system:
            return messages
        text = "\n\n".join(system)
        rest = [m for m in messages if m.role != "system"]
        if self.system is not None:
            parts.append(self.system.format(content=text))
            return rest
        for i, message in enumerate(rest):
            if message.role == "user":
                folded = self.system_fold.format(system=text, content=message.content)
                return [*rest[:i], Message("user", folded), *rest[i + 1 :]]
        return [Message("user", self.system_fold.format(system=text, content="")), *rest]

    def first_prompt(self, question: str, prompt_type: PromptType) -> str:
        return self.render(first_messages(question, prompt_type, self.name))

    def with_model_text(self, messages: list[Message], text: str) -> list[Message]:
        """The conversation after a model turn; the text is right-stripped, as the reference appends it."""
        text = text.rstrip()
        if messages and messages[-1].role == "assistant":  # inline formats: the model continues its own message
            return [*messages[:-1], Message("assistant", messages[-1].content + text)]
        return [*messages, Message("assistant", text)]

    def with_observation(self, messages: list[Message], observation: str) -> list[Message]:
        """The conversation after the tool's output is shown to the model."""
        if self.inline:
            head, tail = messages[:-1], messages[-1]
            return [*head, Message("assistant", tail.content + self.inline_observation.format(observation=observation))]
        return [*messages, Message("user", observation_block(observation))]


FORMATS: Registry[PromptFormat] = Registry("prompt format", "tir_harness.prompt_formats", accepts=PromptFormat)


def register_prompt_format(fmt: PromptFormat) -> PromptFormat:
    """Add a prompt format under its name (`chat-template` is taken: the tokenizer's own template)."""
    if fmt.name == CHAT_TEMPLATE:
        raise RegistryError(f"prompt format {CHAT_TEMPLATE!r} is already registered (the tokenizer's chat template)")
    return FORMATS.register(fmt.name, fmt)


def format_names() -> tuple[str, ...]:
    """Every name `--prompt-format` accepts: the registered formats and `chat-template`."""
    return tuple(sorted((*FORMATS.names(), CHAT_TEMPLATE)))


for _format in (
    # Gemma has no system turn: its own chat template puts the system text at the head of the first user turn.
    PromptFormat(
        "gemma", "<bos>", "<start_of_turn>user\n{content}<end_of_turn>\n",
        "<start_of_turn>model\n{content}<end_of_turn>\n", "<start_of_turn>model\n",
        ("<end_of_turn>", "<eos>", OUTPUT_STOP, "<start_of_turn>"),
    ),
    # Mistral's [INST] carries the system text ahead of the first instruction.
    PromptFormat(
        "mistral", "<s>", " [INST] {content} [/INST]", "{content}</s>", "", ("<s>", "</s>", "[INST]", OUTPUT_STOP),
    ),
    PromptFormat(
        "llama3", "<|begin_of_text|>", "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n", ("<|eot_id|>", "<|start_header_id|>user", OUTPUT_STOP),
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
    ),
    # The reference's DeepSeek text has no BOS: the tokenizer adds the one BOS.  DeepSeek's template puts the
    # system text first, then a blank line.
    PromptFormat(
        "deepseek", "", "User: {content}\n\n", "Assistant: {content}<｜end▁of▁sentence｜>", "Assistant: ",
        ("<｜end▁of▁sentence｜>", "User", OUTPUT_STOP), inline=True, add_special_tokens=True, system="{content}\n\n",
    ),
    # Base models: no chat markup, the tokenizer adds <bos>, and the few-shot separators end a solution.
    PromptFormat(
        "plain", "", "{content}\n", "{content}\n", "", (OUTPUT_STOP, "---", "Question:"),
        inline=True, add_special_tokens=True, system="{content}\n\n",
    ),
    # ToRA's checkpoints (llm-agents/tora-*): its inference.py's train prompt format, stop words and observation
    # wrapping; the tokenizer adds Llama's BOS.
    PromptFormat(
        "tora", "", "<|user|>\n{content}\n", "<|assistant|>\n{content}\n", "<|assistant|>\n",
        ("</s>", "---", OUTPUT_STOP), inline=True, add_special_tokens=True, system="{content}\n\n",
    ),
    # Qwen2.5-Math (ChatML): its evaluation code continues the model's own text with the observation, inline,
    # and passes the text to the engine as is (Qwen2 tokenizers have no BOS to add).
    PromptFormat(
        QWEN_FORMAT, "", "<|im_start|>user\n{content}<|im_end|>\n", "<|im_start|>assistant\n{content}<|im_end|>\n",
        "<|im_start|>assistant\n", QWEN_STOP, inline=True, add_special_tokens=True,
        system="<|im_start|>system\n{content}<|im_end|>\n",
    ),
    PromptFormat(
        QWEN_BASE_FORMAT, "", "{content}\n", "{content}\n", "", QWEN_STOP, inline=True, add_special_tokens=True,
        system="{content}\n\n",
    ),
):  # fmt: skip
    register_prompt_format(_format)


class ChatTemplateFormat(PromptFormat):
    """The tokenizer's own chat template, for models that match no built-in format."""

    def __init__(self, apply_template: Callable[[list[dict[str, str]], bool], str], eos: Sequence[str]) -> None:
        super().__init__(CHAT_TEMPLATE, "", "", "", "", (*eos, OUTPUT_STOP))
        object.__setattr__(self, "_apply", apply_template)

    def render(self, messages: Sequence[Message]) -> str:
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        if messages and messages[-1].role == "assistant":
            # Continue the open model turn: open a new one, then put back what the model already wrote.
            full = self._apply(dicts[:-1], True)  # type: ignore[attr-defined]
            return full + messages[-1].content
        return self._apply(dicts, True)  # type: ignore[attr-defined]

    @classmethod
    def from_tokenizer(cls, model_path: str) -> ChatTemplateFormat:
        from tir_harness.engines.torch_addons import block_mismatched_addons

        block_mismatched_addons()
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if not tokenizer.chat_template:
            raise ValueError(f"--prompt-format {CHAT_TEMPLATE}: the tokenizer of {model_path} has no chat template")

        def apply(messages: list[dict[str, str]], generation: bool) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

        return cls(apply, [tokenizer.eos_token] if tokenizer.eos_token else [])


def format_for_model(model_name: str, requested: str | None = None, alias: str | None = None) -> str:
    """The format a model uses: the one asked for (`--prompt-format`), else its alias's, else the one its name
    implies, as the reference matched names (but `llama-3` matches too), else the tokenizer's chat template.
    A name that is no registered format is a one-line RegistryError."""
    chosen = requested or alias or _format_from_name(model_name)
    if chosen != CHAT_TEMPLATE:
        FORMATS.get(chosen)  # unknown: "unknown prompt format 'x'; known: ..."
    return chosen


# Qwen2.5-Math checkpoints by name: `Qwen/Qwen2.5-Math-7B-Instruct`, a folder `qwen2_5-math-1.5b-instruct`.
_QWEN_MATH = re.compile(r"qwen-?2(?:\.|_|-)?5-?math")


def _format_from_name(model_name: str) -> str:
    lowered = model_name.lower()
    if _QWEN_MATH.search(lowered):
        return QWEN_FORMAT if "instruct" in lowered else QWEN_BASE_FORMAT
    for key, name in (("gemma", "gemma"), ("mistral", "mistral"), ("deepseek", "deepseek")):
        if key in lowered:
            return name
    if "llama-3" in lowered or "llama3" in lowered:
        return "llama3"
    return CHAT_TEMPLATE


def first_messages(question: str, prompt_type: PromptType, fmt: str = "") -> list[Message]:
    first = Message("user", prompt_type.first_message(question, fmt))
    return [Message("system", prompt_type.system), first] if prompt_type.system else [first]
