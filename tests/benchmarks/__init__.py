"""The benchmark suite (issue 6): this hub side by side with its peers.

Not part of the pass/fail tests: run it with
``.venv/bin/python -m tests.benchmarks run`` (see README, "Benchmarks").
"""
