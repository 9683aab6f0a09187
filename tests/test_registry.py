"""util/registry.py: names, errors, and entries from third-party distributions' entry points."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tir_harness.util.registry import Registry, RegistryError


class Thing:
    def __init__(self, label: str) -> None:
        self.label = label


def test_register_get_names_items() -> None:
    things: Registry[Thing] = Registry("thing", accepts=Thing)
    a = things.register("a", Thing("A"))
    things.register("b", Thing("B"))
    assert things.get("a") is a and "a" in things and "c" not in things
    assert things.names() == ("a", "b")
    assert [name for name, _ in things.items()] == ["a", "b"]


def test_errors_are_one_line_and_name_what_is_known() -> None:
    things: Registry[Thing] = Registry("thing", accepts=Thing)
    things.register("a", Thing("A"))
    with pytest.raises(RegistryError) as unknown:
        things.get("z")
    assert str(unknown.value) == "unknown thing 'z'; known: a"
    with pytest.raises(RegistryError, match="thing 'a' is already registered"):
        things.register("a", Thing("again"))
    with pytest.raises(RegistryError, match="expected Thing, got str"):
        things.register("s", "not a thing")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="non-empty"):
        things.register(" a", Thing("spaces"))
    things.unregister("a")
    with pytest.raises(RegistryError, match="known: none"):
        things.get("a")


def _distribution(root: Path, name: str, entry_points: str, module: str) -> None:
    """A distribution as pip installs it: a package and its .dist-info with entry_points.txt."""
    (root / f"{name}.py").write_text(module)
    info = root / f"{name}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(entry_points)


MODULE = """
from tests.test_registry import Thing

ONE = Thing("one")

def several():
    return {"two": Thing("two"), "three": Thing("three")}

def made():
    return Thing("made")

NOT_A_THING = 42
"""


def test_entry_points_load_lazily_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _distribution(
        tmp_path,
        "thirdparty_things",
        "[tir_harness_test.things]\none = thirdparty_things:ONE\nmany = thirdparty_things:several\n"
        "made = thirdparty_things:made\n",
        MODULE,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    things: Registry[Thing] = Registry("thing", "tir_harness_test.things", accepts=Thing)
    things.register("builtin", Thing("builtin"))  # the package's own, registered before any lookup
    assert things.names() == ("builtin", "made", "one", "three", "two")
    assert things.get("made").label == "made" and things.get("two").label == "two"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("bad = thirdparty_broken:NOT_A_THING", "it is int, not Thing, a callable or a mapping"),
        ("bad = thirdparty_broken:MISSING", "AttributeError"),
        ("bad = no_such_module_here:X", "ModuleNotFoundError"),
        ("one = thirdparty_broken:ONE", "thing 'one' is already registered"),
    ],
)
def test_a_broken_entry_point_fails_every_lookup_naming_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, says: str
) -> None:
    _distribution(tmp_path, "thirdparty_broken", f"[tir_harness_test.broken]\n{entry}\n", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    things: Registry[Thing] = Registry("thing", "tir_harness_test.broken", accepts=Thing)
    things.register("one", Thing("builtin one"))
    for _ in range(2):
        with pytest.raises(RegistryError) as failure:
            things.names()
        message = str(failure.value)
        assert "\n" not in message and "distribution thirdparty_broken 1.2" in message and says in message


def test_concurrent_first_lookups_load_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _distribution(tmp_path, "thirdparty_race", "[tir_harness_test.race]\none = thirdparty_race:ONE\n", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    things: Registry[Thing] = Registry("thing", "tir_harness_test.race", accepts=Thing)
    seen: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: seen.append(things.names())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == [("one",)] * 8
