"""Shared test configuration.

hypothesis is imported here, first: its pytest plugin imports it lazily at the end of a run,
and CPython 3.11.7 then fails to compile it ("AST constructor recursion depth mismatch",
CPython gh-106905) once Faust's agents have run. Importing it up front avoids the late compile.
"""

import hypothesis  # noqa: F401
