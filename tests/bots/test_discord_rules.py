"""The Discord bot's plain rules and texts: access, conversation keys, payload checks, sources,
context usage, running answers. No Discord client needed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airoboros_bot.bots.core.service import ContextUsage
from airoboros_bot.bots.discord.access import AccessRules, Place, interaction_problem
from airoboros_bot.bots.discord.running import RunningAnswers
from airoboros_bot.bots.discord.text import (
    escape_link_text,
    format_sources,
    is_text_file,
    rate_limited,
    strip_mention,
    thread_name,
    usage_report,
)
from airoboros_bot.config.settings import DiscordSettings, load_settings
from airoboros_bot.conversations.models import ContextBlock, ConversationKey
from tests.fakes.discord import FakeDiscord

GUILD, CHANNEL, THREAD, ROLE, USER = 10, 20, 30, 40, 50


def test_conversation_keys_follow_guild_channel_and_thread() -> None:
    assert Place(GUILD, CHANNEL).key == ConversationKey("discord", "10", "20", "")
    thread = Place(GUILD, THREAD, CHANNEL)
    assert thread.key == ConversationKey("discord", "10", "20", "30")
    assert thread.channel_key == ConversationKey("discord", "10", "20", "")
    assert Place(None, 5).key == ConversationKey("discord", "dm", "5", "")


@pytest.mark.parametrize(
    ("rules", "place", "roles", "refused"),
    [
        (AccessRules(), Place(GUILD, CHANNEL), (), None),
        (AccessRules(), Place(None, 5), (), "direct messages"),
        (AccessRules(allow_dms=True), Place(None, 5), (), None),
        (AccessRules(guild_ids=frozenset({GUILD})), Place(GUILD, CHANNEL), (), None),
        (AccessRules(guild_ids=frozenset({99})), Place(GUILD, CHANNEL), (), "server"),
        (AccessRules(channel_ids=frozenset({CHANNEL})), Place(GUILD, THREAD, CHANNEL), (), None),
        (AccessRules(channel_ids=frozenset({THREAD})), Place(GUILD, THREAD, CHANNEL), (), None),
        (AccessRules(channel_ids=frozenset({CHANNEL})), Place(GUILD, 21), (), "channel"),
        (AccessRules(role_ids=frozenset({ROLE})), Place(GUILD, CHANNEL), (), "roles"),
        (AccessRules(role_ids=frozenset({ROLE})), Place(GUILD, CHANNEL), (ROLE, 1), None),
        (AccessRules(role_ids=frozenset({ROLE}), allow_dms=True), Place(None, 5), (), None),
        # Block lists: a block wins over every allow list.
        (AccessRules(blocked_user_ids=frozenset({USER})), Place(GUILD, CHANNEL), (), "can't"),
        (
            AccessRules(allow_dms=True, blocked_user_ids=frozenset({USER})),
            Place(None, 5),
            (),
            "can't",
        ),
        (AccessRules(blocked_user_ids=frozenset({99})), Place(GUILD, CHANNEL), (), None),
        (
            AccessRules(role_ids=frozenset({ROLE}), blocked_role_ids=frozenset({41})),
            Place(GUILD, CHANNEL),
            (ROLE, 41),
            "can't",
        ),
        (AccessRules(blocked_role_ids=frozenset({41})), Place(GUILD, CHANNEL), (ROLE,), None),
        (AccessRules(blocked_role_ids=frozenset({41}), allow_dms=True), Place(None, 5), (), None),
        (
            AccessRules(channel_ids=frozenset({CHANNEL}), blocked_channel_ids=frozenset({CHANNEL})),
            Place(GUILD, CHANNEL),
            (),
            "switched off",
        ),
        (
            AccessRules(blocked_channel_ids=frozenset({CHANNEL})),
            Place(GUILD, THREAD, CHANNEL),
            (),
            "switched off",
        ),
        (
            AccessRules(channel_ids=frozenset({CHANNEL}), blocked_channel_ids=frozenset({THREAD})),
            Place(GUILD, THREAD, CHANNEL),
            (),
            "switched off",
        ),
        (AccessRules(blocked_channel_ids=frozenset({THREAD})), Place(GUILD, 21), (), None),
    ],
)
def test_access_rules(
    rules: AccessRules, place: Place, roles: tuple[int, ...], refused: str | None
) -> None:
    reason = rules.refusal(place, roles, USER)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_access_rules_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIROBOROS_DISCORD_GUILD_IDS", "[1, 2]")
    monkeypatch.setenv("AIROBOROS_DISCORD_ROLE_IDS", "[3]")
    monkeypatch.setenv("AIROBOROS_DISCORD_ALLOW_DMS", "true")
    monkeypatch.setenv("AIROBOROS_DISCORD_BLOCKED_USER_IDS", "[4]")
    monkeypatch.setenv("AIROBOROS_DISCORD_BLOCKED_ROLE_IDS", "[5, 6]")
    monkeypatch.setenv("AIROBOROS_DISCORD_BLOCKED_CHANNEL_IDS", "[7]")
    rules = AccessRules.from_settings(load_settings().discord)
    assert rules == AccessRules(
        frozenset({1, 2}),
        frozenset(),
        frozenset({3}),
        True,
        blocked_user_ids=frozenset({4}),
        blocked_role_ids=frozenset({5, 6}),
        blocked_channel_ids=frozenset({7}),
    )
    assert AccessRules.from_settings(DiscordSettings()) == AccessRules()


def test_sound_interaction_payloads_pass() -> None:
    fake = FakeDiscord()
    guild = fake.guild("g")
    channel = fake.channels[guild["channels"][0]["id"]]
    user = fake.user("alice")
    assert interaction_problem(fake.slash("ask", channel, user, {"question": "q"})) is None
    assert interaction_problem(fake.slash("help", fake.dm_channel(user), user)) is None
    message = fake.message(channel["id"], user, "hi")
    assert (
        interaction_problem(fake.message_command("Add as context", channel, user, message)) is None
    )
    assert interaction_problem(fake.button_press(message["id"], "airoboros:thread", user)) is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.pop("token"), "missing token"),
        (lambda p: p.update(type=1), "unknown interaction type 1"),
        (lambda p: p.update(id="12abc"), "bad 'id'"),
        (lambda p: p["data"].pop("id"), "command without a name or id"),
        (lambda p: p["data"].update(type=7), "unknown command type"),
        (lambda p: p["data"].update(options="q"), "bad options"),
        (lambda p: p.update(channel=[]), "bad channel"),
        (lambda p: p.pop("member"), "without a member"),
    ],
)
def test_malformed_interaction_payloads_are_named(change, problem: str) -> None:
    fake = FakeDiscord()
    guild = fake.guild("g")
    channel = fake.channels[guild["channels"][0]["id"]]
    payload = fake.slash("ask", channel, fake.user("alice"), {"question": "q"})
    change(payload)
    assert problem in (interaction_problem(payload) or "")


def test_sources_are_numbered_discord_links() -> None:
    blocks = (
        ContextBlock("a", {"url": "https://discord.com/channels/1/2/3", "author": "Al *ice*"}),
        ContextBlock("b", {"url": "https://x.test/d", "file": "d_[1].md", "date": "2026-11-02"}),
        ContextBlock("c", {"url": "javascript:alert(1)", "title": "odd"}),
    )
    assert format_sources(blocks) == (
        "**Sources**\n"
        "1. [message by Al \\*ice\\*](<https://discord.com/channels/1/2/3>) — Al \\*ice\\*\n"
        "2. [d\\_\\[1\\].md](<https://x.test/d>) — 2026-11-02\n"
        "3. odd"
    )


@given(st.text(max_size=200))
def test_escaped_link_text_cannot_close_the_link(label: str) -> None:
    escaped = escape_link_text(label)
    assert "\n" not in escaped
    unescaped = re.sub(r"\\.", "", escaped)
    assert not set(unescaped) & set("[]*_~`|\\")


def test_usage_report_shows_each_block_and_the_window() -> None:
    blocks = (ContextBlock("x", {"file": "a.md", "url": "https://d/1"}), ContextBlock("y words"))
    usage = ContextUsage(blocks, (100, 412), 2048)
    assert usage_report(usage, "<#5>") == (
        "**2 context block(s) in <#5>**: 512 of 2048 tokens of the model's window (25%).\n"
        "1. [a.md](<https://d/1>) (100 tokens)\n"
        "2. y words (412 tokens)"
    )
    full = ContextUsage(blocks, (1000, 600), 2048)
    assert "nearly fill the window" in usage_report(full, "here")
    assert usage_report(ContextUsage((), (), 2048), "here") == "No context blocks in here yet."


def test_small_texts() -> None:
    assert strip_mention("<@42> what is <@!42>this?", 42) == "what is  this?"
    assert strip_mention("<@43> hi", 42) == "<@43> hi"
    assert is_text_file("Notes.MD") and is_text_file("a.txt")
    assert not is_text_file("a.pdf") and not is_text_file("md")
    assert thread_name("  a \n b ") == "a b"
    assert thread_name("") == "Context"
    assert len(thread_name("x" * 300)) == 100
    assert rate_limited(12.4, 5) == (
        "You are asking too fast: at most 5 questions a minute. Try again in 12 s."
    )


async def test_running_answers_by_conversation_user_and_job() -> None:
    cancelled: list[str] = []

    async def cancel(job_id: str) -> None:
        cancelled.append(job_id)

    running = RunningAnswers(cancel)
    here, there = ConversationKey("d", "g", "1"), ConversationKey("d", "g", "2")
    a = running.start(here, 1)
    b = running.start(here, 2)
    c = running.start(there, 1)
    a.job_id = "job-a"
    assert running.of_user(here, 1) == [a]
    assert running.by_job("job-a") is a and running.by_job("nope") is None
    assert not await running.wait_idle(0.01)
    await running.stop(b)  # before its job is queued: cancelled once it is
    assert b.stopping and cancelled == []
    await running.queued(b, "job-b")
    await running.stop(a)
    assert cancelled == ["job-b", "job-a"]
    for answer in (a, b, c):
        running.finish(answer)
    assert len(running) == 0 and await running.wait_idle(0.01)
