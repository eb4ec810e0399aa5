"""AIROBOROS_REDIS_URL forms: what each means, clear errors, and no password in any message."""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from airoboros_bot.engine.redis_connect import (
    RedisTarget,
    RedisUrlError,
    client_for,
    connect,
    redact_url,
)

SECRET = "s3cr%40t"  # percent-encoded "s3cr@t"


@pytest.mark.parametrize(
    ("url", "cluster", "topology", "hosts", "master", "db", "tls"),
    [
        ("redis://localhost:6379/2", False, "server", (("localhost", 6379),), "", 2, False),
        ("rediss://cache.internal", False, "server", (("cache.internal", 6379),), "", 0, True),
        ("redis://10.0.0.5:7000", True, "cluster", (("10.0.0.5", 7000),), "", 0, False),
        (
            "redis+cluster://a:7000,b:7001",
            False,
            "cluster",
            (("a", 7000), ("b", 7001)),
            "",
            0,
            False,
        ),
        ("rediss+cluster://[::1]:7000", False, "cluster", (("::1", 7000),), "", 0, True),
        (
            "redis+sentinel://s1:26379,s2:26380,s3/mymaster/1",
            False,
            "sentinel",
            (("s1", 26379), ("s2", 26380), ("s3", 6379)),
            "mymaster",
            1,
            False,
        ),
    ],
)
def test_url_forms(
    url: str,
    cluster: bool,
    topology: str,
    hosts: tuple[tuple[str, int], ...],
    master: str,
    db: int,
    tls: bool,
) -> None:
    target = RedisTarget.parse(url, cluster=cluster)
    assert (target.topology, target.hosts, target.master, target.db, target.tls) == (
        topology,
        hosts,
        master,
        db,
        tls,
    )


def test_credentials_and_query_options_are_kept_apart_from_the_hosts() -> None:
    target = RedisTarget.parse(
        f"rediss+sentinel://app:{SECRET}@s1:26379,s2:26379/main?ssl_ca_certs=/etc/ca.pem"
        "&socket_timeout=4"
    )
    assert (target.username, target.password) == ("app", "s3cr@t")
    assert target.options == {"ssl_ca_certs": "/etc/ca.pem", "socket_timeout": 4.0}
    assert "s3cr" not in repr(target) and "s3cr" not in target.label
    assert target.label == (
        "Redis (Sentinel) at rediss+sentinel://app:***@s1:26379,s2:26379/main"
        "?ssl_ca_certs=/etc/ca.pem&socket_timeout=4 (AIROBOROS_REDIS_URL)"
    )


@pytest.mark.parametrize(
    ("url", "cluster", "message"),
    [
        ("http://x:1", False, "expected redis://"),
        ("redis+mesh://x:1", False, "expected redis://"),
        ("redis://a:1,b:2", False, "several hosts need"),
        ("redis+sentinel://s1:26379", False, "needs the master name"),
        ("redis+sentinel://s1:26379/main", True, "does not go with"),
        ("redis+cluster://a:1/3", False, "only database 0"),
        ("redis://a:port", False, "port must be a number"),
        ("redis://a:70000", False, "between 1 and 65535"),
        ("redis://a:1/x", False, "database must be a number"),
        ("unix:///tmp/r.sock", True, "unix socket"),
        (f"redis://u:{SECRET}@a:1?socket_timeout=soon", False, "socket_timeout"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(
    url: str, cluster: bool, message: str
) -> None:
    with pytest.raises(RedisUrlError, match=message) as caught:
        RedisTarget.parse(url, cluster=cluster)
    assert "s3cr" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:pw@h:1", "rediss://user:***@h:1"),
        ("redis+cluster://u:p%40w@a:1,b:2", "redis+cluster://u:***@a:1,b:2"),
        ("redis://user@h:1", "redis://user@h:1"),
        ("redis://h:1", "redis://h:1"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_cluster_flag_makes_a_cluster_client() -> None:
    client = client_for(RedisTarget.parse("redis://127.0.0.1:7000", cluster=True))
    assert isinstance(client, RedisCluster)


async def test_connect_to_one_server_answers(redis_url: str) -> None:
    client = await connect(redis_url)
    try:
        assert await client.set("redis-connect-probe", "1", ex=5)
        assert await client.get("redis-connect-probe") == "1"  # replies are decoded
    finally:
        await client.aclose()
