"""Datasets, prompt formats, prompt types and observation styles are registries: everything that lists them
derives from them, and a project adds its own from a conftest.py, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tir_harness.engines.models import ALIASES
from tir_harness.plugin.benchmark import file_text
from tir_harness.plugin.hooks import markers
from tir_harness.plugin.options import OPTIONS
from tir_harness.run.datasets import DATASETS
from tir_harness.run.problems import shipped
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES, format_for_model

ROOT = Path(__file__).resolve().parent.parent


def test_every_registered_dataset_has_exactly_its_one_line_benchmark_file() -> None:
    files = {path.name: path.read_text(encoding="utf-8") for path in (ROOT / "benchmarks").glob("test_*.py")}
    assert files == {f"test_{name}.py": file_text(name) for name in DATASETS.names()}


def test_a_datasets_shipped_flag_agrees_with_the_data_manifest() -> None:
    assert {name for name, dataset in DATASETS.items() if dataset.shipped} == {
        key.split("/")[0] for key in shipped()
    }


def test_markers_derive_from_the_dataset_registry() -> None:
    declared = markers()
    for name, dataset in DATASETS.items():
        assert name in declared and set(dataset.markers) <= set(declared)
    assert {"algebra", "precalculus", "level1", "level5"} <= set(DATASETS["math"].markers)


def test_aliases_name_registered_formats_and_prompt_types() -> None:
    for name, alias in ALIASES.items():
        assert format_for_model(alias.hub_id, None, alias.prompt_format) in (*FORMATS, "chat-template"), name
        assert alias.prompt_type is None or alias.prompt_type in PROMPT_TYPES, name


def test_the_readme_option_table_lists_exactly_the_registered_options() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `--")]
    listed = {flag for cell in rows for flag in re.findall(r"`(--[a-z-]+)", cell)}
    assert listed == {option.flag for option in OPTIONS}


# -- a project's own dataset, prompt format and observation style, from its conftest.py ---------------------------

CONFTEST = r'''
from tir_harness import (Dataset, Message, ObservationStyle, Problem, PromptFormat, register_dataset,
                         register_observation_style, register_prompt_format)
from tir_harness.engines.scripted import ScriptedEngine

def parse(row, index, split):
    return Problem(f"tiny/{split}/{row['n']}", "tiny", split, row["q"], row["a"], subject=row["topic"])

SEEN = []

def respond(request):
    SEEN.append(request.prompt)
    if "<u>```output" in request.prompt:  # the observation came back in a user turn
        return "So the answer is \\boxed{" + ("1024" if "2**10" in request.prompt else "5") + "}."
    code = "print(2**10)" if "2**10" in request.prompt else "print(2+3)"
    return f"Let me compute.\n```python\n{code}\n```\n```output"

def pytest_tir_register(config):
    register_dataset(Dataset("tiny", ("test",), parse, "two tiny problems", "the `a` field",
                             answer_kind="number", markers={"arith": "arithmetic"}))
    register_prompt_format(PromptFormat("angle", "", "<u>{content}</u>", "<a>{content}</a>", "<a>",
                                        ("</a>", "```output"), system="<s>{content}</s>"))
    register_observation_style("shout", ObservationStyle(lambda execution, limit: execution.output.cut(limit).upper()
                                                         + "!", description="the output, loudly"))

def pytest_tir_make_engine(config, model):
    return ScriptedEngine(respond)

def pytest_sessionfinish(session):
    import pathlib
    pathlib.Path("prompts.json").write_text(__import__("json").dumps(SEEN))
'''

BENCH = """
from tir_harness.plugin.benchmark import dataset_test

test_tiny = dataset_test("tiny")
"""


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_tiny=BENCH)
    rows = [{"n": "a", "q": "what is 2+3?", "a": "5", "topic": "arith"},
            {"n": "b", "q": "what is 2**10?", "a": "1024", "topic": "arith"}]  # fmt: skip
    data = pytester.path / "data" / "tiny"
    data.mkdir(parents=True)
    (data / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return pytester


def test_a_conftest_adds_a_dataset_a_prompt_format_and_an_observation_style(tiny: pytest.Pytester, tmp_path):
    result = tiny.runpytest(
        "-p", "no:cacheprovider", "--strict-markers", "-m", "arith", f"--data-dir={tiny.path / 'data'}",
        "--model=scripted", "--prompt-format=angle", "--prompt-type=tora-instruct", "--exec-observations=shout",
        f"--store-dir={tmp_path / 'store'}", f"--report-dir={tmp_path / 'run'}",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    prompts = json.loads((tiny.path / "prompts.json").read_text())
    # The format wrapped the conversation, the style wrote the observation.
    assert any(p.startswith("<u>what is 2**10?") and "<u>```output\n1024\n!\n```</u><a>" in p for p in prompts)
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert {(r["problem_id"], r["prompt_format"], r["correct"]) for r in records} == {
        ("tiny/test/a", "angle", True), ("tiny/test/b", "angle", True),
    }  # fmt: skip
    assert {r["executor"]["observation_style"] for r in records} == {"shout"}


def test_an_unknown_registry_name_is_one_line_at_configure_time(tiny: pytest.Pytester) -> None:
    result = tiny.runpytest("-p", "no:cacheprovider", "--model=scripted", "--exec-observations=whisper")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --exec-observations: unknown observation style 'whisper'; known: full, qwen25-math, reference, shout"]
    )
    assert "Traceback" not in result.stderr.str()


def test_what_a_conftest_registered_is_forgotten_with_its_session(tiny: pytest.Pytester) -> None:
    tiny.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert "tiny" not in DATASETS and "angle" not in FORMATS


# -- settings from the ini file ---------------------------------------------------------------------------------------

PRINT_OPTIONS = """
import json

def pytest_collection_finish(session):
    from tir_harness.plugin.hooks import runner_key
    opts = session.config.stash[runner_key].options
    print("OPTIONS " + json.dumps({k: str(v) for k, v in vars(opts).items()}))
"""


def options_of(result: pytest.RunResult) -> dict[str, str]:
    line = next(line for line in result.outlines if line.startswith("OPTIONS "))
    return json.loads(line.removeprefix("OPTIONS "))


def test_every_option_can_be_set_in_pyproject_and_the_command_line_wins(pytester, monkeypatch) -> None:
    monkeypatch.delenv("TIR_MODEL", raising=False)
    monkeypatch.delenv("TIR_STORE_DIR", raising=False)
    pytester.makeconftest(PRINT_OPTIONS)
    pytester.makepyfile(test_x="def test_x(): pass")
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        tir_model = "from-ini"
        tir_max_tokens = "256"
        tir_temperature = "0.7"
        tir_refresh = "true"
        tir_exec_observations = "reference"
        tir_store_dir = "store"
        tir_server_url = "http://localhost:9/v1"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-s", "--max-tokens=64")
    opts = options_of(result)
    assert opts["model"] == "from-ini" and opts["temperature"] == "0.7" and opts["refresh"] == "True"
    assert opts["exec_observations"] == "reference" and opts["max_tokens"] == "64"  # the command line won
    assert opts["store_dir"] == str(pytester.path / "store")  # relative to the ini file
    assert opts["server_urls"] == "('http://localhost:9',)"  # normalized as --server-url is
    monkeypatch.setenv("TIR_MODEL", "from-env")  # an option's environment variable beats the ini file
    assert options_of(pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-s"))["model"] == "from-env"


def test_a_bad_ini_value_is_one_line_naming_the_setting(pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    pytester.makeini("[pytest]\ntir_max_tokens = 0\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tir_max_tokens (tox.ini): must be at least 1, got 0"])
