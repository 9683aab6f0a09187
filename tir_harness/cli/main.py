"""`tir-harness`: the commands that run outside pytest.

Each subcommand lives in the module of its concept and is imported only when called, so that
`tir-harness regrade` does not pay for vLLM and `tir-harness serve` does not pay for sympy.
"""

from __future__ import annotations

import importlib
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "regrade": ("tir_harness.cli.regrade:main", "re-grade a JSONL of responses or a report"),
    "report": ("tir_harness.cli.report:main", "rebuild summaries and plots from trajectories.jsonl"),
    "compare": ("tir_harness.cli.compare:main", "compare two runs: paired accuracy, flips, McNemar"),
    "merge": ("tir_harness.cli.merge:main", "join the runs of --shard I/N into one run folder (summary, report, gate)"),
    "annotate": ("tir_harness.cli.annotate:annotate_main", "export trajectories as chat training data"),
    "pairs": ("tir_harness.cli.annotate:pairs_main", "build preference pairs (correct vs incorrect)"),
    "serve": ("tir_harness.cli.serve:main", "start one vLLM OpenAI server per GPU (group)"),
    "reproduce": ("tir_harness.cli.reproduce:main", "published checkpoints: their numbers, command, a run's verdict"),
    "prepare-model": ("tir_harness.cli.prepare_model:main", "resolve a --model alias once (e.g. convert a GGUF)"),
}


def _usage() -> str:
    lines = ["usage: tir-harness COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Evaluation itself runs under pytest: pytest benchmarks/ --model NAME"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a mistake, like any usage error: help on stderr, status 2
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tir-harness: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        status = int(func(rest) or 0)
        sys.stdout.flush()  # inside the try: a reader that has gone is noticed here, not at exit
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tir-harness regrade X | head`: the reader took what it wanted and left; stop quietly, as `cat` does.
        # What is still buffered would raise again when Python flushes stdout at exit: send it nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
