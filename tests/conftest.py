"""Shared test configuration.

hypothesis is imported here, first: its pytest plugin imports it lazily at the end of a run,
and CPython 3.11.7 then fails to compile it ("AST constructor recursion depth mismatch",
CPython gh-106905) once Faust's agents have run. Importing it up front avoids the late compile.
schemathesis's xdist plugin does the same in its ``pytest_sessionfinish`` (its report writers):
a run without ``-n`` failed there after every test had passed, so those are imported up front too.
"""

import contextlib

import hypothesis  # noqa: F401

with contextlib.suppress(ImportError):  # allure is optional in schemathesis
    import schemathesis.reporting.allure
import schemathesis.reporting.html.writer
import schemathesis.reporting.junitxml  # noqa: F401
