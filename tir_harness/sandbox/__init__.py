"""Layer `sandbox`: running the model's code where it can neither cheat nor escape, and what the model sees of it.

Owns the executor and its sessions (`executor`), what a call did (`execution`: a frozen `Execution`), the
observation styles that render it (`observations`: a registry; `reference`: the reference implementation's
executor, replayed by `Session.replay`), the isolation the machine offers (`isolation`), and the worker script
the zygote runs (`worker`, started as a separate program and never imported by the harness).  It may import
util only.
"""
