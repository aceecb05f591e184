"""Faust agents and timers: they only move records between topics, tables and processors."""

from stockflow.agents.loop import Batching, Handler, register_agents, routes
from stockflow.agents.scheduler import register_scheduler

__all__ = ["Batching", "Handler", "register_agents", "register_scheduler", "routes"]
