"""tir-harness: evaluate language models on math problems with a Python tool.

The pytest plugin (`tir_harness.plugin.hooks`) is the main entry point; these are the pieces it is made of, for
use from scripts and other tools.
"""

from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.records.trajectory import Trajectory, Turn
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.problems import Problem, load, load_jsonl
from tir_harness.run.prompts import FORMATS, PROMPT_TYPES, PromptFormat, PromptType
from tir_harness.run.results import Result
from tir_harness.run.scheduler import Scheduler

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
