"""Benchmarks of the Usage Portal's performance budgets; entry point: ``bench/run.py``."""
