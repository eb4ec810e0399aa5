"""Whatever bytes or text a user sends: a clear message or cleaned text, never a traceback, and
the chat goes on."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airoboros_bot.bots.core.service import Answer, ChatService
from airoboros_bot.bots.terminal.chat import TerminalChat
from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ConversationKey

ROOT = Path(__file__).resolve().parents[2]
KEY = ConversationKey("test", "w", "bad-bytes")
CORPUS = [
    "hello \udcff world",  # an invalid byte decoded with surrogateescape
    "\ud800 alone",  # half of a UTF-16 pair
    "\ud83d\ude00 both halves",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "\ufeffwith a BOM",
    "line one\r\nline two",
    "\x00\x01\x02",  # nothing left once cleaned
    "x" * 1_000_000,  # 1 MB
]


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
async def test_every_question_gets_an_answer_or_a_clear_message(
    service: ChatService, text: str
) -> None:
    try:
        events = [event async for event in service.ask(KEY, text, max_new_tokens=4)]
    except ChatError as exc:
        assert exc.user_message and "\n" not in exc.user_message
        assert text.strip("\x00\x01\x02") == "" or len(text) > service.chat.max_prompt_chars
        return
    assert isinstance(events[-1], Answer)
    for turn in await service.store.history(KEY):
        turn.user.encode("utf-8")
        assert "\x00" not in turn.user


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
async def test_every_context_block_is_stored_clean_or_refused_clearly(
    service: ChatService, text: str
) -> None:
    try:
        block, _ = await service.add_context(KEY, text, {"file": "bad\udcff.txt"})
    except ChatError as exc:
        assert "Context too large" in exc.user_message or "Empty context" in exc.user_message
        return
    block.text.encode("utf-8")
    stored = (await service.store.blocks(KEY))[-1]
    assert stored == block and stored.metadata["file"] == "bad\ufffd.txt"


BAD_INPUT = (
    b"hello \xff world\n"  # invalid UTF-8
    b"a\x00b\n"
    b"!!context \xc3\x28 broken\n" + b"x" * 1_000_000 + b"\n" + b"What color are blueberries?\n"
)


async def test_the_terminal_chat_goes_on_after_bad_bytes(service: ChatService) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(BAD_INPUT), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    chat = TerminalChat(service, KEY, stdin, stdout, stderr, max_new_tokens=4)
    assert await chat.run() == 0
    stdout.flush()
    out = stdout.buffer.getvalue().decode()
    assert out.count("ASSISTANT: ") == 3
    assert "Question too long: 1000000 characters" in stderr.getvalue()
    assert "Added a context block" in stderr.getvalue()
    history = await service.store.history(KEY)
    assert [t.user for t in history] == ["hello \ufffd world", "ab", "What color are blueberries?"]


def test_the_chat_command_reads_invalid_utf8_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    env.update(AIROBOROS_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-m", "airoboros_bot", "chat", "--no-history", "--max-new-tokens", "6"],
        input=BAD_INPUT,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=180,
    )
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 0, err
    assert "Traceback" not in err
    assert result.stdout.decode().count("ASSISTANT: ") == 3
    assert "Question too long" in err
