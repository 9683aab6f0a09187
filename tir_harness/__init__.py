"""tir-harness: evaluate language models on math problems with a Python tool."""
