"""Benchmarks: the real server in one process, load from another, JSON lines out."""
