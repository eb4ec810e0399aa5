"""SIGTERM to a bot's process group (Ctrl-C, systemd, docker stop) mid-answer: the bot, its
in-process worker and its embedded Valkey stop within 2 s, the Valkey last (it is in its own
session, so the signal to the group does not stop it while the bot still needs it)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from airoboros_bot.engine.model.demo import build_demo_model
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import SECRET
from tests.fakes.slack import FakeSlack, command_body, signed_request

ROOT = Path(__file__).resolve().parents[2]
EXIT_WITHIN_S = 2.0

fake = slack_fixtures.fake


@pytest.fixture(scope="module")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-shaped model that never ends an answer by itself: it is mid-answer when stopped."""
    return build_demo_model(tmp_path_factory.mktemp("models") / "endless", eos_bias=-1e4)


def _bot(args: list[str], data_dir: Path, model: Path, **env: str) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    environ.update(
        AIROBOROS_DATA_DIR=str(data_dir),
        AIROBOROS_ENGINE_MODEL_DIR=str(model),
        AIROBOROS_ENGINE_MAX_NEW_TOKENS="1900",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "airoboros_bot", *args],
        cwd=ROOT,
        env=environ,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal or systemd gives it
    )


def _drain(stream, sink: list[bytes]) -> threading.Thread:
    def read() -> None:
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
            sink.append(chunk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _stop_group(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM to the whole process group; seconds until the bot exited."""
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(30)
    return time.monotonic() - sent


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen in {timeout:g} s")
        await asyncio.sleep(0.02)


def _valkey_port(data_dir: Path) -> int:
    url = (data_dir / "valkey" / "server.url").read_text().strip()
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def test_the_terminal_chat_stops_within_two_seconds(
    tmp_path: Path, endless_model: Path
) -> None:
    data = tmp_path / "data"
    bot = _bot(["chat", "--no-history"], data, endless_model)
    out: list[bytes] = []
    try:
        _drain(bot.stdout, out)
        assert bot.stdin is not None
        bot.stdin.write(b"Tell me a long story.\n")
        bot.stdin.flush()  # and keep stdin open: a person still at the terminal
        await _until(lambda: b"ASSISTANT: " in b"".join(out), 60, "the answer streaming")
        port = _valkey_port(data)
        took = _stop_group(bot)
    finally:
        if bot.poll() is None:
            bot.kill()
    err = bot.stderr.read().decode() if bot.stderr else ""
    print(f'{{"bot": "chat", "exit_s": {took:.2f}}}')
    assert bot.returncode == 0, err
    assert took < EXIT_WITHIN_S, f"{took:.2f} s"
    assert "Traceback" not in err
    assert not (data / "valkey" / "server.url").exists(), "the bot stopped its Valkey"
    assert not _port_open(port)
    assert any((data / "valkey").rglob("*.aof*"))


async def test_the_slack_bot_stops_within_two_seconds(
    tmp_path: Path, endless_model: Path, fake: FakeSlack
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path / "data"
    bot = _bot(
        ["slack", "--http", "--port", str(port)],
        data,
        endless_model,
        AIROBOROS_SLACK_BOT_TOKEN=fake.bot_token,
        AIROBOROS_SLACK_SIGNING_SECRET=SECRET,
        AIROBOROS_SLACK_API_BASE_URL=fake.api_url,
        AIROBOROS_SLACK_HTTP_HOST="127.0.0.1",
        AIROBOROS_SLACK_EDIT_INTERVAL_S="0.2",
    )
    logs: list[bytes] = []
    try:
        _drain(bot.stderr, logs)
        url = f"http://127.0.0.1:{port}/slack/events"
        raw, headers = signed_request(command_body("/ask", "Tell me a long story."), SECRET)
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 90
            while True:  # the bot loads the model, then listens
                try:
                    async with http.post(url, data=raw, headers=headers) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert bot.poll() is None, b"".join(logs).decode()[-2000:]
                    assert time.monotonic() < deadline, "the bot never listened"
                    await asyncio.sleep(0.1)
        await fake.wait_for(
            lambda: len(fake.calls_to("chat.update")) >= 2, what="the answer streaming"
        )
        valkey_port = _valkey_port(data)
        took = _stop_group(bot)
    finally:
        if bot.poll() is None:
            bot.kill()
    log_text = b"".join(logs).decode(errors="replace")
    print(f'{{"bot": "slack", "exit_s": {took:.2f}}}')
    assert bot.returncode == 0, log_text[-2000:]
    assert took < EXIT_WITHIN_S, f"{took:.2f} s\n{log_text[-2000:]}"
    assert "Traceback" not in log_text
    assert not _port_open(valkey_port), "the bot stopped its Valkey"
