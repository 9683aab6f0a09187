"""tir-harness: evaluate language models on math problems with a Python tool.

The pytest plugin (`tir_harness.plugin`) is the main entry point; these are the pieces it is made of, for
use from scripts and other tools.
"""

from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.loop import LoopConfig, run_trajectory
from tir_harness.problems import Problem, load, load_jsonl
from tir_harness.prompts import FORMATS, PROMPT_TYPES, PromptFormat, PromptType
from tir_harness.results import Result
from tir_harness.scheduler import Scheduler
from tir_harness.trajectory import Trajectory, Turn

__all__ = [
    "FORMATS",
    "PROMPT_TYPES",
    "Completion",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "LoopConfig",
    "Problem",
    "PromptFormat",
    "PromptType",
    "Result",
    "SamplingConfig",
    "Scheduler",
    "Trajectory",
    "Turn",
    "load",
    "load_jsonl",
    "run_trajectory",
]
