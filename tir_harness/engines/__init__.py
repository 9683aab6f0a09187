"""Engines: in-process vLLM (`vllm`), OpenAI-compatible servers (`openai`), and a scripted test double.

Each is imported only when used, so that nothing here pulls in vLLM or torch.
"""

from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig

__all__ = ["Completion", "Engine", "EngineError", "GenerationRequest", "SamplingConfig"]
