"""The package's layers: every import goes down (see tir_harness/__init__.py), never up or sideways."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tir_harness"
RANK = {
    "util": 0,
    "grading": 1,
    "engines": 1,
    "sandbox": 1,
    "records": 2,
    "run": 3,
    "analysis": 3,
    "plugin": 4,
    "cli": 4,
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tir_harness" and parts[1] in RANK else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):  # imports inside functions count as much as those at the top
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


# Beyond the ranks: the run layer drives a run without pytest, and the plugin reaches the engines and the sandbox
# only through it (so that engine, prompt format, store keys and seeds are decided in run/, never in plugin/).
FORBIDDEN = {
    "run": ("pytest", "_pytest"),
    "plugin": ("tir_harness.engines", "tir_harness.sandbox"),
}


def _forbidden(own: str, name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in FORBIDDEN.get(own, ()))


def violations(package: Path) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        own = _layer("tir_harness." + ".".join(path.relative_to(package).with_suffix("").parts))
        if own is None:
            continue  # the package's own __init__ re-exports the public API from every layer
        for lineno, name in _imports(path):
            other = _layer(name)
            if other is not None and other != own and RANK[other] >= RANK[own]:
                bad.append(f"{path.relative_to(package)}:{lineno}: layer {own} imports {name} ({other})")
            elif _forbidden(own, name):
                bad.append(f"{path.relative_to(package)}:{lineno}: layer {own} must not import {name}")
    return bad


def test_every_module_belongs_to_a_layer() -> None:
    top = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert top == set(RANK) and loose == []


def test_imports_only_go_down_the_layers() -> None:
    assert violations(PACKAGE) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "grading").mkdir()
    (tmp_path / "grading" / "bad.py").write_text("def f():\n    from tir_harness.plugin.runner import Runner\n")
    (tmp_path / "grading" / "good.py").write_text("from tir_harness.util.text import one_line\n")
    assert violations(tmp_path) == ["grading/bad.py:2: layer grading imports tir_harness.plugin.runner.Runner (plugin)"]


def test_the_check_sees_pytest_in_run_and_engines_in_plugin(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "plugin").mkdir()
    (tmp_path / "run" / "bad.py").write_text("import pytest\nfrom _pytest.config import Config\nimport pytest_xdist\n")
    (tmp_path / "plugin" / "bad.py").write_text(
        "from tir_harness.engines.vllm import VLLMEngine\n"
        "def f():\n    import tir_harness.sandbox.executor\n"
        "from tir_harness.run.evaluation import Evaluation\n"
    )
    assert violations(tmp_path) == [
        "plugin/bad.py:1: layer plugin must not import tir_harness.engines.vllm.VLLMEngine",
        "plugin/bad.py:3: layer plugin must not import tir_harness.sandbox.executor",
        "run/bad.py:1: layer run must not import pytest",
        "run/bad.py:2: layer run must not import _pytest.config.Config",
    ]


@pytest.mark.parametrize("name", sorted(RANK))
def test_each_layer_says_what_it_owns_and_may_import(name: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())) or ""
    assert f"Layer `{name}`" in doc and "import" in doc
