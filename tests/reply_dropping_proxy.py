"""A TCP proxy on 127.0.0.1 between a Redis client and the server that loses chosen replies.

Commands go to the server one at a time; for a command a test picked, the proxy waits for the
server's reply (so the write has been applied) and then closes the client's connection instead
of passing the reply on: what a client sees when a network or a server restart cuts a reply.
Redis clients then reconnect and send the command again. Subscribed connections are piped
through as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

Command = list[bytes]


async def _read_command(reader: asyncio.StreamReader) -> Command | None:
    line = await reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):  # an inline command
        return line.split()
    args = []
    for _ in range(int(line[1:-2])):
        header = await reader.readline()
        size = int(header[1:-2])
        args.append((await reader.readexactly(size + 2))[:-2])
    return args


def _encode(command: Command) -> bytes:
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(parts)


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    """One whole RESP2/RESP3 reply, as raw bytes."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    kind, size = line[:1], line[1:-2]
    if kind in b"$=!" and int(size) >= 0:
        return line + await reader.readexactly(int(size) + 2)
    if kind in b"*~>" and int(size) >= 0:
        return line + b"".join([await _read_reply(reader) for _ in range(int(size))])
    if kind in b"%|":
        return line + b"".join([await _read_reply(reader) for _ in range(2 * int(size))])
    return line


def evalsha_on(key_suffix: bytes) -> Callable[[Command], bool]:
    """Matches a script call whose first key ends with ``key_suffix``."""
    return lambda c: c[0].upper() == b"EVALSHA" and len(c) > 3 and c[3].endswith(key_suffix)


class ReplyDroppingProxy:
    """Forwards to ``upstream``; `drop_replies` picks commands whose replies are lost."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.dropped: list[Command] = []
        self.forwarded = 0
        self._rules: list[tuple[Callable[[Command], bool], list[int], int]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on a free port; returns the redis:// URL of the proxy."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def drop_replies(
        self, matches: Callable[[Command], bool], *, times: int = 1, every: int = 1
    ) -> None:
        """Lose the replies to ``times`` of the commands that ``matches``: the next one, then
        every ``every``-th after it. A command resent after its reply was lost gets through."""
        self._rules.append((matches, [times, 0], every))

    def _should_drop(self, command: Command) -> bool:
        if command in self.dropped:
            return False
        for matches, state, every in self._rules:
            if state[0] > 0 and matches(command):
                drop = state[1] % every == 0
                state[1] += 1
                if drop:
                    state[0] -= 1
                    return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    return
                upstream_writer.write(_encode(command))
                await upstream_writer.drain()
                name = command[0].upper() if command else b""
                if name in (b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"):
                    await self._pipe(reader, writer, upstream_reader, upstream_writer)
                    return
                reply = await _read_reply(upstream_reader)
                if self._should_drop(command):
                    self.dropped.append(command)
                    return  # applied by the server, never answered
                self.forwarded += 1
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            for w in (writer, upstream_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()

        tasks = [
            asyncio.ensure_future(copy(reader, upstream_writer)),
            asyncio.ensure_future(copy(upstream_reader, writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
