"""Shared test configuration.

CPython 3.11.7 can fail to compile a module late in a run ("AST constructor recursion depth
mismatch", CPython gh-106905) once Faust's agents have run. Modules of pytest plugins are
compiled by pytest's assertion rewriter when first imported, not taken from pip's ``.pyc``
files, so every module a plugin imports lazily is at risk:

- hypothesis: its pytest plugin imports it lazily at the end of a run;
- schemathesis: its xdist plugin imports its report writers in ``pytest_sessionfinish`` (a run
  without ``-n`` failed there after every test had passed), and a test's first API call imports
  the serializers (``schemathesis.specs.openapi.serialization`` failed in one CI-like run).

So both are imported here, up front: all of schemathesis's modules (~1.5 s). One of them
cannot be imported here (its reporting.allure needs a package this project does not install),
and schemathesis tries it again at the end of every session, pytester's in-process ones
included: each try compiled it anew, which failed once in a clean-clone CI run; its failed
import is remembered instead (below).

hypothesis also compiles late: to describe a lambda in a strategy's repr (which it builds even
while validating a strategy, deep in a draw) it parses the whole module the lambda is in, and
that ``ast.parse`` failed the same way in a clean-clone CI run (the schema test, on a lambda of
``schemathesis.generation``). The modules whose lambdas schemathesis's strategies carry are
parsed here, at start-up, into hypothesis's own cache of parsed sources.
"""

import contextlib
import importlib
import pkgutil
import sys

import hypothesis  # noqa: F401
import schemathesis

for _module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
    try:
        importlib.import_module(_module.name)
    except ImportError:
        # An optional integration whose package is missing (allure): schemathesis tries it
        # again at every session's end, and each try compiled its source anew (the assertion
        # rewriter), which failed as above in a clean-clone CI run. A None entry makes the next
        # import fail at once, with the ImportError schemathesis expects, and no compile.
        sys.modules[_module.name] = None  # type: ignore[assignment]
    except Exception:  # any other failure: left to the tests that use the module
        pass


def _parse_lambda_sources_now() -> None:
    import ast
    import inspect

    from hypothesis.internal import lambda_sources

    for name, module in list(sys.modules.items()):
        if not name.startswith(("schemathesis.generation", "schemathesis.specs")):
            continue
        with contextlib.suppress(Exception):  # no source, or hypothesis internals moved
            # The key hypothesis looks the module up by: its lines as inspect.findsource reads
            # them for any function defined in it.
            lines = tuple(inspect.findsource(module)[0])
            if any("lambda" in line for line in lines):
                tree = ast.parse("".join(lines))
                lambda_sources.AST_LAMBDAS_CACHE[lines] = lambda_sources.extract_all_lambdas(tree)


_parse_lambda_sources_now()
