"""tir-harness: evaluate language models on math problems with a Python tool.

The pytest plugin (`tir_harness.plugin.hooks`) is the main entry point; `evaluate` runs the same evaluation from
a script; these are the pieces it is made of, for use from scripts and other tools, and the functions that add
engines, datasets, prompt formats, prompt types and observation styles (docs/extending.md).
"""

from tir_harness.engines.base import Completion, Engine, EngineError, GenerationRequest, SamplingConfig
from tir_harness.engines.registry import ENGINES, EngineSettings, EngineType, register_engine
from tir_harness.records.trajectory import Trajectory, Turn
from tir_harness.run.api import EvaluationResult, evaluate
from tir_harness.run.datasets import DATASETS, Dataset, register_dataset
from tir_harness.run.driver import Driver
from tir_harness.run.evaluation import Evaluation, RunConfig, StartupError
from tir_harness.run.extensions import ObservationStyle, register_observation_style
from tir_harness.run.loop import LoopConfig, run_trajectory
from tir_harness.run.problems import Problem, load, load_jsonl
from tir_harness.run.prompts import (
    FORMATS,
    PROMPT_TYPES,
    Message,
    PromptFormat,
    PromptType,
    register_prompt_format,
    register_prompt_type,
)
from tir_harness.run.results import Result

__all__ = [
    "DATASETS",
    "ENGINES",
    "FORMATS",
    "PROMPT_TYPES",
    "Completion",
    "Dataset",
    "Driver",
    "Engine",
    "EngineError",
    "EngineSettings",
    "EngineType",
    "Evaluation",
    "EvaluationResult",
    "GenerationRequest",
    "LoopConfig",
    "Message",
    "ObservationStyle",
    "Problem",
    "PromptFormat",
    "PromptType",
    "Result",
    "RunConfig",
    "SamplingConfig",
    "StartupError",
    "Trajectory",
    "Turn",
    "evaluate",
    "load",
    "load_jsonl",
    "register_engine",
    "register_dataset",
    "register_observation_style",
    "register_prompt_format",
    "register_prompt_type",
    "run_trajectory",
]
