"""Benchmarks: commands that print and save JSON + PNG figures."""
