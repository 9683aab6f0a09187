"""Layer `plugin`: the pytest glue, and nothing else.

Owns the options (`options`), the hooks (`hooks`, the `pytest11` entry point), the hook specifications
it adds (`hookspecs`), the per-process `Runner` that starts the run's parts and solves the selected
problems, the controller's `Reporter` that writes the run's files, the manifest, and the pytest-xdist
scheduler.  It may import every layer below it: run, engines, sandbox, grading, records, analysis, util.
Nothing imports it.
"""
