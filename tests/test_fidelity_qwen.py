"""Qwen2.5-Math's evaluation prompts, end to end through the plugin (docs/fidelity.md, "Qwen2.5-Math").

The strings below are facts copied from QwenLM/Qwen2.5-Math `evaluation/` (utils.py PROMPT_TEMPLATES and
construct_prompt, math_eval.py's stop words and observation wrapping, python_executor.py's results) and from
its README/model card (the tool-integrated system message of the Instruct models); the test compares what the
harness really sent to a logging engine with them, never with what the code under test computes.
"""

from __future__ import annotations

import json

import pytest

from tir_harness.run.prompts import format_for_model
from tir_harness.sandbox.execution import Error, Execution, Text
from tir_harness.sandbox.qwen_math import render

# utils.py PROMPT_TEMPLATES["qwen25-math-cot"][0] (the input template; `{{}}` is str.format's brace).
QWEN25_MATH_COT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
    "<|im_start|>user\n{input}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
# README.md / the model card, "TIR": the system message of Qwen2.5-Math-Instruct's tool-integrated reasoning,
# rendered by the model's ChatML template (the same markup as the template above).
TIR_SYSTEM = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
QWEN25_MATH_TIR = QWEN25_MATH_COT.replace(
    "Please reason step by step, and put your final answer within \\boxed{{}}.", TIR_SYSTEM.replace("{}", "{{}}")
)
# utils.py PROMPT_TEMPLATES["tool-integrated"][0] and construct_prompt's preamble for prompt type "tool-integrated"
# (a non-raw string upstream: its `\b` is a backspace, its `\p` a backslash and a p).
TOOL_INTEGRATED = "Question: {input}\n\nSolution:\n"
TORA_PREAMBLE = (
    "Integrate step-by-step reasoning and Python code to solve math problems using the following guidelines:\n\n"
    "- Analyze the question and write functions to solve the problem; the function should not take any arguments.\n"
    "- Present the final result in LaTeX using a `\boxed{}` without any units.\n"
    "- Utilize the `pi` symbol and `Rational`` from Sympy for $\\pi$ and fractions, and simplify all fractions and "
    "square roots without converting them to decimal values.\n\n"
    "Here are some examples you may refer to:\n\n---\n\n"
)
# math_eval.py: stop_words, extended for "tool-integrated" (and `pal`, `jiuzhang_tora`).
STOP_WORDS = ["</s>", "<|im_end|>", "<|endoftext|>"]
TOOL_STOP_WORDS = ["\n\n---", "```output"]
# math_eval.py: `exec_result = f"\n```output\n{exec_result}\n```\n"`, appended to `query += output.rstrip()`.
OBSERVATION = "\n```output\n{obs}\n```\n"
# math_eval.py: `max_func_call = 1 if args.prompt_type in ["cot", "pal"] else 4`.
MAX_FUNC_CALL = 4

ONE_Q = "ONE: what is 20+1?"
LIMIT_Q = "LIMIT: loop forever"
TURN = "Let me compute.\n```python\na = 20\nprint('set')\n```\nNow:\n```python\nprint(a + 1)\n```\n  \n"

CONFTEST = """
import json, pathlib
from tir_harness.engines.scripted import ScriptedEngine

LOG = pathlib.Path(__file__).parent / "requests.jsonl"
SCRIPT = {
    "ONE:": [TURN, "The answer is \\\\boxed{21}."],
    "LIMIT:": ["```python\\nprint(7)\\n```"] * 6,
}

def pytest_tir_make_engine(config, model):
    engine = ScriptedEngine.by_question(SCRIPT)
    respond = engine.responder
    def logged(request):
        entry = {"id": request.request_id, "prompt": request.prompt, "stop": list(request.sampling.stop),
                 "bos": request.add_special_tokens}
        with LOG.open("a") as log:
            log.write(json.dumps(entry) + "\\n")
        return respond(request)
    engine.responder = logged
    return engine
""".replace("TURN", repr(TURN))

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_qwen(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def _run(pytester: pytest.Pytester, tmp_path, *args: str, passed: int = 2) -> tuple[list[dict], dict]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    problems = [{"id": "one", "question": ONE_Q, "answer": "21"}, {"id": "limit", "question": LIMIT_Q, "answer": "7"}]
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}",
        "--model=scripted", f"--max-tool-calls={MAX_FUNC_CALL}", *args,
    )  # fmt: skip
    result.assert_outcomes(passed=passed, failed=2 - passed)
    log = [json.loads(line) for line in (pytester.path / "requests.jsonl").read_text().splitlines()]
    records = {
        r["problem_id"].rsplit("/", 1)[1]: r
        for r in map(json.loads, (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines())
    }
    return log, records


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (("--prompt-format=qwen25-math",), QWEN25_MATH_TIR.format(input=ONE_Q)),
        (("--prompt-format=qwen25-math-base",), TORA_PREAMBLE + TOOL_INTEGRATED.format(input=ONE_Q)),
    ],
    ids=["instruct-tir", "base-tool-integrated"],
)
def test_qwen25_math_tool_prompts_are_reproduced(pytester: pytest.Pytester, tmp_path, args, first) -> None:
    log, records = _run(pytester, tmp_path, *args)
    one = sorted((e for e in log if "ONE:" in e["prompt"]), key=lambda e: e["id"])
    assert len(one) == 2
    assert one[0]["prompt"] == first and records["one"]["prompt"] == first
    # The model's text right-stripped, then the observation as math_eval.py wraps it; both blocks ran in one
    # session and the observation is what the program printed.
    assert one[1]["prompt"] == first + TURN.rstrip() + OBSERVATION.format(obs="21")
    for entry in log:
        assert entry["stop"] == STOP_WORDS + TOOL_STOP_WORDS
        assert entry["bos"] is True  # the text goes to the engine as is; Qwen2's tokenizer has no BOS to add
    # Four calls at most, each executed, nothing generated after the fourth.
    limit = [e for e in log if "LIMIT:" in e["prompt"]]
    assert len(limit) == MAX_FUNC_CALL
    assert records["limit"]["end_reason"] == "max_tool_calls" and records["limit"]["tool_calls"] == MAX_FUNC_CALL
    assert {r["executor"]["observation_style"] for r in records.values()} == {"qwen25-math"}


def test_qwen25_math_cot_prompt_is_reproduced(pytester: pytest.Pytester, tmp_path) -> None:
    log, records = _run(pytester, tmp_path, "--prompt-format=qwen25-math", "--prompt-type=qwen25-math-cot", passed=1)
    first = QWEN25_MATH_COT.format(input=ONE_Q)
    assert records["one"]["prompt"] == first
    # No tool: one generation, the code in it never runs.
    assert [e["prompt"] for e in log if "ONE:" in e["prompt"]] == [first]
    assert records["one"]["tool_calls"] == 0 and records["one"]["correct"] is False


@pytest.mark.parametrize(
    ("model", "fmt"),
    [
        ("Qwen/Qwen2.5-Math-7B-Instruct", "qwen25-math"),
        ("Qwen/Qwen2.5-Math-1.5B-Instruct", "qwen25-math"),
        ("/models/qwen2_5-math-7b-instruct", "qwen25-math"),
        ("Qwen/Qwen2.5-Math-7B", "qwen25-math-base"),
        ("Qwen/Qwen2.5-7B-Instruct", "chat-template"),  # not a maths model: its tokenizer's own template
    ],
)
def test_qwen25_math_models_are_recognised_by_name(model: str, fmt: str) -> None:
    assert format_for_model(model) == fmt


def _ok(output: str = "", display: str = "") -> Execution:
    return Execution("ok", output=Text.of(output), display=Text.of(display))


@pytest.mark.parametrize(
    ("execution", "observation"),
    [
        (_ok("21\n"), "21"),  # stripped
        (_ok(""), "Done"),  # `res if res else report`: an empty result shows the report
        (_ok("set\n", "21"), "21"),  # the last line's value, not what earlier lines printed
        (_ok("x" * 450), "x" * 200 + "..." + "x" * 200),  # truncate(s, max_length=400)
        (_ok("x" * 400), "x" * 400),
        (Execution("timeout"), "Timeout Error"),
        (Execution("error", output=Text.of("before\n"), error=Error("ZeroDivisionError", "division by zero", "run",
                                                                    last_line="ZeroDivisionError: division by zero")),
         "ZeroDivisionError: division by zero"),  # traceback.format_exc().split("\n")[-2]; the print is lost
    ],
)  # fmt: skip
def test_qwen25_math_observations(execution: Execution, observation: str) -> None:
    assert render(execution, 1600) == observation
