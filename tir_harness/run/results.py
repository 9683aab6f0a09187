"""A graded trajectory as a report record, and what a benchmark test sees of a problem's samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tir_harness.records.trajectory import SCHEMA_VERSION, Trajectory
from tir_harness.records.verdict import regraded
from tir_harness.run.problems import Problem

if TYPE_CHECKING:
    from tir_harness.grading import Answer


@dataclass(frozen=True)
class RunContext:
    """What every record of a run shares (plain builtins only: records cross process boundaries)."""

    run_id: str
    model: str
    prompt_format: str
    prompt_type: str
    max_tool_calls: int
    executor: dict[str, Any]


def make_record(
    problem: Problem, sample: int, trajectory: Trajectory, context: RunContext, key: str, sampling: dict[str, Any]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": context.run_id,
        "test_id": "",
        "problem_id": problem.id,
        "dataset": problem.dataset,
        "split": problem.split,
        "subject": problem.subject,
        "level": problem.level,
        "sample": sample,
        "question": problem.question,
        "gold": problem.answer,
        "model": context.model,
        "prompt_format": context.prompt_format,
        "prompt_type": context.prompt_type,
        "sampling": sampling,  # per sample: each has its own seed
        "max_tool_calls": context.max_tool_calls,
        "executor": context.executor,
        **trajectory.to_dict(),
        "key": key,
        "cached": False,
    }
    return regraded(record, problem.dataset, answer_kind=problem.answer_kind)


@dataclass(frozen=True)
class Result:
    """A problem's outcome across its samples; `answer` is the majority vote (the only one, with one sample)."""

    problem: Problem
    records: Sequence[dict[str, Any]]

    @property
    def answer(self) -> Answer:
        from tir_harness.grading import Answer

        return Answer(majority([r["prediction"] for r in self.records]))

    @property
    def correct(self) -> bool:
        return self.answer == self.problem.answer


def majority(predictions: Sequence[str | None]) -> str | None:
    """The most common answer by mathematical equivalence; ties go to the answer seen first."""
    from tir_harness.grading import equivalent

    groups: list[tuple[str, int]] = []
    for pred in predictions:
        if pred is None:
            continue
        for i, (representative, count) in enumerate(groups):
            if equivalent(pred, representative):
                groups[i] = (representative, count + 1)
                break
        else:
            groups.append((pred, 1))
    if not groups:
        return None
    return max(groups, key=lambda group: group[1])[0]
