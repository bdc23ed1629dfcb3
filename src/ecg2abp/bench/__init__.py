"""Benchmarks: each returns one dict that the CLI prints as one JSON line."""
