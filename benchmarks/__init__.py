"""The benchmark suite of abstractor-widgets: ``python -m benchmarks [--quick]`` (see run.py)."""
