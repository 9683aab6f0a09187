"""`tir-harness prepare-model NAME`: resolve a --model once (converting a GGUF alias) and print its folder."""

from __future__ import annotations

import argparse
import json
import sys

from tir_harness.engines.models import ModelError, resolve_model


def main(argv: list[str]) -> int:
    """`tir-harness prepare-model NAME`: resolve once (converting a GGUF alias) and print the folder."""
    parser = argparse.ArgumentParser(prog="tir-harness prepare-model")
    parser.add_argument("model")
    args = parser.parse_args(argv)
    try:
        spec = resolve_model(args.model)
    except ModelError as exc:
        print(f"tir-harness: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"model": spec.name, "path": spec.path, "identity": spec.identity}))
    return 0
