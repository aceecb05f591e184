"""Private: everything of stockflow that reaches into Faust's or aiokafka's internals.

Nothing outside stockflow may import from here; the names and the behaviour follow the pinned
versions of faust-streaming and aiokafka (see ``pyproject.toml``).
"""

__all__: list[str] = []
