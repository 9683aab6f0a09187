"""`python -m tir_harness.engines.vllm_server ARGS`: vLLM's OpenAI api_server, without mismatched torch add-ons.

The server runs in its own process, so the guard of `torch_addons` must run there too, before vLLM imports.
"""

from __future__ import annotations

import runpy

from tir_harness.engines.torch_addons import block_mismatched_addons

VLLM_MODULE = "vllm.entrypoints.openai.api_server"

if __name__ == "__main__":
    block_mismatched_addons()
    runpy.run_module(VLLM_MODULE, run_name="__main__", alter_sys=True)
