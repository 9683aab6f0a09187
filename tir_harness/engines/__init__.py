"""Layer `engines`: where the model's text comes from.

Owns the engine interface (`base`), the engines by name (`registry`: `ENGINES`, `register_engine`), in-process
vLLM (`vllm`), OpenAI-compatible servers (`openai`), the scripted test double (`scripted`), what `--model` names
(`models`) and launching vLLM servers (`serve`).  It may import util only.  Each engine is imported only when
used, so nothing here pulls in vLLM or torch.
"""

from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig

__all__ = ["Completion", "Engine", "EngineError", "GenerationRequest", "SamplingConfig"]
