"""The reference implementation's verdict, reproduced beside the harness's own (docs/fidelity.md).

The reference graded with ToRA's `extract_answer` and `math_equal`: the text after the last model header, its
last `boxed`, else what follows "he answer is", else the last ```output block, else the last number; both
sides normalised by ToRA's `strip_string`; then numbers within a relative 1e-4 (a gold x also accepts x/100
and 100x), the same string up to brackets, tuples item by item, and sympy: `simplify(a - b) == 0` or numeric
values within a relative 1e-3.  Those rules accept some wrong answers; the verdict is reported next to the
harness's, never instead of it.

Bounded and thread-safe: everything but sympy runs in the caller's thread on bounded input; the sympy step
runs in one helper process per harness process (`_SymbolicWorker`), which is killed and replaced when a
comparison exceeds its time limit or memory limit, so no signal (SIGALRM) and no thread state is involved.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time

__all__ = ["extract_reference_answer", "math_equal", "reference_grade", "strip_string", "text_after_model_header"]

MAX_TEXT_CHARS = 50_000  # the response tail that is searched (a turn is at most max_tokens long)
MAX_SYMBOLIC_CHARS = 400  # longer answers skip sympy (the reference would try; none of ours is that long)
SYMBOLIC_TIMEOUT_S = 3.0  # wall clock per sympy comparison, as ToRA's call_with_timeout (1 s) on a loaded machine
_WORKER_START_TIMEOUT_S = 60.0

# The reference cut the conversation at the last of these to get the model's last message.
MODEL_HEADERS = (
    "<start_of_turn>model\n",
    "[/INST]",
    "\n\nAssistant:",
    "<|start_header_id|>assistant<|end_header_id|>",
)


def text_after_model_header(conversation: str) -> str:
    cut = max((conversation.rfind(h) + len(h) if h in conversation else -1) for h in MODEL_HEADERS)
    return conversation[cut:] if cut >= 0 else conversation


# ---------------------------------------------------------------------------------------- normalisation


def _fix_fracs(text: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{7}` -> `\\frac{1}{7}`; anything shorter is left as it was."""
    pieces = text.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if piece.startswith("{"):
            out += piece
            continue
        if len(piece) < 2:
            return text
        first, second, rest = piece[0], piece[1], piece[2:]
        out += "{" + first + "}" + (second + rest if second == "{" else "{" + second + "}" + rest)
    return out


def _fix_a_slash_b(text: str) -> str:
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a, b = parts
    try:
        left = a if "sqrt" in a else str(int(a))
        right = b if "sqrt" in b else str(int(b))
    except ValueError:
        return text
    if f"{left}/{right}" != text:
        return text
    return "\\frac{" + left + "}{" + right + "}"


def strip_string(text: str) -> str:
    """ToRA's answer normalisation, rule for rule (its quirks included: every `and` is removed)."""
    s = str(text).strip().replace("\n", "").rstrip(".")
    for old, new in (("\\!", ""), ("\\ ", ""), ("\\\\", "\\"), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac")):
        s = s.replace(old, new)
    s = s.replace("\\left", "").replace("\\right", "")
    without_unit = re.sub(r"\\text{.*?}$", "", s).strip()
    if without_unit and without_unit != s:
        s = without_unit
    for old in ("^{\\circ}", "^\\circ", "\\$", "$"):
        s = s.replace(old, "")
    s = s.replace("\\text", "").replace("x\\in", "")
    for old in ("\\%", "%"):
        s = s.replace(old, "")
    s = s.replace(" .", " 0.").replace("{.", "{0.").replace("\\cdot", "")
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0+([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0+$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s).replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(s))


# ------------------------------------------------------------------------------------------- extraction

_LAST_NUMBER = re.compile(r"-?\d*\.?\d+")


def _program_output(text: str) -> str:
    if "```output" not in text:
        return ""
    return text.rsplit("```output", 1)[1].split("```", 1)[0].strip()


def _boxed_content(after: str) -> str:
    if not after:
        return ""
    if after[0] != "{":
        return after.split("$", 1)[0].strip()
    depth, chars = 1, []
    for ch in after[1:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        chars.append(ch)
    return "".join(chars)


def extract_reference_answer(text: str) -> str:
    """ToRA's `extract_answer` (then `strip_string` once more, as the reference's `run_execute` did)."""
    text = text[-MAX_TEXT_CHARS:]
    if "boxed" in text:
        after = text.rsplit("boxed", 1)[1]
        if not after:
            return ""
        pred = _boxed_content(after)
    elif "he answer is" in text:
        pred = text.rsplit("he answer is", 1)[1].strip()
    elif _program_output(text):
        pred = _program_output(text)
    else:
        numbers = _LAST_NUMBER.findall(text.replace(",", ""))
        pred = numbers[-1] if numbers else ""
    pred = pred.split("\n", 1)[0]
    if pred.startswith(":"):
        pred = pred[1:]
    for tail in (".", "/"):
        if pred.endswith(tail):
            pred = pred[:-1]
    return strip_string(strip_string(pred))


# ------------------------------------------------------------------------------------------- equality


def _float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def math_equal(prediction: str, reference: str, symbolic: bool = True) -> bool:
    """ToRA's `math_equal` with its percent rule and tolerances; sympy through the bounded helper process."""
    pred_num, ref_num = _float(prediction), _float(reference)
    if pred_num is not None and ref_num is not None:
        candidates = (ref_num / 100, ref_num, ref_num * 100)
        return any(_close(c, pred_num, 1e-4) for c in candidates)
    if not prediction:
        return False
    reference, prediction = reference.strip(), prediction.strip()
    pred_s, ref_s = prediction, reference
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_s, ref_s = pred_s.strip("[]()"), ref_s.strip("[]()")
    for bracket in "{}()":
        pred_s, ref_s = pred_s.replace(bracket, ""), ref_s.replace(bracket, "")
    if pred_s == ref_s:
        return True
    pair = (prediction[:1] + prediction[-1:], reference[:1] + reference[-1:])
    if pair in (("[]", "[]"), ("()", "()")):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            math_equal(p, r, symbolic) for p, r in zip(pred_parts, ref_parts, strict=True)
        ):
            return True
    if not symbolic or len(prediction) > MAX_SYMBOLIC_CHARS or len(reference) > MAX_SYMBOLIC_CHARS:
        return False
    return _WORKER.equal(prediction, reference)


def _close(a: float, b: float, rel: float) -> bool:
    try:
        return math.isclose(a, b, rel_tol=rel)
    except (TypeError, ValueError, OverflowError):
        return False


def reference_grade(conversation: str, gold: str) -> tuple[bool, str]:
    """(correct, prediction) as the reference would judge the conversation it wrote."""
    prediction = extract_reference_answer(text_after_model_header(conversation))
    return math_equal(prediction, strip_string(gold)), prediction


# --------------------------------------------------------------------------------------- sympy, bounded


class _SymbolicWorker:
    """One helper process that answers "are these two answers symbolically equal?"; replaced when it hangs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()  # a forked child must start its own helper, never share the parent's pipes
        atexit.register(self.close)

    def equal(self, a: str, b: str) -> bool:
        with self._lock:
            try:
                return self._ask(json.dumps([a, b]).encode() + b"\n")
            except (OSError, ValueError, TimeoutError):
                self._kill()
                return False

    def _ask(self, line: bytes) -> bool:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line)
        proc.stdin.flush()
        reply = _read_line(proc.stdout.fileno(), time.monotonic() + SYMBOLIC_TIMEOUT_S)
        return reply.strip() == b"1"

    def _start(self) -> subprocess.Popen[bytes]:
        if self._pid != os.getpid():
            self._proc, self._pid = None, os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        if _read_line(self._proc.stdout.fileno(), time.monotonic() + _WORKER_START_TIMEOUT_S).strip() != b"ready":
            raise ValueError("the sympy helper did not start")
        return self._proc

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        with self._lock:
            self._kill()


def _read_line(fd: int, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("the sympy helper did not answer in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise OSError("the sympy helper exited")
        data += chunk
    return data


# The helper: parse each side with sympy's LaTeX parser (the reference's parse_latex: antlr when its 4.11
# runtime is installed, else lark), else with parse_expr, but only for text of numbers, operators, single
# letters and a few function names (parse_expr evaluates Python, and the prediction is the model's).  Sides
# that do not parse are "not equal" (the reference would hand such a string to sympify, which evaluates it).
_WORKER_SOURCE = r"""
import functools, json, math, re, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from sympy import N, simplify
from sympy.parsing.latex import parse_latex
from sympy.parsing.sympy_parser import parse_expr, standard_transformations, convert_xor
BACKENDS = ["antlr", "lark"]  # antlr needs its 4.11 runtime; a backend that cannot load is dropped
NAMES = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "exp", "E", "I", "Abs"}
SAFE = re.compile(r"[0-9A-Za-z+\-*/^()., ]*")

@functools.lru_cache(maxsize=4096)  # a gold answer is parsed once, not once per sample
def parse(s):
    for backend in list(BACKENDS):
        try:
            return parse_latex(s, backend=backend)
        except ImportError:
            BACKENDS.remove(backend)
        except Exception:
            pass
    if SAFE.fullmatch(s) and all(len(w) == 1 or w in NAMES for w in re.findall(r"[A-Za-z]+", s)):
        try:
            return parse_expr(s, transformations=standard_transformations + (convert_xor,))
        except Exception:
            pass
    return None

def equal(a, b):
    a, b = parse(a), parse(b)
    if a is None or b is None:
        return False
    try:
        if simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        return math.isclose(N(a), N(b), rel_tol=1e-3)
    except Exception:
        return False

parse(r"\frac{1}{2}")  # loads the LaTeX grammar before the first timed comparison
out = sys.stdout.buffer
out.write(b"ready\n"); out.flush()
for line in sys.stdin.buffer:
    try:
        a, b = json.loads(line)
        ok = equal(str(a), str(b))
    except Exception:
        ok = False
    out.write(b"1\n" if ok else b"0\n"); out.flush()
"""

_WORKER = _SymbolicWorker()
