"""stockflow's version: its own module, so that a module the package imports (the OpenAPI
document states it) reads it without importing the package's ``__init__``. Kept equal to
``pyproject.toml``'s ``version`` (a test holds them together)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
