"""Started by every Python that a guarded tir-harness process starts (its folder leads PYTHONPATH).

vLLM inspects model classes in a fresh interpreter (`python -m vllm.model_executor.models.registry`), and
a server runs in its own: each must keep mismatched torch add-ons from loading too.  The guard module is
loaded from its file, not through `tir_harness`, so that no child pays for importing the harness.  Then
the `sitecustomize` this one shadows, if any, runs as it would have.
"""

import importlib
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
try:
    _spec = importlib.util.spec_from_file_location(
        "_tir_torch_addons", os.path.join(os.path.dirname(_HERE), "torch_addons.py")
    )
    _guard = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
    _spec.loader.exec_module(_guard)  # type: ignore[union-attr]
    _guard.block_mismatched_addons(warn=False)
except Exception:  # an interpreter must start even if the guard cannot run
    pass

# Every copy of this folder leaves the path (two checkouts' guards on one PYTHONPATH would otherwise import each
# other, and the inner one's removal of itself from sys.modules breaks the outer import: "Error in sitecustomize").
sys.path[:] = [
    p for p in sys.path
    if os.path.abspath(p or os.curdir) != _HERE and os.path.basename(os.path.abspath(p or os.curdir)) != "_addon_guard"
]
_this = sys.modules.pop("sitecustomize", None)
try:
    importlib.import_module("sitecustomize")
except ImportError:
    # None shadowed: the import machinery still expects this module under its name once it has run.
    if _this is not None:
        sys.modules["sitecustomize"] = _this
