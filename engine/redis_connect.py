"""The one way every process connects to Redis: one server, a Redis Cluster, or Sentinel.

``AIROBOROS_REDIS_URL`` takes one of these forms (``rediss`` instead of ``redis`` = TLS):

- ``redis://[user:password@]host:port[/db]``: one server (or ``unix:///path.sock``);
- ``redis+cluster://[user:password@]host:port[,host:port...]``: a Redis Cluster, given by one
  or more seed nodes (the client discovers the others and follows slot moves and failovers);
  ``AIROBOROS_REDIS_CLUSTER=true`` makes a plain ``redis://`` URL mean the same;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db]``: the primary
  that the Sentinels at these addresses name for ``master-name``, looked up again after every
  lost connection, so a failover is followed without a restart. The user and password are the
  primary's; ``AIROBOROS_REDIS_SENTINEL_PASSWORD`` is the Sentinels' own, if they have one.

Query parameters go to redis-py's connections, e.g. ``?ssl_ca_certs=/etc/redis/ca.pem``. No
message or log line made here contains a password: `redact_url` removes it.

Every client is bounded: at most ``max_connections`` commands are in flight at once
(``AIROBOROS_REDIS_MAX_CONNECTIONS``), and a command waits up to ``pool_timeout_s`` for its turn
instead of failing when all are busy; past that it fails with an error `pool_exhausted`
recognises (busy, not unreachable). A command whose connection breaks is sent again after a short
backoff: safe, because every write of the queue and the store can be repeated.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MaxConnectionsError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Topology = Literal["server", "cluster", "sentinel"]
RedisClient = aioredis.Redis | RedisCluster
"""What `connect` returns; both expose the same command methods, pipelines and pub/sub."""

SOCKET_TIMEOUT_S = 10.0
"""Longest wait for one reply. Every blocking read here blocks for at most a few seconds, so a
reply that takes longer means the server is gone without closing the connection (a host that
vanished): the command fails and is retried on a fresh connection, which under Sentinel asks
for the current primary."""


MAX_CONNECTIONS = 32
"""Default bound on one client's connections (``AIROBOROS_REDIS_MAX_CONNECTIONS``)."""
POOL_TIMEOUT_S = 10.0
"""Default wait for a free connection (``AIROBOROS_REDIS_POOL_TIMEOUT_S``)."""
POOL_EXHAUSTED = "No connection available."
"""The message of the error raised when no connection came free in time."""


class RedisUrlError(ValueError):
    """AIROBOROS_REDIS_URL cannot be used; the message never contains the password."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs (any of the forms above)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is, parsed from AIROBOROS_REDIS_URL (and AIROBOROS_REDIS_CLUSTER)."""

    topology: Topology
    url: str = field(repr=False)
    hosts: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, url: str, *, cluster: bool = False) -> RedisTarget:
        """Parse one of the URL forms; `RedisUrlError` names what is wrong."""
        scheme, _, rest = url.partition("://")
        base, plus, kind = scheme.lower().partition("+")
        if (
            not rest
            or base not in ("redis", "rediss", "unix")
            or kind not in ("", "cluster", "sentinel")
        ):
            raise RedisUrlError(
                "expected redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://"
            )
        if base == "unix":
            if plus or cluster:
                raise RedisUrlError("a Redis Cluster cannot be reached over a unix socket")
            return cls("server", url)
        topology: Topology = "cluster" if (kind == "cluster" or cluster) else "server"
        if kind == "sentinel":
            if cluster:
                raise RedisUrlError(
                    "AIROBOROS_REDIS_CLUSTER=true does not go with redis+sentinel://"
                )
            topology = "sentinel"
        parts = urlsplit(f"{base}://{rest}")
        userinfo, _, netloc = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        hosts = tuple(_host_port(h) for h in netloc.split(",") if h)
        if not hosts:
            raise RedisUrlError("no host in the URL")
        path = [p for p in parts.path.split("/") if p]
        master = ""
        if topology == "sentinel":
            if not path:
                raise RedisUrlError("redis+sentinel:// needs the master name: .../mymaster")
            master = unquote(path.pop(0))
        elif len(hosts) > 1 and topology == "server":
            raise RedisUrlError("several hosts need redis+cluster:// or redis+sentinel://")
        try:
            db = int(path[0]) if path else 0
        except ValueError:
            raise RedisUrlError("the database must be a number: .../0") from None
        if len(path) > 1:
            raise RedisUrlError("unexpected path after the database number")
        if db and topology == "cluster":
            raise RedisUrlError("a Redis Cluster has only database 0")
        # redis-py parses the query string (types, ssl options) from a one-host URL.
        host, port = hosts[0]
        single = urlunsplit((base, f"{quote(host)}:{port}", "", parts.query, ""))
        try:
            options = parse_url(single)
        except ValueError as exc:
            raise RedisUrlError(str(exc)) from None
        tls = options.pop("connection_class", None) is SSLConnection or base == "rediss"
        for name in ("host", "port", "db", "username", "password", "path"):
            options.pop(name, None)
        return cls(
            topology,
            url,
            hosts=hosts,
            master=master,
            db=db,
            tls=tls,
            username=unquote(username) or None,
            password=unquote(password) or None,
            options=options,
        )

    @property
    def label(self) -> str:
        """Where Redis is, for messages: no password."""
        what = {"server": "Redis", "cluster": "Redis Cluster", "sentinel": "Redis (Sentinel)"}
        return f"{what[self.topology]} at {redact_url(self.url)} (AIROBOROS_REDIS_URL)"


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.rfind(":") > text.rfind("]") else (text, "", "")
    host = host.strip("[]") or "localhost"
    try:
        number = int(port) if port else 6379
    except ValueError:
        raise RedisUrlError("a port must be a number: host:6379") from None
    if not 0 < number < 65536:
        raise RedisUrlError("a port must be between 1 and 65535")
    return host, number


class _StreamKeysParser(AsyncCommandsParser):
    """Finds the keys of XREAD / XREADGROUP without asking the server.

    redis-py's cluster client routes a command by its keys; for commands whose keys move
    (``STREAMS k1 k2 id1 id2``) it asks a node with ``COMMAND GETKEYS`` first, a second round
    trip for every read of a reply stream and of the job stream.
    """

    async def get_keys(self, *args: Any) -> tuple[str, ...] | None:
        if str(args[0]).upper() in ("XREAD", "XREADGROUP"):
            words = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
            upper = [w.upper() for w in words]
            if "STREAMS" in upper:
                rest = args[upper.index("STREAMS") + 1 :]
                return tuple(rest[: len(rest) // 2])
        return await super().get_keys(*args)


class _PrimaryFollowingConnection(SentinelManagedConnection):
    """A connection that asks the Sentinels for the primary every time it (re)connects.

    redis-py's own reconnects a command retry to the address it had before (redis-py issue
    #3874): after a failover every retry knocks on the dead primary until the budget is spent.
    """

    async def _connect_retry(self) -> None:
        if self._reader:
            return
        await self.connect_check_health(check_health=self.connection_pool.check_connection)

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected:
            return
        self.host, self.port = await self.connection_pool.get_master_address()
        # One attempt per address: the command's retry asks the Sentinels again next time.
        await super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class _PrimaryFollowingSSLConnection(_PrimaryFollowingConnection, SSLConnection):
    """The same over TLS."""


RETRIES = 24
RETRY_CAP_S = 0.5


_NO_RETRY = contextvars.ContextVar("airoboros_redis_no_retry", default=False)


def fail_fast_in_this_task() -> None:
    """Commands sent from the current task (and tasks it starts) are not retried: a lost
    connection surfaces at once as an error, which the caller handles itself (the reply reader
    must know, to read its streams again from the start)."""
    _NO_RETRY.set(True)


class _ReconnectRetry(Retry):
    """Retries lost connections; never a wrong password or a missing permission (redis-py
    counts those as connection errors too, and would retry them for the whole budget); nothing
    in a task that asked to fail fast (`fail_fast_in_this_task`)."""

    def get_retries(self) -> int:
        # (What a cluster client asks before each command: it retries on its own.)
        return 0 if _NO_RETRY.get() else super().get_retries()

    async def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):  # type: ignore[no-untyped-def]
        if _NO_RETRY.get():
            try:
                return await do()
            except self._supported_errors as error:
                await (fail(error, 1) if with_failure_count else fail(error))
                raise

        def retryable(error: Exception) -> bool:
            if isinstance(error, AuthenticationError | AuthorizationError):
                return False
            return is_retryable(error) if is_retryable else True

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def retry_policy() -> Retry:
    """Reconnect and retry a command for about 10 s (a Sentinel failover, a restart), at least
    every half second, so a client notices the new primary soon after it is there; jittered so
    that many clients do not come back in the same millisecond."""
    backoff = ExponentialWithJitterBackoff(cap=RETRY_CAP_S, base=0.05)
    return _ReconnectRetry(backoff, retries=RETRIES)


def _common_options(target: RedisTarget, client_name: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 3,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_keepalive": True,
        "health_check_interval": 15,
        **target.options,
    }
    if client_name:
        options["client_name"] = client_name
    if target.username:
        options["username"] = target.username
    if target.password:
        options["password"] = target.password
    return options


_HOLDING = contextvars.ContextVar("airoboros_redis_holding", default=False)


class _Gate:
    """At most ``limit`` commands of one client in flight; the others wait up to
    ``timeout_s`` for their turn (a blocking pool, for clients whose own pool does not block).

    A command issued while the same task already holds a turn (redis-py calling itself) does
    not wait for a second one.
    """

    def __init__(self, limit: int, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._timeout_s = timeout_s

    async def run(self, call: Any) -> Any:
        if _HOLDING.get():
            return await call()
        try:
            await asyncio.wait_for(self._slots.acquire(), self._timeout_s)
        except TimeoutError:
            raise MaxConnectionsError(POOL_EXHAUSTED) from None
        token = _HOLDING.set(True)
        try:
            return await call()
        finally:
            _HOLDING.reset(token)
            self._slots.release()


class _BoundedClusterPipeline(ClusterPipeline):
    """A cluster pipeline that waits for its client's turn before it is sent."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        gate: _Gate = self.cluster_client._gate  # type: ignore[attr-defined]
        return await gate.run(lambda: super(_BoundedClusterPipeline, self).execute(*args, **kwargs))


class _BoundedCluster(RedisCluster):
    """redis-py's cluster client, whose node pools raise at once when full
    (``MaxConnectionsError``), made to wait for a free turn like a blocking pool."""

    def __init__(self, *args: Any, pool_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = _Gate(kwargs.get("max_connections", MAX_CONNECTIONS), pool_timeout_s)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        call = super().execute_command
        return await self._gate.run(lambda: call(*args, **kwargs))

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused as redis-py does
        return _BoundedClusterPipeline(self, transaction)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel-managed primary's pool, waiting for a free connection when all are busy."""


def client_for(
    target: RedisTarget,
    *,
    sentinel_password: str | None = None,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    client_name: str | None = None,
) -> RedisClient:
    """A client for the target with at most ``max_connections`` connections (per node of a
    cluster, and at most that many commands in flight over all nodes); a command waits up to
    ``pool_timeout_s`` for one. Nothing is sent until the first command."""
    options = _common_options(target, client_name)
    retry_on = [RedisConnectionError, RedisTimeoutError]
    if target.topology == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.hosts]
        cluster = _BoundedCluster(
            startup_nodes=nodes,
            ssl=target.tls,
            retry=retry_policy(),
            retry_on_error=retry_on,
            max_connections=max_connections,
            pool_timeout_s=pool_timeout_s,
            **options,
        )
        cluster.commands_parser = _StreamKeysParser()
        return cluster
    if target.topology == "sentinel":
        sentinel_options: dict[str, Any] = {
            "socket_connect_timeout": 3,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "decode_responses": True,
        }
        if target.tls:
            sentinel_options["ssl"] = True
            sentinel_options.update(
                {k: v for k, v in target.options.items() if k.startswith("ssl_")}
            )
        if sentinel_password:
            sentinel_options["password"] = sentinel_password
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_options)
        return sentinel.master_for(
            target.master,
            connection_pool_class=_BlockingSentinelPool,
            db=target.db,
            connection_class=(
                _PrimaryFollowingSSLConnection if target.tls else _PrimaryFollowingConnection
            ),
            retry=retry_policy(),
            retry_on_error=retry_on,
            max_connections=max_connections,
            timeout=pool_timeout_s,
            **options,
        )
    pool = BlockingConnectionPool.from_url(
        target.url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        retry=retry_policy(),
        retry_on_error=retry_on,
        **_url_free(options),
    )
    return aioredis.Redis.from_pool(pool)


def _url_free(options: dict[str, Any]) -> dict[str, Any]:
    """Options the URL itself does not carry already (from_url reads its own query)."""
    return {k: v for k, v in options.items() if k not in ("username", "password")}


async def check_topology(client: RedisClient, target: RedisTarget) -> None:
    """Refuse a single-server client on a Redis Cluster node (every command on a key of
    another node would fail with MOVED): `RedisUrlError` says which setting to change."""
    if target.topology == "cluster":
        return
    try:
        await client.execute_command("CLUSTER", "INFO")
    except ResponseError:  # cluster support disabled (or not allowed to ask): one server
        return
    raise RedisUrlError(
        f"{redact_url(target.url)} is a Redis Cluster node: write redis+cluster:// "
        "or set AIROBOROS_REDIS_CLUSTER=true"
    )


async def connect(
    url: str,
    *,
    cluster: bool = False,
    sentinel_password: str | None = None,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout_s: float = POOL_TIMEOUT_S,
    client_name: str | None = None,
) -> RedisClient:
    """Parse the URL, build the client (`client_for`) and check it answers (PING) and fits
    the server.

    Raises `RedisUrlError` for a URL that cannot be used, redis-py's ConnectionError /
    TimeoutError (or OSError) when the server cannot be reached; the client is closed then.
    """
    target = RedisTarget.parse(url, cluster=cluster)
    client = client_for(
        target,
        sentinel_password=sentinel_password,
        max_connections=max_connections,
        pool_timeout_s=pool_timeout_s,
        client_name=client_name,
    )
    try:
        await client.ping()
        await check_topology(client, target)
    except BaseException:
        await client.aclose()
        raise
    return client


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster (commands over several keys must then stay
    in one hash slot)."""
    return isinstance(client, RedisCluster)


def stop_retrying(client: RedisClient) -> None:
    """Fail fast from now on (shutting down: a server that went away is not coming back)."""
    client.set_retry(Retry(NoBackoff(), 0))


def pool_exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` says every connection was busy (not that Redis is down)."""
    return isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and str(exc) == POOL_EXHAUSTED
    )
