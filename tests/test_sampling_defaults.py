"""Sampling settings the user did not give: a reasoning model's own recommendation, else greedy and 1024 tokens.

The models are local folders holding only config files (the settings are chosen before any engine starts, so no
weights are needed); the engine is the scripted one, registered as a third party would, and it records every
request's sampling.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tir_harness import ENGINES, EngineSettings, Problem, StartupError, evaluate, register_engine
from tir_harness.engines.scripted import ScriptedEngine

PROBLEMS = [Problem(id="t/0", dataset="t", split="test", question="What is 2 + 3?", answer="5")]
THINKING_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}<think>\n"
RECOMMENDED = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 4096}


class Engines:
    def __init__(self) -> None:
        self.engines: list[ScriptedEngine] = []

    def start(self, settings: EngineSettings) -> ScriptedEngine:
        engine = ScriptedEngine(lambda request: "<think>2 + 3 = 5</think> The answer is \\boxed{5}.")
        self.engines.append(engine)
        return engine

    @property
    def sampling(self) -> list[dict[str, Any]]:
        return [r.sampling.to_dict() for e in self.engines for r in e.requests]


@pytest.fixture
def engines() -> Iterator[Engines]:
    started = Engines()
    register_engine("test-sampling", started.start, needs_model=True)
    yield started
    ENGINES.unregister("test-sampling")


def model_folder(
    root: Path, name: str, template: str | None, generation: dict[str, Any] | None, context: int | None = None
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    config: dict[str, Any] = {"model_type": "qwen2"}
    if context is not None:
        config["max_position_embeddings"] = context
    (folder / "config.json").write_text(json.dumps(config))
    if template is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    if generation is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


def run(model: Path, store: Path, **settings: Any) -> Any:
    return evaluate(model=str(model), problems=PROBLEMS, store_dir=store, engine="test-sampling",
                    prompt_format="plain", prompt_type="cot", **settings)  # fmt: skip


def sources(result: Any) -> dict[str, tuple[Any, str]]:
    chosen = result.engine_info["sampling"]
    return {name: (chosen[name]["value"], chosen[name]["source"]) for name in ("temperature", "top_p", "max_tokens")}


def test_a_reasoning_model_samples_as_its_generation_config_recommends(engines: Engines, tmp_path: Path) -> None:
    model = model_folder(tmp_path, "thinker", THINKING_TEMPLATE, RECOMMENDED)
    result = run(model, tmp_path / "store")
    assert sources(result) == {
        "temperature": (0.6, "generation_config"),
        "top_p": (0.95, "generation_config"),
        "max_tokens": (4096, "generation_config"),
    }
    assert result.engine_info["sampling"]["reasoning_model"] is True
    (record,) = result.records
    assert {k: record["sampling"][k] for k in ("temperature", "top_p", "max_tokens")} == {
        "temperature": 0.6, "top_p": 0.95, "max_tokens": 4096,
    }  # fmt: skip
    assert engines.sampling[0]["temperature"] == 0.6 and engines.sampling[0]["max_tokens"] == 4096
    assert record["correct"] and record["thinking_tokens"] == 5


def test_an_option_wins_over_the_recommendation_and_max_length_stands_in_for_max_new_tokens(
    engines: Engines, tmp_path: Path
) -> None:
    generation = {"temperature": 0.6, "top_p": 0.95, "max_length": 32768}
    model = model_folder(tmp_path, "thinker", THINKING_TEMPLATE, generation)
    result = run(model, tmp_path / "store", temperature=0.2)
    assert sources(result) == {
        "temperature": (0.2, "option"),
        "top_p": (0.95, "generation_config"),
        "max_tokens": (32768, "generation_config"),
    }


def test_a_model_that_does_not_think_keeps_todays_defaults_and_its_store_keys(engines: Engines, tmp_path: Path):
    # Its generation config recommends sampling, but only reasoning models take it: greedy as always.
    plain = model_folder(tmp_path, "plain", "{{ messages[0]['content'] }}", {"temperature": 0.9, "top_p": 0.8})
    store = tmp_path / "store"
    first = run(plain, store)
    defaults = {"temperature": (0.0, "default"), "top_p": (1.0, "default"), "max_tokens": (1024, "default")}
    assert sources(first) == defaults
    assert first.engine_info["sampling"]["reasoning_model"] is False
    # The same effective values given as options are the same run: the store serves it, nothing is generated.
    again = run(plain, store, temperature=0.0, top_p=1.0, max_tokens=1024)
    assert again.records[0]["cached"] and again.records[0]["key"] == first.records[0]["key"]
    assert len(engines.engines) == 1


@pytest.mark.parametrize("name", ["DeepSeek-R1-Distill-Qwen-1.5B", "Qwen3-0.6B", "QwQ-32B"])
def test_known_reasoning_models_are_recognised_by_name(engines: Engines, tmp_path: Path, name: str) -> None:
    model = model_folder(tmp_path, name, None, {"temperature": 0.6, "top_p": 0.95})
    assert sources(run(model, tmp_path / "store"))["temperature"] == (0.6, "generation_config")


def test_a_greedy_generation_config_recommends_no_temperature(engines: Engines, tmp_path: Path) -> None:
    model = model_folder(tmp_path, "thinker", THINKING_TEMPLATE, {"do_sample": False, "temperature": 0.6})
    assert sources(run(model, tmp_path / "store"))["temperature"] == (0.0, "default")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "generation_config.json is not JSON"),
        (json.dumps({"temperature": 7}), "generation_config.json: temperature 7 is not a number in [0, 2]"),
        (json.dumps({"top_p": 0}), "generation_config.json: top_p 0 is not a number in (0, 1]"),
        (json.dumps({"max_new_tokens": "long"}), "max_new_tokens/max_length 'long' is not a positive integer"),
    ],
)
def test_a_bad_generation_config_is_one_line_naming_it(engines: Engines, tmp_path: Path, text: str, message: str):
    model = model_folder(tmp_path, "thinker", THINKING_TEMPLATE, None)
    (model / "generation_config.json").write_text(text)
    with pytest.raises(StartupError) as info:
        run(model, tmp_path / "store")
    assert message in str(info.value) and f"--model {model}" in str(info.value) and "\n" not in str(info.value)
    assert engines.engines == []  # before any engine started


def test_a_reasoning_model_without_a_length_generates_up_to_its_context(engines: Engines, tmp_path: Path) -> None:
    # The R1 distills', Qwen3's and QwQ's generation configs give temperature and top_p but no length.
    model = model_folder(tmp_path, "thinker", THINKING_TEMPLATE, {"temperature": 0.6, "top_p": 0.95}, 32768)
    assert sources(run(model, tmp_path / "a"))["max_tokens"] == (32768, "model context")
    assert sources(run(model, tmp_path / "b", max_model_len=8192))["max_tokens"] == (8192, "model context")
    assert sources(run(model, tmp_path / "c", max_tokens=600))["max_tokens"] == (600, "option")
    # A model that does not think keeps 1024 whatever its context.
    plain = model_folder(tmp_path, "plain", "{{ messages }}", {"temperature": 0.6}, 32768)
    assert sources(run(plain, tmp_path / "d"))["max_tokens"] == (1024, "default")
