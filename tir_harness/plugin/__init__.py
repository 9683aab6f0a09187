"""Layer `plugin`: the pytest glue, and nothing else.

Owns the options (`options`), the hooks (`hooks`, the `pytest11` entry point), the hook specifications
it adds (`hookspecs`), the per-process `Runner` that turns options, collected items and results into calls on
the run layer's `Evaluation` and back into test reports, the run's signals (`guard`), the controller's
`Reporter` that writes the run's files, the manifest, and the pytest-xdist scheduler.  It may import run,
grading, records, analysis and util; not engines or sandbox, which it reaches through run only (the run
decides engine, prompt format, store keys and seeds).  Nothing imports it.
"""
