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

sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
# Gone already when a second copy of this file (another checkout's guard folder, also on the path) ran inside the
# import below: `del` raised KeyError there, printed by Python as "Error in sitecustomize" by every child.
sys.modules.pop("sitecustomize", None)
try:
    importlib.import_module("sitecustomize")
except ImportError:
    pass
