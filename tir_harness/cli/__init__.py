"""Layer `cli`: the `tir-harness` command and its subcommands, one module each.

Owns argv parsing, exit statuses and printing; the work is done by the layers below (analysis, records,
grading, engines, run), which it may all import.  Library modules keep no `main`.
"""

from tir_harness.cli.main import main

__all__ = ["main"]
