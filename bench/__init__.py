"""The benchmarks (``make bench``): run from the repository root as modules,
``python -m bench.run``, ``python -m bench.ingest``, ``python -m bench.rebuild``
and so on. Not part of the wheel (``pyproject.toml`` lists its packages)."""
