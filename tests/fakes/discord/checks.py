"""What tests check in the requests the bot made: the messages it sent or edited, that none of
them could ping anyone, and the buttons on a message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.discord.server import FakeDiscord, Recorded


def message_requests(fake: FakeDiscord) -> list[Recorded]:
    """Every request that creates or edits a message (content or components)."""
    found = []
    for r in fake.requests:
        body = r.json if isinstance(r.json, dict) else {}
        if "/interactions/" in r.path:
            if body.get("type") in (4, 7):
                found.append(r)
        elif r.method in ("POST", "PATCH") and (
            re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/(@original|\d+))?", r.path)
            or re.fullmatch(r"/channels/\d+/messages(/\d+)?", r.path)
        ):
            found.append(r)
    return found


def assert_no_mentions(fake: FakeDiscord) -> None:
    """Every message the bot sent or edited went out with no allowed mentions."""
    sent = message_requests(fake)
    assert sent, "the bot sent no messages"
    for r in sent:
        mentions = r.data.get("allowed_mentions")
        assert mentions in ({"parse": []}, {"parse": [], "replied_user": False}), (
            r.method,
            r.path,
            r.data,
        )


def buttons(message: Mapping[str, Any]) -> dict[str, str]:
    """A message's buttons: label -> custom_id."""
    found = {}
    for row in message.get("components", []):
        for item in row.get("components", []):
            if item.get("type") == 2:
                found[item.get("label", "")] = item.get("custom_id", "")
    return found
