"""stockflow's benchmark harness (issue 6): ``python -m bench``. Not part of the package.

See ``docs/benchmarks.md`` for what it measures and how to read it.
"""

__all__: list[str] = []
