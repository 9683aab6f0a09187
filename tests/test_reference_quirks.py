"""--reference-quirks: the model's input and output as the reference's own run had them (docs/fidelity.md, "Quirks").

The token ids are those of the real Gemma 3 tokenizer (the converted test model; no other model's tokenizer can
be fetched here).  The reference passed the prompt *text* to vLLM, whose tokenizer adds a BOS before the one the
text already carries; Mistral's and Llama 3's texts carry theirs the same way, and the request flags that decide
it are checked for every format.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tir_harness.engines.base import GenerationRequest, SamplingConfig
from tir_harness.engines.scripted import ScriptedEngine
from tir_harness.engines.vllm import VLLMEngine
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES

QUESTION = "What is 20+1?"


def _first_request(fmt: str, quirks: bool) -> GenerationRequest:
    sent: list[GenerationRequest] = []

    def respond(request: GenerationRequest) -> str:
        sent.append(request)
        return "The answer is \\boxed{21}."

    config = LoopConfig(FORMATS[fmt], PROMPT_TYPES["tora"], SamplingConfig(stop=FORMATS[fmt].stop),
                        reference_quirks=quirks)  # fmt: skip
    run_trajectory(QUESTION, config, ScriptedEngine(respond, threaded=False), new_session=None)  # type: ignore[arg-type]
    return sent[0]


def _token_ids(request: GenerationRequest, tokenizer) -> list[int]:
    """The ids the in-process vLLM engine hands to vLLM for this request (its own code path)."""
    return VLLMEngine._token_ids(SimpleNamespace(_history={}), request, tokenizer)  # type: ignore[arg-type]


def test_quirks_send_the_references_token_ids_double_bos_included(gemma) -> None:
    from transformers import AutoTokenizer

    tokenizer, fmt = AutoTokenizer.from_pretrained(gemma), "gemma"
    bos = tokenizer.bos_token_id
    quirky, fixed = _first_request(fmt, True), _first_request(fmt, False)
    assert quirky.prompt == fixed.prompt  # the text is the reference's either way; only its tokenization differs
    # The reference: vLLM's generate() on the text, i.e. the tokenizer's default (special tokens added).
    reference = tokenizer(quirky.prompt)["input_ids"]
    assert reference[:2] == [bos, bos] and reference[2] != bos
    assert _token_ids(quirky, tokenizer) == reference
    # The harness's default: the one BOS the text carries.
    ids = _token_ids(fixed, tokenizer)
    assert ids[0] == bos and ids[1] != bos and ids == reference[1:]


@pytest.mark.parametrize("fmt", ["gemma", "mistral", "llama3", "deepseek"])
def test_quirks_ask_for_the_servers_special_token_skipping(fmt: str) -> None:
    quirky, fixed = _first_request(fmt, True), _first_request(fmt, False)
    assert quirky.add_special_tokens and quirky.skip_special_tokens
    assert not fixed.skip_special_tokens
    # DeepSeek's text has no BOS of its own: the tokenizer adds the one BOS either way.
    assert fixed.add_special_tokens == (fmt == "deepseek")



CONFTEST = """
import json, pathlib
from tir_harness.engines.scripted import ScriptedEngine

LOG = pathlib.Path(__file__).parent / "requests.jsonl"

def pytest_tir_make_engine(config, model):
    def respond(request):
        with LOG.open("a") as log:
            log.write(json.dumps({"bos": request.add_special_tokens, "skip": request.skip_special_tokens,
                                  "seed": request.sampling.seed}) + "\\n")
        return "The answer is \\\\boxed{21}."
    return ScriptedEngine(respond)
"""
BENCH = """
import pytest

@pytest.mark.tir_jsonl("problems.jsonl", id="id")
def test_quirks(problem, solve):
    assert solve(problem).answer == problem.answer
"""


def _run(pytester: pytest.Pytester, store, *options: str) -> tuple[list[dict], set[str]]:
    log = pytester.path / "requests.jsonl"
    log.unlink(missing_ok=True)
    reports = pytester.path / f"run{len(list(pytester.path.glob('run*')))}"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--store-dir={store}", f"--report-dir={reports}",
        "--model=scripted", "--prompt-format=gemma", "--seed=3", "--samples=2", *options,
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()[-2000:]
    keys = {json.loads(line)["key"] for line in (reports / "trajectories.jsonl").read_text().splitlines()}
    sent = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return sent, keys


def test_the_quirks_switch_reaches_every_request_and_keys_its_own_results(pytester: pytest.Pytester, tmp_path) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_bench=BENCH)
    pytester.path.joinpath("problems.jsonl").write_text(json.dumps({"id": "one", "question": "Q?", "answer": "21"}))
    store = tmp_path / "store"
    fixed, fixed_keys = _run(pytester, store)
    assert [(e["bos"], e["skip"]) for e in fixed] == [(False, False)] * 2
    assert sorted(e["seed"] for e in fixed) == [3 * 2**20, 3 * 2**20 + 1]  # each sample its own seed
    quirky, quirky_keys = _run(pytester, store, "--reference-quirks")
    assert [(e["bos"], e["skip"]) for e in quirky] == [(True, True)] * 2
    assert [e["seed"] for e in quirky] == [3, 3]  # the reference's one seed for every sample
    # Results of one kind never stand in for the other's: the quirks' run generated its own, and each rerun
    # is served from the store.
    assert len(quirky_keys) == 2 and not quirky_keys & fixed_keys
    assert _run(pytester, store, "--reference-quirks") == ([], quirky_keys)
    assert _run(pytester, store) == ([], fixed_keys)
