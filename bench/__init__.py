"""Benchmarks of printcloud against third-party peers (never timed tests).

`python -m bench [NAME ...] [--quick]` runs them (see `bench/README.md`); each
benchmark is a module with a `run(options, out_dir) -> bool` function,
registered in `bench/__main__.py`. `bench.harness` holds what they share:
processes started and always stopped, free loopback ports, `wrk` runs.
"""
