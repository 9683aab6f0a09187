"""Named entries of one kind (observation styles, prompt formats, datasets, engines): one `Registry` per kind.

    STYLES: Registry[ObservationStyle] = Registry("observation style", "tir_harness.observation_styles",
                                                  accepts=ObservationStyle)
    STYLES.register("full", FULL)          # built-ins, registered by the package that defines them
    STYLES.get("full")                     # RegistryError naming the known entries for an unknown name
    STYLES.names()                         # sorted; what option help and validation list

Third-party packages add entries through an entry point of the registry's group, in their pyproject.toml:

    [project.entry-points."tir_harness.observation_styles"]
    terse = "my_package.styles:TERSE"

The entry point's object is the entry itself (an instance of `accepts`), or a mapping of names to entries
(several at once), or a callable returning either.  (With the default `accepts=object` every object is an
entry: a registry of callables names its type.)  Entry points load once, lazily, on the first lookup; one that
cannot be loaded makes every lookup fail with a one-line error naming its distribution (a half-loaded registry
would silently run with a different set of entries).  A conftest.py or a test may also `register` directly.

Registries are thread-safe.  They know nothing about what they hold beyond `accepts`.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from tir_harness.util.text import exception_line

T = TypeVar("T")


class RegistryError(LookupError):
    """A one-line message for users: an unknown or duplicate name, a broken entry point."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str | None = None, accepts: type | tuple[type, ...] = object) -> None:
        self.kind = kind  # for messages: "observation style"
        self.group = group  # entry-point group, None: entries are registered in code only
        self.accepts = accepts
        self._entries: dict[str, T] = {}
        self._lock = threading.RLock()
        self._loaded = group is None
        self._load_error: RegistryError | None = None

    def register(self, name: str, entry: T) -> T:
        """Add `entry` under `name` (returned, so that a module can write `X = REGISTRY.register("x", X)`)."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise RegistryError(f"{self.kind} names must be non-empty strings without surrounding spaces, got {name!r}")
        if not isinstance(entry, self.accepts):
            raise RegistryError(f"{self.kind} {name!r}: expected {self._accepted()}, got {type(entry).__name__}")
        with self._lock:
            if name in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register one clean up with this); unknown names are an error."""
        with self._lock:
            if name not in self._entries:
                raise RegistryError(f"{self.kind} {name!r} is not registered")
            del self._entries[name]

    def get(self, name: str) -> T:
        entries = self._all()
        try:
            return entries[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(entries)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._all()))

    def items(self) -> tuple[tuple[str, T], ...]:
        return tuple(sorted(self._all().items()))

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    # A registry reads like the mapping it replaced: `FORMATS["gemma"]`, `sorted(FORMATS)`.
    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._all())

    # -- entry points

    def _all(self) -> dict[str, T]:
        with self._lock:
            if not self._loaded:
                self._load()
            if self._load_error is not None:
                raise self._load_error
            return dict(self._entries)

    def _load(self) -> None:
        """Every entry point of the group, loaded once; the first broken one is kept as the error."""
        self._loaded = True
        for point in importlib.metadata.entry_points(group=self.group or ""):
            where = _distribution(point)
            try:
                for name, entry in self._entries_of(point.name, point.load()).items():
                    if name in self._entries:
                        raise RegistryError(f"{self.kind} {name!r} is already registered")
                    self.register(name, entry)
            except Exception as exc:
                reason = str(exc) if isinstance(exc, RegistryError) else exception_line(exc)
                self._load_error = RegistryError(
                    f"entry point {point.name!r} ({point.value}) of {where}, group {self.group}: {reason}"
                )
                return

    def _entries_of(self, name: str, obj: Any) -> Mapping[str, T]:
        if isinstance(obj, self.accepts):
            return {name: obj}
        if isinstance(obj, Mapping):
            return obj
        if callable(obj):
            made = obj()
            if isinstance(made, Mapping):
                return made
            if isinstance(made, self.accepts):
                return {name: made}
            raise RegistryError(f"it returned {type(made).__name__}, not {self._accepted()} or a mapping of them")
        raise RegistryError(f"it is {type(obj).__name__}, not {self._accepted()}, a callable or a mapping")

    def _accepted(self) -> str:
        kinds = self.accepts if isinstance(self.accepts, tuple) else (self.accepts,)
        return " or ".join(k.__name__ for k in kinds)


def _distribution(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    if dist is None:
        return "an unknown distribution"
    return f"distribution {dist.metadata['Name']} {dist.version}"


__all__ = ["Registry", "RegistryError"]
