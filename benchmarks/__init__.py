"""Benchmarks: each runs with ``python -m benchmarks.<name>`` and ends with one JSON line."""
