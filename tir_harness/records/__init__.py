"""Layer `records`: a trajectory as data, and where records live.

Owns the trajectory and its turns (`trajectory`), the record's fields, defined once (`fields`, which
generates the record schema in `schemas/`), the JSONL reader (`jsonl`), reading a run back (`load`), a
record's verdict (`verdict`), the result store (`store`) and the training-data export (`annotate`).  It may
import grading and util only.
"""
