"""The terminal chat, driven through stdin: in-process and as the real command."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.terminal.chat import TerminalChat
from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT
from airoboros_bot.conversations.models import ConversationKey
from tests.environment import clean_env

ROOT = Path(__file__).resolve().parents[2]


async def _chat(service: ChatService, script: str, **options) -> tuple[str, str, int]:
    stdin, stdout, stderr = io.StringIO(script), io.StringIO(), io.StringIO()
    chat = TerminalChat(
        service, ConversationKey("terminal", "h", "t"), stdin, stdout, stderr, **options
    )
    code = await chat.run()
    return stdout.getvalue(), stderr.getvalue(), code


async def test_questions_commands_and_end_of_input(service: ChatService) -> None:
    out, err, code = await _chat(
        service, "What color are blueberries?\n!!bogus\n\nAnd now?\n!!regen\n!!reset\n"
    )
    assert code == 0
    assert out.count("ASSISTANT: ") == 3
    assert "Unknown command !!bogus" in err
    assert "Regenerating" in err
    assert "Conversation reset (2 turns forgotten)" in err


async def test_exit_stops_reading(service: ChatService) -> None:
    out, _, code = await _chat(service, "!!exit\nnever asked\n")
    assert code == 0 and out == ""


async def test_multiline_messages_end_with_an_empty_line(service: ChatService) -> None:
    out, err, _ = await _chat(service, "line one\nline two\n\n!!context list\n", multiline=True)
    assert out.count("ASSISTANT: ") == 1
    history = await service.store.history(ConversationKey("terminal", "h", "t"))
    assert history[0].user == "line one\nline two"
    assert "0 blocks, 0 of 2048 tokens" in err


async def test_context_commands(service: ChatService, tmp_path: Path) -> None:
    doc = tmp_path / "notes.md"
    doc.write_text("Blueberries are now green.")
    script = f"!!context file {doc}\n!!context list\nWhat color?\n!!context clear\n!!context\n"
    out, err, _ = await _chat(service, script)
    assert "Added notes.md" in err
    assert "[1] notes.md" in err
    assert "Sources:\n[1] notes.md" in out
    assert "Removed 1 context blocks" in err
    assert "Usage: !!context" in err


def _cli(args: list[str], stdin: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**clean_env(DATA_DIR=tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "airoboros_bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        timeout=180,
    )


def test_piped_chat_answers_and_exits_zero(tmp_path: Path) -> None:
    result = _cli(
        ["chat", "--no-history", "--max-new-tokens", "12"],
        "What color are blueberries?\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ASSISTANT: ")
    assert "Demo model" in result.stderr
    # The embedded Valkey kept its data (AOF) in the data directory.
    assert any((tmp_path / "data" / "valkey").rglob("*.aof*"))


def test_prompt_command_prints_the_exact_prompt(tmp_path: Path) -> None:
    conversation = {
        "turns": [{"user": "Hi", "assistant": "Hello."}],
        "instruction": "What color are blueberries?",
    }
    result = _cli(["prompt"], json.dumps(conversation), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{DEFAULT_SYSTEM_PROMPT} USER: Hi ASSISTANT: Hello.</s>"
        "USER: What color are blueberries? ASSISTANT: "
    )
    counted = _cli(["prompt", "--tokens"], json.dumps(conversation), tmp_path)
    assert "prompt tokens: " in counted.stdout and "budget left: " in counted.stdout


def test_prompt_command_rejects_bad_json(tmp_path: Path) -> None:
    result = _cli(["prompt"], "[1, 2]", tmp_path)
    assert result.returncode == 1
    assert "Bad conversation JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_setting_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _cli(["chat"], "", tmp_path, AIROBOROS_ENGINE_MAX_BATCH_SIZE="lots")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "airoboros-bot: AIROBOROS_ENGINE_MAX_BATCH_SIZE: "
        "input should be a valid integer, unable to parse string as an integer"
    ]


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    result = _cli(
        ["chat"],
        "",
        tmp_path,
        AIROBOROS_DISCORD_RATE_LIMIT_PER_MINUTE="-1",
        AIROBOROS_DISCORD_TOKEN="sekrit-token-value",
    )
    assert result.returncode == 2
    assert "sekrit" not in result.stderr + result.stdout


def test_unreachable_redis_names_the_setting(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _cli(["chat"], "hi\n", tmp_path, AIROBOROS_REDIS_URL=f"redis://:pw@127.0.0.1:{port}/0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AIROBOROS_REDIS_URL" in lines[0], lines
    assert ":pw@" not in result.stderr


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_bad_model_dir_says_what_is_missing(tmp_path: Path, what: str) -> None:
    model = tmp_path / "model"
    if what == "empty":
        model.mkdir()
    result = _cli(["chat", "--model-dir", str(model)], "hi\n", tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(model) in lines[0], lines
