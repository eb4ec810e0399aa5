"""The real discord.py client against the fake: REST routes pointed at it, gateway events
handed to the client's parsers as its gateway reader does (no gateway connection is made), a
world of one guild to play in, and logging in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord

from tests.fakes.discord.server import FakeDiscord
from tests.fakes.discord.state import FAKE_TOKEN


@asynccontextmanager
async def discord_api(fake: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    """Point discord.py's REST routes at the fake for the duration (restored after)."""
    old = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    try:
        yield fake
    finally:
        discord.http.Route.BASE = old


def inject(client: discord.Client, event: str, payload: Any) -> None:
    """Hand a gateway event to the client as its gateway reader does (through `parsers`)."""
    client._connection.parsers[event](payload)


@dataclass
class World:
    """A guild with two text channels, two roles and two users, as the gateway announced it."""

    guild: dict[str, Any]
    general: dict[str, Any]
    random: dict[str, Any]
    member_role: str
    alice: dict[str, Any]
    bob: dict[str, Any]
    muted_role: str = ""

    @property
    def guild_id(self) -> int:
        """The guild's id as an int (for settings)."""
        return int(self.guild["id"])


def make_world(fake: FakeDiscord) -> World:
    """Create the guild, channels and users on the fake server."""
    guild = fake.guild("Airoboros Lab", ["general", "random"], ["member", "muted"])
    general, random = (fake.channels[c["id"]] for c in guild["channels"])
    member, muted = (role["id"] for role in guild["roles"][1:])
    return World(
        guild, general, random, member, fake.user("alice"), fake.user("bob"), muted_role=muted
    )


@asynccontextmanager
async def logged_in(
    fake: FakeDiscord, client: discord.Client, world: World
) -> AsyncIterator[discord.Client]:
    """Log ``client`` in against the fake (REST only), announce the guild, close it after."""
    try:
        await client.login(FAKE_TOKEN)
        inject(client, "GUILD_CREATE", world.guild)
        yield client
    finally:
        await client.close()
