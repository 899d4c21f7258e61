"""Benchmark harness: the service against a thin ceiling app, driven by wrk (see README.md)."""
