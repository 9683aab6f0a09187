"""The pytest plugin: options, problem parametrization, the `solve` fixture, and wiring of the run's parts.

Hooks stay thin; the state lives in two plugin objects registered in `pytest_configure`: the `Runner`
(starts the engine, solves this process's problems) and, in the controlling process only, the `Reporter`
(writes the run's files).  A benchmark test reads:

    @pytest.mark.tir_dataset("gsm8k", split="test")
    def test_gsm8k(problem, solve):
        assert solve(problem).answer == problem.answer
"""

from __future__ import annotations

import builtins
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tir_harness.plugin import options as _options
from tir_harness.plugin.reporter import Reporter, default_run_id
from tir_harness.plugin.runner import PROBLEM_FIXTURE, Runner, StartupError, Unavailable, problem_param
from tir_harness.plugin.xdist import RUN_ID_KEY, worker_input
from tir_harness.run import extensions
from tir_harness.run.datasets import DATASETS
from tir_harness.run.problems import DataError, DatasetNotFound, Problem, load, load_jsonl, splits
from tir_harness.run.results import Result
from tir_harness.util.registry import RegistryError

# The benchmark files' test (plugin/benchmark.py) asserts: rewritten, so that a wrong answer is explained.
pytest.register_assert_rewrite("tir_harness.plugin.benchmark")

runner_key = pytest.StashKey[Runner]()
reporter_key = pytest.StashKey[Reporter]()

registered_key = pytest.StashKey[dict[str, frozenset[str]]]()

# The plugin's own markers; every dataset adds its name and the markers it declares (run/datasets.py).
MARKERS = {
    "tir_dataset(name, split='test')": "parametrize `problem` with every problem of a dataset split",
    "tir_jsonl(path, **fields)": "parametrize `problem` from a JSONL file (fields: question=, answer=, id=, ...)",
}


def markers() -> dict[str, str]:
    """Every marker the harness declares: its own and the registered datasets' (a conftest's included)."""
    found = dict(MARKERS)
    for _, dataset in DATASETS.items():
        for name, help in dataset.marker_help().items():
            # A marker several sets declare (algebra: MATH, OlympiadBench, CollegeMath) names each set's meaning.
            known = found.get(name)
            if known is None:
                found[name] = help
            elif help not in known.split("; "):
                found[name] = f"{known}; {help}"
    return found


def pytest_addoption(parser: pytest.Parser) -> None:
    _options.addoption(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from tir_harness.plugin import hookspecs as hooks

    pluginmanager.add_hookspecs(hooks)
    # Only once pytest-xdist is there to call it: each worker's whole share at once, crashed workers replaced,
    # signals decided by the controller (plugin/xdist.py).
    if pluginmanager.has_plugin("xdist"):
        from tir_harness.plugin import xdist

        pluginmanager.register(xdist.XdistHooks(), "tir-harness-xdist")


# Third-party notices at engine start that a user of the harness cannot act on: torch's TorchScript deprecations
# (vLLM's dependencies script functions at import) and transformers' `torch_dtype` rename (vLLM's config loading).
QUIET_WARNINGS = (
    "ignore:`torch.jit:DeprecationWarning",
    "ignore:`torch.jit:FutureWarning",
    "ignore:TorchScript:DeprecationWarning",
    "ignore:Lite Interpreter is deprecated:DeprecationWarning",
)
QUIET_LOGS = {
    "transformers.configuration_utils": "`torch_dtype` is deprecated",
    "transformers.modeling_utils": "`torch_dtype` is deprecated",
}


class _Drop(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def _quiet_third_party(config: pytest.Config) -> None:
    for line in QUIET_WARNINGS:
        config.addinivalue_line("filterwarnings", line)  # inside tests (pytest resets filters per test)
        _, message, category = line.split(":")
        # and outside them: the engine starts in pytest_runtestloop, before the first test
        warnings.filterwarnings("ignore", message=re.escape(message), category=getattr(builtins, category))
    for name, prefix in QUIET_LOGS.items():
        logger = logging.getLogger(name)  # the logger transformers will use, filtered before it exists
        if not any(isinstance(f, _Drop) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_Drop(prefix))


def pytest_configure(config: pytest.Config) -> None:
    _quiet_third_party(config)
    # Conftests are loaded: their datasets, formats, types and styles join the registries for this session.
    before = extensions.snapshot()
    config.stash[registered_key] = before
    try:
        config.hook.pytest_tir_register(config=config)
    except RegistryError as exc:
        raise pytest.UsageError(f"tir-harness: {exc}") from None
    for marker, help_ in markers().items():
        config.addinivalue_line("markers", f"{marker}: {help_}")
    opts = _options.HarnessOptions.from_config(config)
    worker = worker_input(config)
    run_dir = Path(opts.report_dir) if opts.report_dir else config.rootpath / "reports" / default_run_id(opts.model)
    # An xdist worker stores its records under the controller's run id (its own clock may be a second later).
    runner = Runner(config, opts, (worker or {}).get(RUN_ID_KEY) or run_dir.name)
    config.stash[runner_key] = runner
    config.pluginmanager.register(runner, "tir-harness-runner")
    if worker is None and not config.option.collectonly:
        reporter = Reporter(
            config,
            opts,
            run_dir,
            aborted=runner.interrupts.abort.is_set,
            renamed=lambda run_id: setattr(runner, "run_id", run_id),
            store_path=runner.store_path,
            deferred=runner.interrupts.deferred,
            held=lambda: runner.evaluation.held,
        )
        config.stash[reporter_key] = reporter
        config.pluginmanager.register(reporter, "tir-harness-reporter")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """What the run will do: problems per dataset (the store's share is said once the run has started)."""
    runner = config.stash.get(runner_key, None)
    per_dataset: dict[str, int] = {}
    for item in items:
        problem = problem_param(item)
        if isinstance(problem, Problem):
            per_dataset[problem.dataset] = per_dataset.get(problem.dataset, 0) + 1
    if runner is None or not per_dataset:
        return None
    from tir_harness.analysis.render import collection_line

    return collection_line(per_dataset, runner.options.samples)


def pytest_unconfigure(config: pytest.Config) -> None:
    for key in (runner_key, reporter_key):
        plugin = config.stash.get(key, None)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
            del config.stash[key]
    before = config.stash.get(registered_key, None)
    if before is not None:  # a session's registrations end with it (pytester runs sessions in one process)
        extensions.forget(before)
        del config.stash[registered_key]


_MARK_CACHE: dict[str, pytest.MarkDecorator] = {}


def _marks(problem: Problem) -> tuple[pytest.MarkDecorator, ...]:
    names = [problem.dataset]
    if problem.subject:
        names.append(problem.subject)
    if problem.level is not None:
        names.append(f"level{problem.level}")
    return tuple(_MARK_CACHE.setdefault(n, getattr(pytest.mark, n)) for n in names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if PROBLEM_FIXTURE not in metafunc.fixturenames:
        return
    runner = metafunc.config.stash[runner_key]
    try:
        problems = _problems_for(metafunc, runner)
    except DatasetNotFound as exc:
        # Only an error if it is selected: `pytest benchmarks/ -k smoke` must not need every dataset.
        metafunc.parametrize(PROBLEM_FIXTURE, [pytest.param(Unavailable(f"tir-harness: {exc}"), id="unavailable")])
        return
    except DataError as exc:
        # A CollectError prints as its message alone: one line naming the file and line, no traceback.
        raise pytest.Collector.CollectError(f"tir-harness: {exc}") from None
    if problems is None:
        return
    if isinstance(problems, NotInSplit):
        metafunc.parametrize(PROBLEM_FIXTURE, [pytest.param(problems, id=f"no-{problems.split}-split")])
        return
    for name in {p.dataset for p in problems} - set(markers()) - set(_MARK_CACHE):  # a JSONL file's dataset too
        metafunc.config.addinivalue_line("markers", f"{name}: problems of the {name} dataset")
    metafunc.parametrize(
        PROBLEM_FIXTURE,
        [pytest.param(p, id=p.param_id, marks=_marks(p)) for p in problems],
    )


@dataclass(frozen=True)
class NotInSplit:
    """Stands in for a dataset that has no split `--split` asks for; such items are deselected."""

    dataset: str
    split: str


def _dataset_split(name: str, split: str = "test") -> tuple[str, str]:  # the arguments of `tir_dataset`
    return name, split


def _problems_for(metafunc: pytest.Metafunc, runner: Runner) -> list[Problem] | NotInSplit | None:
    data_dir = runner.options.data_dir
    mark = metafunc.definition.get_closest_marker("tir_dataset")
    if mark is not None:
        name, split = _dataset_split(*mark.args, **mark.kwargs)
        if runner.options.split is not None:  # --split overrides every benchmark's own split
            split = runner.options.split
            if split not in splits(name):
                return NotInSplit(name, split)
        return load(name, split, data_dir=data_dir)
    mark = metafunc.definition.get_closest_marker("tir_jsonl")
    if mark is not None:
        path = Path(mark.args[0])
        if not path.is_absolute():
            path = Path(metafunc.definition.path).parent / path
        return load_jsonl(path, **mark.kwargs)
    return None


@pytest.hookimpl(trylast=True)  # after -k, -m and --lf: a shard is a share of what they selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `--split train` over benchmarks/: datasets without a train split leave nothing to run, said as deselected.
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if isinstance(problem_param(item), NotInSplit) else kept).append(item)
    runner = config.stash.get(runner_key, None)
    shard = runner.options.shard if runner is not None else None  # the command line's, the environment's, the ini's
    if shard:  # other shards' problems, said as deselected; tests without a problem run in every shard
        from tir_harness.run.shards import parse_shard

        mine = parse_shard(shard).share(i.nodeid for i in kept if isinstance(problem_param(i), Problem))
        dropped += [i for i in kept if isinstance(problem_param(i), Problem) and i.nodeid not in mine]
        kept = [i for i in kept if not isinstance(problem_param(i), Problem) or i.nodeid in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def solve(request: pytest.FixtureRequest) -> Callable[[Problem], Result]:
    """Solve a problem with the run's model and tool; returns its `Result` (answer, records, trajectories)."""
    runner = request.config.stash[runner_key]
    return lambda problem: runner.solve(problem, request.node)


@pytest.fixture(scope="session")
def tir_engine(request: pytest.FixtureRequest) -> Any:
    """The run's engine, started once (for tests that drive it directly)."""
    runner = request.config.stash[runner_key]
    try:
        runner.start()
        runner.evaluation.start_generation()
    except StartupError as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    return runner.evaluation.engine


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    from tir_harness.grading import Answer, explain
    from tir_harness.util.text import displayable

    if op == "==" and (isinstance(left, Answer) or isinstance(right, Answer)):
        return [displayable(line) for line in explain(left, right)]  # the reason quotes the model's text
    return None
