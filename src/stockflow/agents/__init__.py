"""Faust agents: each one only moves records between topics, a table and a processor."""

from stockflow.agents.inventory import register_inventory_agent
from stockflow.agents.orders import register_orders_agent
from stockflow.agents.products import register_products_agent
from stockflow.agents.scheduler import register_scheduler

__all__ = [
    "register_inventory_agent",
    "register_orders_agent",
    "register_products_agent",
    "register_scheduler",
]
