# The benchmark suite is run with `python -m tests.benchmarks run`, never by pytest.
collect_ignore_glob = ["*"]
