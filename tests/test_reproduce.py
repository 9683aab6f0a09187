"""Published checkpoints as aliases and `tir-harness reproduce` (run/published.json, analysis/reproduction.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tir_harness.analysis.summary import summarize
from tir_harness.cli.main import main
from tir_harness.engines.models import ALIASES, resolve_model
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES, format_for_model
from tir_harness.run.published import checkpoints

PUBLISHERS = ("RLHF4MATH/", "llm-agents/", "Qwen/")


def test_the_published_file_and_the_aliases_agree() -> None:
    published = {c.alias: c for c in checkpoints()}
    assert published, "no published checkpoints"
    for alias, checkpoint in published.items():
        entry = ALIASES[alias]
        assert (entry.hub_id, entry.prompt_format, entry.prompt_type) == (
            checkpoint.hub_id, checkpoint.prompt_format, checkpoint.prompt_type,
        ), alias  # fmt: skip
        assert checkpoint.prompt_format in FORMATS and checkpoint.prompt_type in PROMPT_TYPES
        spec = resolve_model(alias)
        assert spec.path == checkpoint.hub_id and format_for_model(spec.path, None, spec.prompt_format) == (
            checkpoint.prompt_format
        )
    # Every alias of a published checkpoint has its published numbers (a gap included).
    assert {a for a, e in ALIASES.items() if e.hub_id.startswith(PUBLISHERS)} == set(published)


def test_every_number_has_a_source_and_every_gap_says_why() -> None:
    for checkpoint in checkpoints():
        assert checkpoint.published, checkpoint.alias
        for entry in checkpoint.published:
            assert entry.source.strip(), (checkpoint.alias, entry.dataset)
            if entry.accuracy is None:
                assert entry.source.startswith("not found"), (checkpoint.alias, entry.dataset)
            else:
                assert 0 < entry.accuracy < 100


def test_reproduce_lists_every_alias_with_its_numbers_and_sources(capsys) -> None:
    assert main(["reproduce"]) == 0
    out = capsys.readouterr().out
    for checkpoint in checkpoints():
        assert f"  {checkpoint.alias}  ({checkpoint.hub_id}" in out
    assert "    gsm8k     77.5  arXiv 2409.02392 abstract / OpenReview WjKea8bGFF" in out
    assert "    math      85.3  QwenLM/Qwen2.5-Math README (tool-integrated reasoning)" in out
    assert "    math      44.6  microsoft/ToRA README (greedy)" in out


def test_reproduce_prints_the_pytest_command_of_the_reference_settings(capsys) -> None:
    assert main(["reproduce", "gemma-7b-it-sft3epoch", "--dataset", "gsm8k"]) == 0
    out = capsys.readouterr().out
    assert (
        "  pytest benchmarks/test_gsm8k.py --model gemma-7b-it-sft3epoch --prompt-format gemma --prompt-type tora "
        "--temperature 0 --max-tokens 1024 --max-tool-calls 4\n"
    ) in out
    assert main(["reproduce", "qwen2.5-math-7b-instruct"]) == 0  # its first published dataset: math
    assert "pytest benchmarks/test_math.py --model qwen2.5-math-7b-instruct --prompt-format qwen25-math" in (
        capsys.readouterr().out
    )


def _run(folder: Path, correct: int, n: int = 1000, *, calls: int = 4, model: str = "gemma-7b-it-sft3epoch") -> Path:
    """A synthetic finished run: `correct` of `n` GSM8K problems right, its summary.json as the plugin writes it."""
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0, "stop": []}
    records = [
        {"problem_id": f"gsm8k/test/{i:04d}", "dataset": "gsm8k", "sample": 0, "correct": i < correct,
         "model": model, "prompt_format": "gemma", "prompt_type": "tora", "sampling": sampling,
         "max_tool_calls": calls}
        for i in range(n)
    ]  # fmt: skip
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summarize(records)))
    return folder


@pytest.mark.parametrize(
    ("correct", "verdict", "status", "difference", "interval"),
    [
        # 775/1000 against 77.5: Wilson 95% interval [74.81, 79.98] (by hand: centre 0.77395, half 0.025853).
        (775, "reproduced", 0, "+0.0", "[-2.7, +2.5]"),
        (700, "below", 1, "-7.5", "[-10.4, -4.7]"),  # [67.09, 72.76]
        (850, "above", 1, "+7.5", "[+5.2, +9.6]"),  # [82.65, 87.08]
    ],
)
def test_a_run_is_compared_with_the_published_number(tmp_path, capsys, correct, verdict, status, difference, interval):
    run = _run(tmp_path / "run", correct)
    assert main(["reproduce", "gemma-7b-it-sft3epoch", "--dataset", "gsm8k", "--run", str(run)]) == status
    out = capsys.readouterr().out
    assert f"difference {difference} points, 95% interval {interval}" in out
    assert "published 77.5% (arXiv 2409.02392 abstract / OpenReview WjKea8bGFF)" in out
    assert out.rstrip().endswith(f"verdict: {verdict}") and "setting differs" not in out


def test_settings_that_differ_from_the_authors_are_named(tmp_path, capsys) -> None:
    run = _run(tmp_path / "run", 775, calls=6, model="google/gemma-1.1-7b-it")
    assert main(["reproduce", "gemma-7b-it-sft3epoch", "--dataset", "gsm8k", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "setting differs: max tool calls 6 (published: 4)" in out
    assert "setting differs: model google/gemma-1.1-7b-it (published: gemma-7b-it-sft3epoch or " in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "nope"], "unknown alias 'nope'; known: gemma-7b-it-sft3epoch, "),
        (["reproduce", "tora-7b", "--dataset", "svamp"], "tora-7b: no published number for dataset 'svamp'"),
        (["reproduce", "mistral-7b-pt-sft2epoch", "--run", "RUN"], "mistral-7b-pt-sft2epoch on gsm8k: no published"),
        (["reproduce", "tora-7b", "--dataset", "math", "--run", "RUN"], "the run has no math problems (datasets in"),
        (["reproduce", "tora-7b", "--run", "MISSING"], "missing: not found (give a finished run's folder)"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, message) -> None:
    run = _run(tmp_path / "run", 10, n=20)
    argv = [str(run) if a == "RUN" else str(tmp_path / "missing") if a == "MISSING" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tir-harness reproduce: error: ") and message in err and err.count("\n") == 1
