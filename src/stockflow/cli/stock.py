"""``stockflow stock`` and ``stockflow order``: the read model from the command line.

Examples::

    stockflow stock sku-1                            # any worker; it forwards to the owner
    stockflow stock sku-1 --url http://worker-2:6066 --json
    stockflow order o-1

Exit status: 0 found, 1 unknown id (HTTP 404), 3 the worker could not answer (one line on
stderr says which URL was tried and what to do).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["DEFAULT_URL", "fetch", "order", "stock"]

DEFAULT_URL = "http://127.0.0.1:6066"
EXIT_UNKNOWN = 1
EXIT_UNREACHABLE = 3

_F = TypeVar("_F", bound=Callable[..., Any])

_url_option = click.option(
    "--url",
    envvar="STOCKFLOW_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Any stockflow worker's web server [env STOCKFLOW_URL].",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer.")
_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)


def _answer_options(command: _F) -> _F:
    """``--url``, ``--json`` and ``--timeout``: what every read-model command takes."""
    return _url_option(_json_option(_timeout_option(command)))


def fetch(url: str, path: str, ident: str, *, timeout: float) -> tuple[int, Any]:
    """``(HTTP status, parsed JSON body)`` of ``GET {url}/{path}/{ident}``; raises ``OSError``
    when the worker cannot be reached or does not answer JSON."""
    target = f"{url.rstrip('/')}/{path}/{urllib.parse.quote(ident, safe='')}"
    request = urllib.request.Request(target, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            raise OSError(f"{target}: HTTP {exc.code}") from exc
    except ValueError as exc:
        raise OSError(f"{target}: not a JSON answer") from exc


def _answer(url: str, path: str, ident: str, timeout: float) -> Any:
    from stockflow.cli.reach import worker_unreachable

    try:
        status, body = fetch(url, path, ident, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        ctx = click.get_current_context()
        source = ctx.get_parameter_source("url")
        where = "the default"
        if source is click.core.ParameterSource.COMMANDLINE:
            where = "from --url"
        elif source is click.core.ParameterSource.ENVIRONMENT:
            where = "from STOCKFLOW_URL"
        worker_unreachable(ctx.info_name or path, url, where, exc)
    if status == 404:
        click.echo(f"stockflow: {body.get('error', 'not found')}: {ident}", err=True)
        raise SystemExit(EXIT_UNKNOWN)
    if status != 200:
        click.echo(f"stockflow: HTTP {status}: {json.dumps(body)}", err=True)
        raise SystemExit(EXIT_UNREACHABLE)
    return body


def _freshness_rows(freshness: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("partition", str(freshness.get("partition")))]
    if "offset" in freshness:
        rows.append(("last event offset", _text(freshness.get("offset"))))
        rows.append(("last event time", _text(freshness.get("event_time"))))
    rows.append(("lag (records)", _text(freshness.get("lag"))))
    for topic in freshness.get("topics", ()):
        rows.append(
            (f"  {topic['topic']}", f"position {topic['position']}, lag {_text(topic['lag'])}")
        )
    rows.append(("served by", _text(freshness.get("served_by"))))
    if freshness.get("active") is False:
        rows.append(("note", "answered from a standby copy"))
    return rows


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _show(
    title: str, body: Any, as_json: bool, rows: Callable[[Any], list[tuple[str, str]]]
) -> None:
    """The worker's answer as raw JSON, or as a table: ``rows(body)``, then its freshness."""
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in [*rows(body), *_freshness_rows(body.get("freshness", {}))]:
        table.add_row(name, value)
    Console().print(table)


def _stock_rows(body: Any) -> list[tuple[str, str]]:
    return [
        ("on hand", str(body["on_hand"])),
        ("reserved", str(body["reserved"])),
        ("available", str(body["available"])),
    ]


def _order_rows(body: Any) -> list[tuple[str, str]]:
    rows = [("status", body["status"])]
    if body.get("rejection"):
        rows.append(("rejection", body["rejection"]))
    rows.append(("expires at", _text(body.get("expires_at"))))
    for line in body.get("lines", ()):
        detail = f"{line['quantity']} x {line['answer']}"
        if line.get("reason"):
            detail += f" ({line['reason']})"
        if line.get("action") not in (None, "none", "reserve"):
            detail += f", {line['action']}"
        rows.append((f"line {line['product_id']}", detail))
    return rows


@click.command()
@click.argument("product_id")
@_answer_options
def stock(product_id: str, url: str, as_json: bool, timeout: float) -> None:
    """Show PRODUCT_ID's stock (on hand, reserved, available) and how fresh the answer is."""
    body = _answer(url, "stock", product_id, timeout)
    _show(f"stock of {product_id}", body, as_json, _stock_rows)


@click.command()
@click.argument("order_id")
@_answer_options
def order(order_id: str, url: str, as_json: bool, timeout: float) -> None:
    """Show ORDER_ID's reservation state, line by line, and how fresh the answer is."""
    body = _answer(url, "orders", order_id, timeout)
    _show(f"order {order_id}", body, as_json, _order_rows)
