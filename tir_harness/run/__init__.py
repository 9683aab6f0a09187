"""Layer `run`: what a run is, and how it is driven.

Owns the run itself (`evaluation`: the pytest-free `Evaluation` that decides engine, prompt format and type,
sandbox and loop settings, store keys and seeds, and drives the run; `api`: `tir_harness.evaluate`), where
engine and sandbox output is made safe (`boundary`), the problems (`problems`, the benchmark loaders and the
shipped data), the prompt formats and types (`prompts`), the TIR loop (`loop`), the driver that keeps
trajectories in flight without a thread each (`driver`, sized by `scheduler`) and what a test sees of a solved
problem (`results`). It may import engines, sandbox, grading, records and util; never plugin, analysis or cli,
and never pytest (a run works without it).
"""
