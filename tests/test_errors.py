"""One root for the errors a user is shown: `AiroborosError`, with a one-line `user_message`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airoboros_bot.bots.games import GameError
from airoboros_bot.config.errors import AiroborosError
from airoboros_bot.config.settings import SettingsError
from airoboros_bot.conversations.errors import ChatError, EmptyPrompt
from airoboros_bot.engine.errors import EngineError, ModelError

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"ChatError", "EngineError"}


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (ChatError("No such mode."), "No such mode."),
        (EmptyPrompt(), "Empty prompt: type a question first."),
        (GameError("No game here."), "No game here."),
        (
            EngineError("job abc failed: CUDA OOM", user_message="The answer failed."),
            "The answer failed.",
        ),
        (ModelError("models/x has no model.bin"), "models/x has no model.bin"),
        (SettingsError("AIROBOROS_X: bad"), "AIROBOROS_X: bad"),
    ],
)
def test_every_user_facing_error_has_the_one_root(error: AiroborosError, shown: str) -> None:
    assert isinstance(error, AiroborosError)
    assert error.user_message == shown
    with pytest.raises(AiroborosError):
        raise error


def _caught_together(node: ast.AST) -> set[str]:
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return names & ROOTS


def test_no_module_catches_the_two_roots_as_a_pair() -> None:
    paired = []
    for path in sorted(
        p for d in ("bots", "engine", "conversations") for p in (ROOT / d).rglob("*.py")
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                checked = node.type
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
                checked = node.args[1]
            else:
                continue
            if _caught_together(checked) == ROOTS:
                paired.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert paired == [], "catch AiroborosError instead"
