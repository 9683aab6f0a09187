"""Project-wide pytest configuration.

The tir-harness plugin itself is loaded through its `pytest11` entry point, so benchmark files need no
boilerplate; this file only keeps generated reports out of collection.
"""

collect_ignore = ["reports"]
