"""Layer `sandbox`: running the model's code where it can neither cheat nor escape.

Owns the executor and its sessions (`executor`), the isolation the machine offers (`isolation`), and the
worker script the zygote runs (`worker`, started as a separate program and never imported by the
harness).  It may import util only.
"""
