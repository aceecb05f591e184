"""Faust agents and timers: they only move records between topics, tables and processors."""

from stockflow.agents.loop import Batching, register_agents
from stockflow.agents.scheduler import register_scheduler

__all__ = ["Batching", "register_agents", "register_scheduler"]
