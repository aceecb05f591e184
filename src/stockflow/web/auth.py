"""Bearer-token access to the worker's HTTP API (``STOCKFLOW_HTTP_TOKEN``).

With a token set, every write (any method but GET, HEAD and OPTIONS) needs
``Authorization: Bearer <token>``; without it the answer is 401 and the view never runs, so
nothing is sent to the broker. Reads stay open unless ``STOCKFLOW_HTTP_TOKEN_READS`` is true;
the probes ``/health`` and ``/ready`` always stay open. The token is compared in constant
time and never logged (the worker's web server keeps no access log, and the token lives in a
``SecretStr``). Workers forward reads to each other with the caller's ``Authorization``
header (:mod:`stockflow.web.routing`), so every worker needs the same token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from stockflow.settings import Settings

if TYPE_CHECKING:
    from aiohttp.web import Application

__all__ = ["OPEN_PATHS", "READ_METHODS", "authorized", "install_auth", "needs_token"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/health", "/ready"})
"""Probes: a load balancer or Kubernetes must reach them without a secret."""


def needs_token(method: str, path: str, *, reads_closed: bool) -> bool:
    if path in OPEN_PATHS:
        return False
    return method.upper() not in READ_METHODS or reads_closed


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def install_auth(web_app: Application, settings: Settings) -> None:
    """Add the check to an aiohttp application (before it starts); nothing without a token."""
    if settings.http_token is None:
        return
    from aiohttp import web

    secret = settings.http_token
    reads_closed = settings.http_token_reads

    @web.middleware
    async def bearer_token(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if needs_token(request.method, request.path, reads_closed=reads_closed) and not (
            authorized(request.headers.get("Authorization"), secret.get_secret_value())
        ):
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <token>"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="stockflow"'},
            )
        return await handler(request)

    web_app.middlewares.append(bearer_token)
