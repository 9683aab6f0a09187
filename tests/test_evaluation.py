"""The run layer without pytest: `tir_harness.evaluate`, engines by name, and engine arguments.

The engine here is the scripted one, registered through the engine registry as a third party would; the
sandbox and the store are the real ones.  The real vLLM engine's arguments are tested in test_real_engine.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tir_harness
from tir_harness import ENGINES, EngineSettings, Problem, StartupError, evaluate, register_engine
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.evaluation import Evaluation, RunConfig, parse_engine_args

PROBLEMS = [
    Problem(id="t/0", dataset="t", split="test", question="What is 6 * 7? ANSWER 42", answer="42"),
    Problem(id="t/1", dataset="t", split="test", question="What is 2 + 3? ANSWER 5", answer="5"),
]


class Started:
    """What the registered engine saw: each start's settings."""

    def __init__(self) -> None:
        self.settings: list[EngineSettings] = []

    def start(self, settings: EngineSettings) -> ScriptedEngine:
        self.settings.append(settings)
        # Runs one code block, then answers what the question says (or what the engine arg `answer` says).
        forced = settings.args.get("answer")

        def respond(request: Any) -> str:
            if request.request_id.endswith("#t0"):  # the trajectory's first turn
                return "Let me compute.\n```python\nprint(6 * 7)\n```\n"
            answer = forced if forced is not None else request.prompt.split("ANSWER ")[1].split()[0]
            return f"So the answer is \\boxed{{{answer}}}."

        return ScriptedEngine(respond)


@pytest.fixture
def engine() -> Iterator[Started]:
    started = Started()
    register_engine(
        "test-scripted",
        started.start,
        accepted_args=lambda: {"answer", "batch"},
        neutral_args={"batch"},
        needs_model=True,
    )
    yield started
    ENGINES.unregister("test-scripted")


SETTINGS: dict[str, Any] = {"engine": "test-scripted", "prompt_format": "plain", "prompt_type": "tora-instruct"}


def test_evaluate_runs_problems_through_a_registered_engine_and_the_real_sandbox(engine: Started, tmp_path: Path):
    result = evaluate(model="org/model", problems=PROBLEMS, store_dir=tmp_path / "store", **SETTINGS)
    assert result.accuracy == 1.0 and [r.problem.id for r in result.results] == ["t/0", "t/1"]
    for record in result.records:
        assert record["turns"][0]["observation"].strip() == "42"  # the code ran in the sandbox
        assert record["model"] == "org/model" and record["prompt_format"] == "plain" and not record["cached"]
    assert engine.settings[0].model == "org/model" and engine.settings[0].args == {}
    assert result.engine_info["kind"] == "scripted"
    # The store holds both: a rerun starts no engine and generates nothing.
    again = evaluate(model="org/model", problems=PROBLEMS, store_dir=tmp_path / "store", **SETTINGS)
    assert len(engine.settings) == 1
    assert [r["cached"] for r in again.records] == [True, True] and again.accuracy == 1.0


def test_engine_args_reach_the_engine_and_only_those_that_change_outputs_are_in_the_store_key(
    engine: Started, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    first = evaluate(model="org/model", problems=PROBLEMS[:1], store_dir=store, engine_args={"batch": 4}, **SETTINGS)
    assert engine.settings[-1].args == {"batch": 4} and first.engine_info["engine_args"] == {"batch": 4}
    # A neutral argument (batch size) leaves the key alone: served from the store.
    neutral = evaluate(model="org/model", problems=PROBLEMS[:1], store_dir=store, engine_args=["batch=8"], **SETTINGS)
    assert len(engine.settings) == 1 and neutral.records[0]["cached"]
    # One that changes what the model writes is a new key: generated again, with the argument.
    changed = evaluate(model="org/model", problems=PROBLEMS[:1], store_dir=store, engine_args=["answer=7"], **SETTINGS)
    assert len(engine.settings) == 2 and engine.settings[-1].args == {"answer": 7}
    assert not changed.records[0]["cached"] and changed.records[0]["prediction"] == "7"
    assert changed.records[0]["key"] != first.records[0]["key"] == neutral.records[0]["key"]


def test_an_unknown_engine_arg_is_one_line_before_the_engine_starts(engine: Started, tmp_path: Path) -> None:
    with pytest.raises(StartupError) as info:
        evaluate(model="org/model", problems=PROBLEMS, store_dir=tmp_path, engine_args={"answr": 1}, **SETTINGS)
    assert str(info.value) == (
        "tir-harness: --engine-arg answr: not an argument of the test-scripted engine; did you mean answer?"
    )
    assert engine.settings == []


def test_an_unknown_engine_is_one_line_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StartupError) as info:
        evaluate(model="org/model", problems=PROBLEMS, store_dir=tmp_path, engine="sglang", prompt_format="plain")
    message = str(info.value)
    assert message.startswith("tir-harness: --engine: unknown engine 'sglang'; known: ")
    assert "openai" in message and "vllm" in message and "\n" not in message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"engine_args": (("dtype", "float16"),), "dtype": "float32"},
         "tir-harness: --engine-arg dtype=\"float16\" conflicts with --dtype float32 (give one)"),
        ({"engine_args": (("seed", 3),)}, "tir-harness: --engine-arg seed: set it with --seed"),
        ({"engine_args": (("model", "x"),)}, "tir-harness: --engine-arg model: set it with --model"),
    ],
)  # fmt: skip
def test_engine_args_that_a_named_option_owns_or_contradicts_are_refused(settings: dict[str, Any], message: str):
    with pytest.raises(StartupError) as info:
        Evaluation(RunConfig(model="org/model", **settings), "run")
    assert str(info.value) == message


def test_an_engine_arg_that_agrees_with_its_shorthand_or_replaces_its_default_is_taken() -> None:
    Evaluation(RunConfig(model="m/m", dtype="float32", engine_args=(("dtype", "float32"),)), "run")
    Evaluation(RunConfig(model="m/m", engine_args=(("dtype", "bfloat16"), ("enforce_eager", True))), "run")


def test_engine_args_parse_as_json_values_or_strings() -> None:
    assert parse_engine_args(["max_num_seqs=8", "quantization=fp8", "enforce_eager=true", "x=null"]) == (
        ("max_num_seqs", 8), ("quantization", "fp8"), ("enforce_eager", True), ("x", None)
    )  # fmt: skip
    assert parse_engine_args(['{"hf_overrides": {"a": 1}, "dtype": "half"}', "swap=1.5"]) == (
        ("hf_overrides", {"a": 1}), ("dtype", "half"), ("swap", 1.5)
    )  # fmt: skip
    assert parse_engine_args(["tokenizer=a=b"]) == (("tokenizer", "a=b"),)
    for bad, message in [
        ("quantization", "--engine-arg quantization: expected KEY=VALUE or a JSON object"),
        ("{bad}", "--engine-arg {bad}: not a JSON object (Expecting property name enclosed in double quotes)"),
        ("=3", "--engine-arg =3: '' is not an argument name"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_engine_args([bad])
        assert str(info.value) == message
    with pytest.raises(ValueError, match=r"^--engine-arg dtype: given twice, as 'half' and 'float32'$"):
        parse_engine_args(["dtype=half", "dtype=float32"])


def test_evaluate_refuses_unknown_settings_in_one_line() -> None:
    with pytest.raises(TypeError, match=r"^evaluate\(\) got unknown settings: temprature; known: "):
        evaluate(model="org/model", problems=PROBLEMS, temprature=0.5)


def test_the_package_exports_the_python_api() -> None:
    for name in ("evaluate", "EvaluationResult", "Evaluation", "RunConfig", "register_engine", "ENGINES"):
        assert name in tir_harness.__all__ and hasattr(tir_harness, name)
