"""The reference's executor, observation for observation: a differential corpus (docs/fidelity.md, rows 9-12).

`tests/data/reference_observations.jsonl` holds model turns and what the reference implementation's own executor
and loop made of them, recorded by running the reference's code outside this project (tests/data/README.md):
snippets (one turn of code) and fence layouts (several turns, where the reference's block rule over the whole
conversation decides what runs).  Each case runs through the loop in reference mode with the real sandbox; every
observation, and the whole conversation, must be byte-identical to the recording.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tir_harness.engines.base import SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES
from tir_harness.sandbox.executor import Executor
from tir_harness.sandbox.observations import get_style

CORPUS = Path(__file__).parent / "data" / "reference_observations.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
HORIZON = 6  # the reference's default horizon, with which the corpus was recorded


@pytest.fixture(scope="module")
def executor() -> Iterator[Executor]:
    style = get_style("reference")
    with Executor(observation_style="reference", max_output_chars=style.max_output_chars, warm_workers=2) as ex:
        yield ex


def run_case(executor: Executor, case: dict):
    fmt = FORMATS[case["format"]]
    engine = ScriptedEngine.by_question({case["question"]: case["turns"]})
    sampling = SamplingConfig(max_tokens=10**6, stop=fmt.stop)
    config = LoopConfig(fmt, PROMPT_TYPES["tora"], sampling, HORIZON, execution_mode="reference")
    return run_trajectory(case["question"], config, engine, executor.session, case["id"])


def test_the_corpus_covers_enough_snippets_and_layouts() -> None:
    kinds = collections.Counter(case["kind"] for case in CASES)
    assert kinds["snippet"] >= 80 and kinds["layout"] >= 40
    assert len({case["id"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_reference_mode_reproduces_the_references_observations(executor: Executor, case: dict) -> None:
    trajectory = run_case(executor, case)
    assert [turn.observation for turn in trajectory.turns] == case["observations"]
    assert trajectory.conversation == case["conversation"]
