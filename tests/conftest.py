"""Shared test configuration.

CPython 3.11.7 can fail to compile a module late in a run ("AST constructor recursion depth
mismatch", CPython gh-106905) once Faust's agents have run. Modules of pytest plugins are
compiled by pytest's assertion rewriter when first imported, not taken from pip's ``.pyc``
files, so every module a plugin imports lazily is at risk:

- hypothesis: its pytest plugin imports it lazily at the end of a run;
- schemathesis: its xdist plugin imports its report writers in ``pytest_sessionfinish`` (a run
  without ``-n`` failed there after every test had passed), and a test's first API call imports
  the serializers (``schemathesis.specs.openapi.serialization`` failed in one CI-like run).

So both are imported here, up front: all of schemathesis's modules (~1.5 s).
"""

import contextlib
import importlib
import pkgutil

import hypothesis  # noqa: F401
import schemathesis

for _module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
    with contextlib.suppress(Exception):  # optional integrations (allure) may be missing
        importlib.import_module(_module.name)
