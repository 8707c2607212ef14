"""Benchmarks: scripts over library calls, each printing JSON; run from the repository root as modules,
``.venv/bin/python -m benchmarks.NAME`` (so that ``benchmarks.*`` and ``tests.bad_inputs`` import).
"""
