"""stockflow on Faust's web server: the read model with freshness, routing to the owning worker,
and Prometheus metrics (see :mod:`stockflow.web.views` for the HTTP API).

Settings: ``STOCKFLOW_WEB_PORT`` (6066), ``STOCKFLOW_WEB_BIND``, ``STOCKFLOW_WEB_ENABLED`` and
``STOCKFLOW_WEB_ROUTE_TIMEOUT`` (5 s). Importing this package registers nothing:
:func:`stockflow.install` calls :func:`register_views`.
"""

from stockflow.web.freshness import Progress
from stockflow.web.read_model import ReadModel
from stockflow.web.views import register_views

__all__ = ["Progress", "ReadModel", "register_views"]
