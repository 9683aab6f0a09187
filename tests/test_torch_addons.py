"""A torch add-on built for another torch is kept from loading; a matching one is left alone.

Each case runs in a fresh interpreter whose path starts with a folder of fake distributions: a torch
`2.13.0+cpu` and a torchvision whose import fails the way PyPI's CUDA build fails beside a CPU torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHECK = textwrap.dedent(
    """
    import importlib.util, sys
    from tir_harness.engines.torch_addons import block_mismatched_addons
    blocked = block_mismatched_addons(warn=True)
    print("blocked", blocked)
    print("spec", importlib.util.find_spec("torchvision") is not None)
    try:
        import torchvision
    except ImportError:
        print("import ImportError")
    except RuntimeError as exc:
        print("import RuntimeError", exc)
    else:
        print("import ok")
    # A Python this one starts (as vLLM starts one to inspect a model class) is guarded too.
    import subprocess
    child = "import importlib.util; print('child spec', importlib.util.find_spec('torchvision') is not None)"
    print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60).stdout.strip())
    """
)


def _site(tmp_path: Path, torch: str, torchvision: str) -> Path:
    site = tmp_path / "site"
    # The other add-ons match torch here, so that whatever this machine has installed does not count.
    tag = torch.partition("+")[1] + torch.partition("+")[2]
    versions = (
        ("torch", torch),
        ("torchvision", torchvision),
        ("torchaudio", f"2.0{tag}"),
        ("torchcodec", f"0.1{tag}"),
    )
    for name, version in versions:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (site / "torchvision").mkdir()
    (site / "torchvision" / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    return site


def _run(site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, env=env)


def test_a_cuda_torchvision_beside_a_cpu_torch_is_kept_from_loading(tmp_path: Path) -> None:
    result = _run(_site(tmp_path, "2.13.0+cpu", "0.28.0"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "blocked ['torchvision 0.28.0']",
        "spec False",
        "import ImportError",
        "child spec False",
    ]
    notice = [line for line in result.stderr.splitlines() if "tir-harness" in line]
    assert notice == [
        "tir-harness: not loading torchvision 0.28.0 (built for another torch than 2.13.0+cpu; "
        "text models do not need it)"
    ]


@pytest.mark.parametrize(("torch", "torchvision"), [("2.13.0+cpu", "0.28.0+cpu"), ("2.13.0", "0.28.0")])
def test_a_matching_build_is_left_alone(tmp_path: Path, torch: str, torchvision: str) -> None:
    result = _run(_site(tmp_path, torch, torchvision))
    assert result.stdout.splitlines() == [
        "blocked []",
        "spec True",
        "import RuntimeError operator torchvision::nms does not exist",
        "child spec True",
    ]



@pytest.mark.parametrize("site", [False, True], ids=["alone", "before-a-sitecustomize"])
def test_two_copies_of_the_guard_on_the_path_start_an_interpreter_cleanly(tmp_path: Path, site: bool) -> None:
    """Two checkouts (a worktree and the installed one) can each put their guard on PYTHONPATH: a child must
    start without "Error in sitecustomize", and a sitecustomize of the environment still runs after them."""
    guard = Path(__file__).resolve().parent.parent / "tir_harness" / "engines" / "_addon_guard" / "sitecustomize.py"
    path = []
    for name in ("one", "two"):
        folder = tmp_path / name / "_addon_guard"
        folder.mkdir(parents=True)
        (folder / "sitecustomize.py").write_text(guard.read_text())
        path.append(str(folder))
    if site:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text("import builtins\nbuiltins.SITE_RAN = True\n")
        path.append(str(tmp_path / "site"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    code = "import builtins; print(getattr(builtins, 'SITE_RAN', False))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert (done.stdout, done.stderr) == (f"{site}\n", "")
