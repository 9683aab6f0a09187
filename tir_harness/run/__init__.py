"""Layer `run`: what one trajectory is and how many run at once.

Owns the problems (`problems`, the benchmark loaders and the shipped data), the prompt formats and types
(`prompts`), the TIR loop (`loop`), the scheduler that keeps trajectories in flight (`scheduler`) and what
a test sees of a solved problem (`results`).  It may import engines, sandbox, grading, records and util;
never plugin, analysis or cli.
"""
