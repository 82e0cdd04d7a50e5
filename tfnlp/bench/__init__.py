"""Benchmarks: each module runs one, prints a summary and writes JSON + a PNG chart."""
