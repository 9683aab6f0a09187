"""Layer `util`: small helpers every layer may use: one-line messages, text sanitising, atomic writes.

The bottom layer: it may import nothing else from tir_harness.
"""
