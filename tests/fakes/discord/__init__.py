"""A protocol-true fake of Discord for the real discord.py client.

- `server`: the REST API on 127.0.0.1 (`FakeDiscord`), recording every request and answering
  as Discord does;
- `rules`: what it enforces (interaction deadlines, content, embeds, command shapes);
- `state`: what it holds, and the objects and gateway payloads built from it;
- `gateway`: the client pointed at the fake, events injected into its parsers, a world to play in;
- `checks`: what tests assert about the bot's requests.
"""

from tests.fakes.discord.checks import assert_no_mentions, buttons, message_requests
from tests.fakes.discord.gateway import World, discord_api, inject, logged_in, make_world
from tests.fakes.discord.rules import EPHEMERAL, LOADING, MAX_CONTENT, DiscordError
from tests.fakes.discord.server import FakeDiscord, Recorded
from tests.fakes.discord.state import FAKE_TOKEN, MANAGE_MESSAGES, Interaction

__all__ = [
    "EPHEMERAL",
    "FAKE_TOKEN",
    "LOADING",
    "MANAGE_MESSAGES",
    "MAX_CONTENT",
    "DiscordError",
    "FakeDiscord",
    "Interaction",
    "Recorded",
    "World",
    "assert_no_mentions",
    "buttons",
    "discord_api",
    "inject",
    "logged_in",
    "make_world",
    "message_requests",
]
