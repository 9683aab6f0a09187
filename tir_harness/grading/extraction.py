"""Find the final answer in a model response.

A reasoning model's `<think>...</think>` is skipped: the answer is read after the last `</think>`, and a think
block that never closes has no answer (grading/thinking.py).  Then, in order (docs/grading.md):
1. the last `\\boxed{}`/`\\fbox{}` (via `tir_harness.boxed.last_boxed`), joined with the boxes just before
   it when only a few connecting words separate them (`\\boxed{1} and \\boxed{2}` -> `1, 2`);
2. the last `<answer>...</answer>` tag (its own box or answer phrase, else its whole content);
   then GSM8K's `#### 42` (any dataset);
3. the last "final answer is" / "the answer is" / "Answer:" phrase (also French, Spanish, German, Chinese,
   Russian), reading to the end of its sentence;
4. a response with none of these whose last step is a ```output block (tool use): that block's last line,
   when it is an answer (a number or math), not a number of the closing prose;
5. fallback: the last math span (`$...$`, `\\(...\\)`, `\\[...\\]`) or the last number, whichever comes
   later; answers of kind `number` (GSM8K-style datasets) use the last number only.
Nothing found -> None (the grader's "no answer").
"""

from __future__ import annotations

import re

from tir_harness.grading.boxed import BOX, box_spans, last_boxed
from tir_harness.grading.equivalence import parse_answer
from tir_harness.grading.nodes import Text
from tir_harness.grading.normalize import MATH_WORDS, clean, undouble_backslashes
from tir_harness.grading.parsing import FUNCTIONS
from tir_harness.grading.thinking import split_thinking

# The answer is at the end; reading only the tail bounds the time spent on runaway generations.
MAX_RESPONSE_CHARS = 20_000
MAX_BOXES = 50
# What a dataset's answers are (its `Dataset.answer_kind`, run/datasets.py): the fallback reads a response
# without a marked answer by its last math span or number (`expression`) or by its last number (`number`).
ANSWER_KINDS = ("expression", "number")

_GSM = re.compile(r"####\s*([^\n]+)")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_PHRASE = re.compile(
    r"(?:answer|r[ée]ponse|respuesta|antwort|ответ)\s*(?:is|est|es|ist|:|=)\s*:?|答案\s*(?:是|为|：|:)?",
    re.IGNORECASE,
)
_FINAL = re.compile(r"final\s+answer\s*(?:is|:)", re.IGNORECASE)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$([^$]+?)(?<!\\)\$", re.DOTALL)
NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])-?(?:\\[dtc]?frac\{\d+\}\{\d+\}|\d+/\d+(?![\d/])|\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])"
    r"|\d+,\d{1,2}(?![\d,])|\d+(?:\.\d+)?|\.\d+)(?:\s*(?:\\?%|percent\b))?"
)
_CONNECTOR_GAP_WORDS = 4
# Words between two boxes that make the later box a correction rather than another item of a list.
_SEQUENCE_WORDS = set(
    "then but wait actually instead however so thus hence therefore no not rather oops correction corrected"
    " recheck hmm final finally".split()
)
# A markdown header between two boxes (`### Response`) starts a new part: the later box is the answer.
_HEADER = re.compile(r"(?m)^\s*#{1,6}\s*\S")
# `$odd$`, `$even$`: a bare word of three letters or more in math delimiters is an answer, not a variable.
_BARE_WORD = re.compile(r"[A-Za-z]{3,}")
_LIST_GAP = re.compile(r"\s*(?:,|;|and|or|et|ou|und|oder|y)?\s*", re.IGNORECASE)
_OUTPUT_BLOCK = re.compile(r"```output\n(.*?)```", re.DOTALL)
_LETTER = re.compile(r"(?<![A-Za-z0-9])\(?([A-E])\)?(?![A-Za-z0-9])")


def extract_answer(response: str, answer_kind: str = "expression", *, fallback: bool = True) -> str | None:
    """The final answer in `response` as a string, or None when there is none.

    `fallback=False` skips step 4 (last math span / last number) and only trusts explicit markers.
    """
    thought = split_thinking(response)
    if not thought.finished:
        return None
    text = undouble_backslashes(thought.answer[-MAX_RESPONSE_CHARS:])
    boxed = _boxed(text)
    if boxed is not None:
        # "The final answer is X" written after the last box is the model's last word.
        late = _FINAL.search(text, text.rfind("\\boxed") if "\\boxed" in text else text.rfind("\\fbox"))
        if late is not None:
            final = _after_phrase(text[late.start() :])
            if final is not None and (is_mathy(final) or NUMBER.fullmatch(final)):
                return final
        return boxed
    tags = _ANSWER_TAG.findall(text)
    if tags and tags[-1].strip():
        # `<answer>...</answer>`: the model's declared answer, read for its own markers, else taken whole.
        content = tags[-1].strip()
        marked = extract_answer(content, answer_kind, fallback=False) if len(content) < len(text) else None
        return marked if marked is not None else _strip_delimiters(content)
    gsm = _GSM.findall(text)
    if gsm:
        return gsm[-1].strip()
    phrase = _after_phrase(text)
    if phrase is not None:
        return phrase
    if not fallback:
        return None
    output = _closing_output(text)
    if output is not None:
        return output
    return _fallback(text, answer_kind == "number")


def extract_choice(response: str) -> str | None:
    """A multiple-choice letter A-E: boxed, after an answer phrase, leading the response, or the last one."""
    thought = split_thinking(response)
    if not thought.finished:
        return None
    text = undouble_backslashes(thought.answer[-MAX_RESPONSE_CHARS:])
    boxed = _boxed(text)
    if boxed is not None:
        match = re.fullmatch(r"\s*\(?([A-J])\)?\s*", clean(boxed))
        if match:
            return match.group(1)
    phrases = list(_PHRASE.finditer(text))
    if phrases:
        match = _LETTER.search(_sentence(text, phrases[-1].end()))
        if match:
            return match.group(1)
    match = re.match(r"\s*\(?([A-E])\)?(?:[.:)\s]|$|[^\x00-\x7f])", text)
    if match:
        return match.group(1)
    letters = _LETTER.findall(text)
    return letters[-1] if letters else None


def _boxed(text: str) -> str | None:
    starts = [m.start() for m in BOX.finditer(text)]
    if len(starts) > MAX_BOXES:
        # Each unterminated box is scanned to the end of the text: keep that bounded.
        text = text[starts[-MAX_BOXES] :]
    last = last_boxed(text)
    if last is None:
        return None
    spans = box_spans(text)
    if not spans or spans[-1][2] != last:
        return last.strip()
    chosen = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not _connector(text[span[1] : chosen[0][0]]):
            break
        chosen.insert(0, span)
    contents = [c.strip() for _, _, c in chosen if c.strip()]
    if not contents:
        return None
    return ", ".join(contents)


def _connector(gap: str) -> bool:
    """Only a few connecting words between two boxes: `\\quad \\text{and} \\quad`, `, `, ` papers and `."""
    if re.search(r"[.!?](\s|$)|\n\s*\n", gap) or _HEADER.search(gap):
        return False
    gap = re.sub(r"\\text\w*\s*\{([^{}]*)\}", r" \1 ", gap)
    gap = re.sub(r"\\(?:qquad|quad)|\\[()\[\],;:! ]|\$", " ", gap)
    words = [w for w in re.split(r"[\s,;&+]+", gap) if w]
    if any(w.strip("()*:").lower() in _SEQUENCE_WORDS for w in words):
        return False  # `\boxed{3}, then \boxed{5}`: a correction, not a list
    return len(words) <= _CONNECTOR_GAP_WORDS


def _sentence(text: str, start: int) -> str:
    """From `start` to the end of the sentence: `. ` outside math, a blank line, `。`, or a line end."""
    in_math = False
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "$" and (i == 0 or text[i - 1] != "\\"):
            in_math = not in_math
        elif not in_math:
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if ch == "." and (nxt == "" or nxt.isspace()):
                break
            if ch in "。!?" or (ch == "\n" and text[start:i].strip()):
                break
        i += 1
    return text[start:i]


def _after_phrase(text: str) -> str | None:
    phrases = list(_PHRASE.finditer(text))
    for phrase in reversed(phrases):
        snippet = _sentence(text, phrase.end())
        snippet = snippet.strip().strip("*").replace('\\"', "").strip().strip('"').strip()
        if not snippet:
            continue
        answer = _from_snippet(snippet)
        if answer is not None:
            return answer
    return None


def _from_snippet(snippet: str) -> str | None:
    """`$12$` -> 12; `The largest $n$ is 34` -> 34; `Jane started 3 hours ago` -> 3; `Evelyn` -> Evelyn."""
    whole = _strip_delimiters(snippet)
    if _is_math(whole):
        return whole
    pieces = re.split(r"\s(?:is|are|was|equals|est|es|ist)\s|\s=\s", snippet)
    tail = _strip_delimiters(pieces[-1].strip())
    if tail and _is_math(tail):
        return tail
    numbers = NUMBER.findall(snippet)
    if numbers:
        return numbers[0]
    if len(snippet) <= 40:
        return snippet
    return None


def _is_math(text: str) -> bool:
    if not is_mathy(text):
        return False
    parsed = parse_answer(clean(text))
    return parsed is not None and not isinstance(parsed, Text)


def is_mathy(text: str) -> bool:
    """Could `text` be a math answer? (No plain words other than math words and units after numbers.)"""
    cleaned = clean(text)
    if not cleaned:
        return False
    outside_commands = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[a-zA-Z]+", " ", cleaned)
    for word in re.findall(r"[A-Za-z]{3,}", outside_commands):
        if word.lower() not in MATH_WORDS and word not in FUNCTIONS:
            return False
    return not re.search(r"[^\x00-\x7f°]", cleaned)


def _fallback(text: str, numbers_only: bool) -> str | None:
    numbers = list(NUMBER.finditer(text))
    last_number = numbers[-1] if numbers else None
    if not numbers_only:
        spans = list(_MATH_SPAN.finditer(text))
        for index in range(len(spans) - 1, -1, -1):
            span = spans[index]
            if last_number is not None and last_number.start() >= span.end():
                break
            content = _span_content(span)
            if _BARE_WORD.fullmatch(content) and content not in FUNCTIONS:
                return content
            if re.fullmatch(r"[A-Za-z()'_{}, ]*", content):
                continue  # a variable's name (`$n$`, `$f(x)$`), not an answer
            if is_mathy(content):
                # `$1$ and $2$ and $3$`: spans joined by and/or/commas are one list.
                contents = [content]
                while index > 0 and _LIST_GAP.fullmatch(text[spans[index - 1].end() : spans[index].start()]):
                    index -= 1
                    contents.insert(0, _span_content(spans[index]))
                return ", ".join(contents)
            if last_number is not None and last_number.start() >= span.start():
                break  # the last number sits in an unreadable span: take the number
    return last_number.group(0).strip() if last_number is not None else None


def _closing_output(text: str) -> str | None:
    """The last ```output block's last line, when no code follows it (the tool's result was the last step:
    "```output 5``` ... 5 cars in the first 15 minutes" answers 5, not 15) and that line is an answer."""
    blocks = list(_OUTPUT_BLOCK.finditer(text))
    if not blocks or "```python" in text[blocks[-1].end() :]:
        return None
    lines = [line.strip() for line in blocks[-1].group(1).splitlines() if line.strip()]
    if not lines:
        return None
    answer = lines[-1]
    return answer if NUMBER.fullmatch(answer) or _is_math(answer) else None


def _span_content(span: re.Match[str]) -> str:
    return next(g for g in span.groups() if g is not None).strip()


def _strip_delimiters(text: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            inner = text[len(left) : -len(right)]
            if left not in inner:
                return inner.strip()
    return text
