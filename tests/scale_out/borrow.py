"""Run tests written for one Redis server again on another topology.

A test module here calls ``borrow(globals(), module, ...)``: the tests and fixtures of those
modules become its own, so pytest collects them again under this folder, where ``redis_url`` and
``redis`` name the topology under test (nothing in the borrowed code changes).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from _pytest.fixtures import FixtureFunctionDefinition

TOPOLOGY_FIXTURES = frozenset({"redis", "redis_url"})


def borrow(namespace: dict[str, Any], module: ModuleType, only: tuple[str, ...] = ()) -> None:
    """Copy ``module``'s tests (those named in ``only``, or all) and all its fixtures."""
    for name, value in vars(module).items():
        if isinstance(value, FixtureFunctionDefinition):
            if name in TOPOLOGY_FIXTURES:
                raise ValueError(f"{module.__name__} overrides the topology fixture {name}")
            if namespace.setdefault(name, value) is not value:
                raise ValueError(f"two fixtures named {name}: borrow them in separate modules")
        elif name.startswith("test_") and callable(value) and (not only or name in only):
            namespace[name] = value
    missing = set(only) - set(vars(module))
    if missing:
        raise ValueError(f"{module.__name__} has no test {sorted(missing)}")
