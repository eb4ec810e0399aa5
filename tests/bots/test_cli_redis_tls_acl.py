"""`rediss://` with an ACL user: a real worker and the terminal chat answer through TLS as a user
allowed only the deployment's key prefix, and the password appears in no output or log line.

The bundled Valkey has no TLS, so a TLS-terminating proxy on 127.0.0.1 (Python's ssl module, a
certificate made by the openssl command) stands in front of it, as stunnel or a cloud load
balancer would: redis-py does a real TLS handshake and verifies the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import redis.asyncio as aioredis

from airoboros_bot.config.keys import Keys
from airoboros_bot.engine.client import EngineClient
from airoboros_bot.engine.redis_connect import connect

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "p@ss:w/rd-" + uuid.uuid4().hex[:8]


class TlsProxy:
    """Accepts TLS on 127.0.0.1 and forwards the plain bytes to a Redis server."""

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self.target_port = target_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def proxy(redis_url: str, certificate: tuple[Path, Path]) -> AsyncIterator[TlsProxy]:
    port = urlsplit(redis_url).port
    if port is None:
        pytest.skip("needs a TCP Redis server")
    started = TlsProxy(port, *certificate)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def acl_user(redis: aioredis.Redis, key_prefix: str) -> AsyncIterator[str]:
    """A user allowed only the keys and channels under the test's prefix, no admin commands."""
    name = f"app-{key_prefix}"
    await redis.execute_command(
        "ACL", "SETUSER", name, "on", f">{PASSWORD}", "resetkeys", f"~{key_prefix}:*",
        "resetchannels", f"&{key_prefix}:*", "+@all", "-@admin", "-@dangerous",
    )  # fmt: skip
    try:
        yield name
    finally:
        await redis.execute_command("ACL", "DELUSER", name)


def _env(url: str, prefix: str, model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    env.update(
        AIROBOROS_REDIS_URL=url,
        AIROBOROS_REDIS_KEY_PREFIX=prefix,
        AIROBOROS_ENGINE_MODEL_DIR=str(model_dir),
        AIROBOROS_ENGINE_DEVICE="cpu",
        AIROBOROS_ENGINE_MAX_NEW_TOKENS="12",
        AIROBOROS_LOG_LEVEL="DEBUG",
    )
    return env


async def _chat(env: dict[str, str], stdin: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airoboros_bot", "chat", "--no-history",
        cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_tls_and_an_acl_user_carry_the_whole_path_and_never_show_the_password(
    proxy: TlsProxy,
    acl_user: str,
    key_prefix: str,
    demo_model_dir: Path,
    certificate: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    cert, _ = certificate
    url = f"rediss://{acl_user}:{quote(PASSWORD, safe='')}@127.0.0.1:{proxy.port}/0"
    url += f"?ssl_ca_certs={cert}"
    env = _env(url, key_prefix, demo_model_dir)
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "airoboros_bot", "worker", "--name", "tls-worker",
            cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    probe = await connect(url)  # the test's own client: TLS, as the ACL user
    try:
        for _ in range(600):
            if await EngineClient(probe, Keys(key_prefix)).live_workers():
                break
            await asyncio.sleep(0.05)
        code, output = await _chat(env, "What color are blueberries?\n")
    finally:
        await probe.aclose()
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 60)
    assert code == 0, output
    assert "ASSISTANT: " in output and "1 worker(s)" in output
    assert worker.returncode == 0, log.read_text()
    worker_log = log.read_text()
    assert "worker tls-worker ready" in worker_log
    for text in (output, worker_log):
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text

    wrong = _env(
        url.replace(quote(PASSWORD, safe=""), "wrong-password"), key_prefix, demo_model_dir
    )
    code, output = await _chat(wrong, "hello\n")
    lines = output.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "AIROBOROS_REDIS_URL" in lines[0], lines
    assert "wrong-password" not in output and ":***@" in output


async def test_a_plain_client_is_refused_by_the_tls_endpoint(proxy: TlsProxy) -> None:
    """The proxy really speaks TLS (else the test above would prove nothing about TLS)."""
    client = aioredis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=2, retry=None)
    with pytest.raises(Exception):  # noqa: B017 - whatever the failed handshake raises
        await client.ping()
    await client.aclose()
