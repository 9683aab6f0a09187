"""What every subcommand shares: an argument parser whose errors are one line, for `main` to print."""

from __future__ import annotations

import argparse
from typing import NoReturn


class UsageError(ValueError):
    """Bad command-line input; the message is one line."""


class Parser(argparse.ArgumentParser):
    """argparse that reports bad options as a `UsageError` and lets the command choose the exit status."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")
