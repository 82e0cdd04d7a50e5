"""Benchmarks: each module measures one thing and writes JSON + PNG."""
