"""Reproduction of the reference implementation, end to end through the plugin (docs/fidelity.md).

An engine that replays fixed turns is installed through the public `pytest_tir_make_engine` hook; every request
it receives is logged, so the tests compare what the harness really sent with the reference's strings (copied
here from the reference's source, never computed by the code under test).
"""

from __future__ import annotations

import json

import pytest

from tir_harness.grading.reference import extract_reference_answer, math_equal, reference_grade, strip_string
from tir_harness.run.loop import execution_mode
from tir_harness.run.prompts import default_observation_style
from tir_harness.sandbox.executor import ExecutorConfig
from tir_harness.sandbox.observations import get_style

ONE_Q = "ONE: what is 20+1?"
LIMIT_Q = "LIMIT: loop forever"
REF_Q = "REF: what percent is one half?"
TURN = "Let me compute.\n```python\na = 20\nprint('set')\n```\nNow:\n```python\nprint(a + 1)\n```\n  \n"
STRIPPED = TURN.rstrip()

INTEGRATE = (
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)
FIRST = {
    "gemma": f"<bos><start_of_turn>user\n{ONE_Q}<end_of_turn>\n<start_of_turn>model\n",
    "mistral": f"<s> [INST] {ONE_Q} [/INST]",
    "deepseek": f"User: {ONE_Q}\n{INTEGRATE}\n\nAssistant: ",
    # The one prompt fix: the reference's Llama 3 prompt dropped the question.
    "llama3": (
        f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{ONE_Q}\n{INTEGRATE}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}
WRAPPER = {
    "gemma": "<end_of_turn>\n<start_of_turn>user\n```output\n{obs}\n```<end_of_turn>\n<start_of_turn>model\n",
    "mistral": "</s> [INST] ```output\n{obs}\n``` [/INST]",
    "deepseek": "\n```output\n{obs}\n```\n",
    "llama3": (
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n```output\n{obs}\n```<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}
STOP = {
    "gemma": ["<end_of_turn>", "<eos>", "```output", "<start_of_turn>"],
    "mistral": ["<s>", "</s>", "[INST]", "```output"],
    "deepseek": ["<｜end▁of▁sentence｜>", "User", "```output"],
    "llama3": ["<|eot_id|>", "<|start_header_id|>user", "```output"],
}

CONFTEST = """
import json, pathlib
from tir_harness.engines.scripted import ScriptedEngine

LOG = pathlib.Path(__file__).parent / "requests.jsonl"
SCRIPT = {
    "ONE:": [TURN, "The answer is \\\\boxed{21}."],
    "LIMIT:": ["```python\\nprint(7)\\n```"] * 6,
    "REF:": ["It is \\\\boxed{0.5}."],
    "MID:": ["Let me run it: ```python\\nprint(6 * 7)\\n```\\n", "So \\\\boxed{42}."],
}

def pytest_tir_make_engine(config, model):
    engine = ScriptedEngine.by_question(SCRIPT)
    respond = engine.responder
    def logged(request):
        entry = {"id": request.request_id, "prompt": request.prompt, "stop": list(request.sampling.stop),
                 "bos": request.add_special_tokens, "seed": request.sampling.seed}
        with LOG.open("a") as log:
            log.write(json.dumps(entry) + "\\n")
        return respond(request)
    engine.responder = logged
    return engine
""".replace("TURN", repr(TURN))

BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_reference(problem, solve):
    assert solve(problem).answer == problem.answer
"""

PROBLEMS = [
    {"id": "one", "question": ONE_Q, "answer": "21"},
    {"id": "limit", "question": LIMIT_Q, "answer": "7"},
    {"id": "ref", "question": REF_Q, "answer": "50"},
    {"id": "mid", "question": "MID: what is 6*7?", "answer": "42"},
]


def run_format(pytester: pytest.Pytester, tmp_path, fmt: str) -> tuple[pytest.RunResult, list[dict], dict]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    reports = tmp_path / "run"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--store-dir={tmp_path / 'store'}", f"--report-dir={reports}",
        "--model=scripted", f"--prompt-format={fmt}", "--max-tool-calls=2", "--seed=3",
    )  # fmt: skip
    log = [json.loads(line) for line in (pytester.path / "requests.jsonl").read_text().splitlines()]
    records = {
        r["problem_id"].rsplit("/", 1)[1]: r
        for r in map(json.loads, (reports / "trajectories.jsonl").read_text().splitlines())
    }
    return result, log, records


@pytest.mark.parametrize("fmt", sorted(FIRST))
def test_the_reference_is_reproduced_through_the_plugin(pytester: pytest.Pytester, tmp_path, fmt: str) -> None:
    result, log, records = run_format(pytester, tmp_path, fmt)
    one = [e for e in log if "ONE:" in e["prompt"]]
    one.sort(key=lambda e: e["id"])
    assert len(one) == 2
    # The first prompt, byte for byte, in the request and in the record.
    assert one[0]["prompt"] == FIRST[fmt] and records["one"]["prompt"] == FIRST[fmt]
    # Both blocks ran in one live session: the second block's `a` comes from the first; the observation is
    # what the last block printed.  The turn's text is right-stripped before the wrapper.
    assert one[1]["prompt"] == FIRST[fmt] + STRIPPED + WRAPPER[fmt].format(obs="21")
    assert records["one"]["turns"][0]["observation"] == "21"
    # The reference's stop strings are all sent, and exactly one BOS: the text carries it, or the tokenizer
    # adds it when the text has none (DeepSeek).
    for entry in log:
        assert set(STOP[fmt]) <= set(entry["stop"])
        assert entry["bos"] is (fmt == "deepseek")
    # At the limit (2 here): two generations, both executed, and nothing generated after the second.
    limit = [e for e in log if "LIMIT:" in e["prompt"]]
    assert len(limit) == 2 and all("Reach max function call limit" not in e["prompt"] for e in limit)
    assert records["limit"]["end_reason"] == "max_tool_calls" and records["limit"]["tool_calls"] == 2
    # The reference's verdict beside ours: 0.5 for a gold of 50 passes its percent rule, not our grader.
    assert records["ref"]["correct"] is False and records["ref"]["reference_correct"] is True
    assert records["ref"]["reference_prediction"] == "0.5"
    assert records["one"]["correct"] is True and records["one"]["reference_correct"] is True
    # Ended by the limit, the last model message of Gemma's and Mistral's chats is the limit note: no answer
    # for the reference.  DeepSeek's inline conversation falls back to the last ```output block, and so does
    # Llama 3's, cut at the last *user* header (the one before that block).
    reads_output = fmt in ("deepseek", "llama3")
    assert records["limit"]["correct"] is True and records["limit"]["reference_correct"] is reads_output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["accuracy"]["overall"]["correct"] == 3
    assert summary["reference_grader"]["overall"]["correct"] == (4 if reads_output else 3)
    assert summary["reference_grader"]["disagree"] == (1 if reads_output else 2)
    assert "reference grader" in result.stdout.str()
    assert "Reference implementation's grader" in (tmp_path / "run" / "summary.md").read_text()
    # The reference's executor, not only its observations' wording: a fence opening mid-line is a block to it
    # (its fence rule, run by replaying the conversation's blocks), so the model's code runs and it goes on.
    mid = records["mid"]
    assert [t["observation"] for t in mid["turns"]] == ["42", None] and mid["correct"] is True
    # Seeds: sample 0 of seed 3 is 3 * 2**20, so seed 4's samples cannot reuse it.
    assert {e["seed"] for e in log} == {3 * 2**20}


@pytest.mark.parametrize(
    ("text", "prediction"),
    [
        ("so \\boxed{\\frac{1}{2}} is it", "\\frac{1}{2}"),
        ("Therefore the answer is 12 apples.\nDone", "12apples"),  # ToRA keeps the line, strip_string the spaces
        ("x = 3\n```output\n17\n```\n", "17"),  # no box, no phrase: the last ```output block
        ("I think 3, or maybe 4.5", "4.5"),
        ("\\boxed 5$ and more", "5"),
        ("nothing here", ""),
    ],
)
def test_reference_extraction(text: str, prediction: str) -> None:
    assert extract_reference_answer(text) == prediction


@pytest.mark.parametrize(
    ("pred", "gold", "equal"),
    [
        ("0.5", "50", True),  # percent: a gold x also accepts x/100
        ("5000", "50", True),  # and 100x
        ("1.00001", "1", True),  # relative 1e-4
        ("1.001", "1", False),
        ("\\frac{1}{2}", "0.5", True),  # sympy
        ("x+1", "1+x", True),
        ("(1,4.5)", "(1,\\frac{9}{2})", True),  # item by item
        ("3.14", "\\pi", False),  # numeric evaluation is within 1e-3 only
        ("\\frac{1}{2006!}", "\\frac{1}{2004!}", True),  # the reference's false positive, reproduced
        ("__import__('os').system('touch /tmp/pwned')", "1", False),  # never evaluated as Python
        ("", "0", False),
    ],
)
def test_reference_math_equal(pred: str, gold: str, equal: bool) -> None:
    assert math_equal(strip_string(pred), strip_string(gold)) is equal


def test_reference_grades_only_the_last_model_message() -> None:
    conversation = (
        "<bos><start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\nI get \\boxed{9}"
        "<end_of_turn>\n<start_of_turn>user\n```output\n1\n```<end_of_turn>\n<start_of_turn>model\nIt is 4."
    )
    assert reference_grade(conversation, "4") == (True, "4")
    # After the limit note the last model message holds no answer, as in the reference.
    limited = "User: Q\n\nAssistant: ```python\nprint(8)\n```\n```output\n8\n```\n\nReach max function call limit."
    assert reference_grade(limited, "8") == (True, "8")


def test_symbolic_step_is_bounded() -> None:
    # A tower of powers never finishes simplifying: the helper is stopped and replaced, the answer is "no".
    assert math_equal("9^9^9^9", "1") is False
    assert math_equal("x+1", "1+x") is True  # the replacement helper works


@pytest.mark.parametrize("fmt", ["gemma", "mistral", "deepseek", "llama3"])
@pytest.mark.parametrize("prompt_type", ["tora", "cot"])
def test_the_references_prompts_get_the_references_executor(fmt: str, prompt_type: str) -> None:
    """Rows 9-12: with the reference's prompts, the code runs as the reference ran it (replayed, uncut in
    practice, 20 s for the whole replay); tests/test_reference_observations.py checks what that shows."""
    style = default_observation_style(fmt, prompt_type)
    assert execution_mode(style) == "reference"
    assert (get_style(style).max_output_chars or 0) >= 100_000
    assert ExecutorConfig(observation_style=style).replay_timeout == 20.0


@pytest.mark.parametrize(("fmt", "prompt_type"), [("gemma", "tora-instruct"), ("plain", "tora-fewshot")])
def test_the_harness_prompt_types_keep_their_live_session(fmt: str, prompt_type: str) -> None:
    assert execution_mode(default_observation_style(fmt, prompt_type)) == "live"
