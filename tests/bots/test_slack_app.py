"""The real slack-bolt app over the chat service and the real worker on the tiny model.

Requests are signed like Slack signs them and dispatched to the app; its Web API calls go to
the protocol-true fake in tests/fakes/slack.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from slack_bolt.async_app import AsyncApp

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.slack.format import escape
from airoboros_bot.config.keys import Keys
from airoboros_bot.conversations.models import ConversationKey, Mode
from tests.bots import slack_fixtures
from tests.bots.slack_fixtures import (
    AppFactory,
    bot_messages,
    dispatch,
    dispatch_and_finish,
    ephemerals,
    is_final,
    job_outputs,
    thread_linked,
)
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    Call,
    FakeSlack,
    block_action,
    command_body,
    event_envelope,
    mention_event,
    message_action,
)

fake, client, make_app = slack_fixtures.fake, slack_fixtures.client, slack_fixtures.make_app


@pytest.fixture
def rate_limit() -> int:
    return 20


@pytest.fixture
def app(make_app: AppFactory, service: ChatService, rate_limit: int) -> AsyncApp:
    return make_app(service, rate_limit_per_minute=rate_limit)


async def eventually(read: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``read()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := await read()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return value


def channel_key(channel: str = "C1", thread: str = "") -> ConversationKey:
    return ConversationKey("slack", TEAM, channel, thread)


def finished(fake: FakeSlack, channel: str, ts: str) -> dict[str, Any] | None:
    """The message once its answer is complete: no writing marker, no Stop button."""
    message = fake.messages[channel].get(ts)
    return message if message is not None and is_final(message) else None


async def answer_of(fake: FakeSlack, post: Call) -> dict[str, Any]:
    """Wait for the answer whose placeholder ``post`` created, and return its final message."""
    channel = post.params["channel"]
    index = fake.calls.index(post)
    posted = [c for c in fake.calls[: index + 1] if c.method == "chat.postMessage"]
    bot_messages = [ts for ts, m in fake.messages[channel].items() if m["user"] == BOT_USER]
    ts = sorted(bot_messages)[len([p for p in posted if p.params["channel"] == channel]) - 1]
    return await fake.wait_for(lambda: finished(fake, channel, ts), what="the final answer")


async def test_ask_acks_fast_then_streams_into_the_placeholder(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    started = time.monotonic()
    response = await dispatch(app, command_body("/ask", "What color are blueberries?"))
    assert response.status == 200
    assert time.monotonic() - started < 3.0
    assert response.body == ""  # nothing echoed: the answer is posted in the channel

    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"), what="placeholder")
    placeholder = posts[0].params
    assert placeholder["channel"] == "C1" and "thread_ts" not in placeholder
    assert placeholder["text"].startswith("Thinking")
    header = placeholder["blocks"][0]["elements"][0]["text"]
    assert header == "<@U1> asked: What color are blueberries?"
    # The Stop button comes with the placeholder, not with a later edit.
    (stop,) = [b for b in placeholder["blocks"] if b["type"] == "actions"]
    job_id, owner = stop["elements"][0]["value"].split(" ")
    assert owner == "U1" and len(job_id) >= 8
    ts = next(iter(fake.messages["C1"]))
    message = await fake.wait_for(lambda: finished(fake, "C1", ts), what="the final answer")

    updates = fake.calls_to("chat.update")
    assert all(u.params["ts"] == ts for u in updates)
    # The answer's thread is a new conversation, owned by the asker.
    conversation = channel_key(thread=ts)
    history = await service.store.history(conversation)
    assert [t.user for t in history] == ["What color are blueberries?"]
    assert await service.owner(conversation) == "U1"
    assert message["text"] == (escape(history[0].assistant.strip()) or message["text"])
    # Replies in the answer's thread continue that conversation, without a mention.
    reply = fake.user_message("C1", "And strawberries?", user="U2", thread_ts=ts)
    await dispatch(app, event_envelope(reply), kind="json")
    second = await fake.wait_for(
        lambda: [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts],
        what="the answer in the thread",
    )
    await answer_of(fake, second[0])
    history = await service.store.history(conversation)
    assert [t.user for t in history] == ["What color are blueberries?", "And strawberries?"]
    assert await service.store.history(channel_key()) == [], "no channel-wide conversation"


async def test_each_ask_is_its_own_conversation(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    await dispatch(app, command_body("/ask", "Alice's question", user="U1"))
    first = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    await answer_of(fake, first[0])
    await dispatch(app, command_body("/ask", "Bob's question", user="U2"))
    await fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) == 2)
    await answer_of(fake, fake.calls_to("chat.postMessage")[1])
    alice, bob = (m["ts"] for m in bot_messages(fake))
    assert [t.user for t in await service.store.history(channel_key(thread=alice))] == [
        "Alice's question"
    ]
    assert [t.user for t in await service.store.history(channel_key(thread=bob))] == [
        "Bob's question"
    ], "Bob's question is not answered with Alice's as history"


async def test_a_mention_starts_a_thread_conversation(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    mention = fake.user_message("C1", f"<@{BOT_USER}> Name a blue fruit.")
    await dispatch(app, event_envelope(mention_event(mention)), kind="json")
    # The same message also arrives as a plain message event: it must not be answered twice.
    await dispatch(app, event_envelope(mention), kind="json")
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    assert posts[0].params["thread_ts"] == mention["ts"]
    await answer_of(fake, posts[0])

    follow = fake.user_message("C1", "Another one?", thread_ts=mention["ts"])
    await dispatch(app, event_envelope(follow), kind="json")
    await fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) == 2)
    second = fake.calls_to("chat.postMessage")[1]
    assert second.params["thread_ts"] == mention["ts"]
    await answer_of(fake, second)
    history = await service.store.history(channel_key(thread=mention["ts"]))
    assert [t.user for t in history] == ["Name a blue fruit.", "Another one?"]
    assert await service.store.history(channel_key()) == []


async def test_threads_the_bot_never_answered_in_are_left_alone(
    app: AsyncApp, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    parent = fake.user_message("C1", "lunch?")
    reply = fake.user_message("C1", "sure", user="U2", thread_ts=parent["ts"])
    edited = {**fake.user_message("C1", "x"), "subtype": "message_changed"}
    for event in (parent, reply, edited):
        response = await dispatch_and_finish(app, event_envelope(event), kind="json")
        assert response.status == 200
    assert [c.method for c in fake.calls if c.method != "auth.test"] == []
    assert await redis.xlen(Keys(key_prefix).jobs) == 0
    assert await job_outputs(redis, key_prefix) == []
    # The same wait sees an event the bot does handle: the checks above were not too early.
    mention = fake.user_message("C1", f"<@{BOT_USER}> hi", thread_ts=parent["ts"])
    await dispatch_and_finish(app, event_envelope(mention_event(mention)), kind="json")
    assert fake.calls_to("chat.postMessage"), "answered by the time its listener finished"


async def test_context_thread_messages_and_files_become_cited_blocks(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    await dispatch_and_finish(app, command_body("/context", "Blueberry facts"))
    posts = fake.calls_to("chat.postMessage")  # the thread is stored after its parent is posted
    assert "Context: Blueberry facts" in posts[0].params["text"]
    thread = next(iter(fake.messages["C1"]))
    await thread_linked(service, "C1", thread)
    key = channel_key(thread=thread)
    assert await service.context_title(key) == "Blueberry facts"
    assert await service.context_target(channel_key()) == key

    note = fake.user_message("C1", "Blueberries are now green &amp; sweet.", thread_ts=thread)
    await dispatch(app, event_envelope(note), kind="json")
    await fake.wait_for(lambda: ephemerals(fake), what="the confirmation")
    assert "Added block 1" in ephemerals(fake)[0]
    assert fake.calls_to("chat.postEphemeral")[0].params["thread_ts"] == thread

    upload = fake.add_file("notes.md", b"# Notes\nStrawberries are blue.\n", "text/markdown")
    message = fake.user_message("C1", "", user="U2", thread_ts=thread, files=[upload])
    await dispatch(app, event_envelope(message), kind="json")
    await fake.wait_for(lambda: ephemerals(fake, "U2"), what="the file confirmation")

    blocks = await service.store.blocks(key)
    assert [b.text for b in blocks] == [
        "Blueberries are now green & sweet.",
        "# Notes\nStrawberries are blue.",
    ]
    first, second = (b.metadata for b in blocks)
    assert first["url"] == f"https://fake.slack.com/archives/C1/p{note['ts'].replace('.', '')}" + (
        f"?thread_ts={thread}&cid=C1"
    )
    assert first["author"] == "Alice Doe" and first["channel"] == "#general"
    assert (
        first["date"]
        == time.strftime("%Y-%m-%d", time.gmtime(float(note["ts"]))) + first["date"][10:]
    )
    assert second["file"] == "notes.md" and second["author"] == "Bob Roe"
    download = fake.calls_to("files.download")[0]
    assert download.token == fake.bot_token

    question = fake.user_message(
        "C1", f"<@{BOT_USER}> What color are blueberries?", thread_ts=thread
    )
    await dispatch(app, event_envelope(mention_event(question)), kind="json")
    await dispatch(app, event_envelope(question), kind="json")
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage")[1:])
    assert posts[0].params["thread_ts"] == thread
    answer = await answer_of(fake, posts[0])
    assert "*Sources:*" in answer["text"]
    assert f"[1] <{first['url'].replace('|', '%7C')}|Alice Doe in #general, " in answer["text"]
    assert "[2] <https://fake.slack.com/archives/C1/" in answer["text"]
    assert "|notes.md>" in answer["text"]
    assert len(await service.store.blocks(key)) == 2, "questions are not stored as blocks"

    await dispatch(app, command_body("/context", "list"))
    listing = await fake.wait_for(
        lambda: [t for t in ephemerals(fake) if t.startswith("Context of")]
    )
    assert "“Blueberry facts”" in listing[0] and "[2] <" in listing[0]
    assert "2 blocks use" in listing[0] and "2048-token window" in listing[0]
    await dispatch(app, command_body("/context", "clear"))
    await fake.wait_for(lambda: [t for t in ephemerals(fake) if t.startswith("Removed 2")])
    assert await service.store.blocks(key) == []


def choice_buttons(fake: FakeSlack, user: str = "U1") -> list[dict[str, Any]]:
    """The buttons of the last private "where should this go?" question to ``user``."""
    asks = [
        c.params
        for c in fake.calls_to("chat.postEphemeral")
        if c.params["user"] == user and c.params.get("blocks")
    ]
    return asks[-1]["blocks"][-1]["elements"] if asks else []


async def test_add_as_context_asks_where_the_block_goes(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    anywhere = fake.user_message("C1", "The meeting moved to Friday.", user="U2")
    hook = fake.response_url()
    response = await dispatch(app, message_action(anywhere, response_url=hook), kind="payload")
    assert response.status == 200
    buttons = await fake.wait_for(lambda: choice_buttons(fake), what="the private question")
    assert [b["action_id"] for b in buttons] == ["context_to_new", "context_cancel"]
    assert await service.store.blocks(channel_key()) == [], "nothing is added silently"

    # "New context thread": a context thread is opened, owned by the user, with the block.
    click = block_action("context_to_new", buttons[0]["value"], message_ts="9.1")
    await dispatch(app, {**click, "response_url": hook}, kind="payload")
    answered = await fake.wait_for(lambda: fake.calls_to("response_url"))
    assert answered[-1].params["replace_original"] is True
    assert "“Context from Bob Roe”" in answered[-1].params["text"]
    (thread,) = [m["ts"] for m in bot_messages(fake)]
    await thread_linked(service, "C1", thread)
    (block,) = await service.store.blocks(channel_key(thread=thread))
    assert block.text == anywhere["text"] and block.metadata["author"] == "Bob Roe"
    assert await service.owner(channel_key(thread=thread)) == "U1"
    # The same button again: the choice was used up.
    await dispatch(app, {**click, "response_url": hook}, kind="payload")
    await fake.wait_for(lambda: len(fake.calls_to("response_url")) == 2)
    assert "expired" in fake.calls_to("response_url")[-1].params["text"]

    # Now the channel has a current context thread: it is offered first.
    later = fake.user_message("C1", "Also bring pears.", user="U2")
    await dispatch(app, message_action(later, response_url=hook), kind="payload")
    await fake.wait_for(lambda: len(choice_buttons(fake)) == 3)
    buttons = choice_buttons(fake)
    assert buttons[0]["action_id"] == "context_to_current"
    assert "Context from Bob Roe" in buttons[0]["text"]["text"]
    click = block_action("context_to_current", buttons[0]["value"], message_ts="9.2")
    await dispatch(app, {**click, "response_url": hook}, kind="payload")
    await fake.wait_for(lambda: len(fake.calls_to("response_url")) == 3)
    blocks = await service.store.blocks(channel_key(thread=thread))
    assert [b.text for b in blocks] == [anywhere["text"], "Also bring pears."]
    assert blocks[1].metadata["url"].endswith(later["ts"].replace(".", ""))

    # Cancel adds nothing; another user cannot answer someone else's question.
    third = fake.user_message("C1", "Not this one.", user="U2")
    await dispatch(app, message_action(third, response_url=hook), kind="payload")
    await fake.wait_for(lambda: len([c for c in fake.calls_to("chat.postEphemeral")]) == 3)
    token = choice_buttons(fake)[0]["value"]
    stranger = block_action("context_to_current", token, message_ts="9.3", user="U2")
    await dispatch(app, {**stranger, "response_url": hook}, kind="payload")
    await fake.wait_for(lambda: len(fake.calls_to("response_url")) == 4)
    assert "expired" in fake.calls_to("response_url")[-1].params["text"]
    cancel = block_action("context_cancel", token, message_ts="9.3")
    await dispatch(app, {**cancel, "response_url": hook}, kind="payload")
    await fake.wait_for(lambda: len(fake.calls_to("response_url")) == 5)
    assert fake.calls_to("response_url")[-1].params["text"] == "Nothing was added."
    assert len(await service.store.blocks(channel_key(thread=thread))) == 2

    # A message inside a conversation thread goes to that conversation without asking.
    inside = fake.user_message("C1", "Pears are yellow.", user="U2", thread_ts=thread)
    await dispatch(app, message_action(inside, response_url=hook), kind="payload")
    await fake.wait_for(lambda: len(fake.calls_to("response_url")) == 6)
    assert len(await service.store.blocks(channel_key(thread=thread))) == 3
    assert len(fake.calls_to("chat.postEphemeral")) == 3, "no question asked"
    assert await service.store.blocks(channel_key()) == []


async def test_stop_button_cancels_the_job_of_its_owner_only(
    app: AsyncApp, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    stranger = block_action("stop_answer", "job123 U1", message_ts="1.000001", user="U2")
    assert (await dispatch(app, stranger, kind="payload")).status == 200
    await fake.wait_for(lambda: ephemerals(fake, "U2"))
    assert ephemerals(fake, "U2") == ["Only <@U1> can stop this answer."]
    assert await redis.get(keys.job_cancel("job123")) is None

    owner = block_action("stop_answer", "job123 U1", message_ts="1.000001", user="U1")
    started = time.monotonic()
    assert (await dispatch(app, owner, kind="payload")).status == 200
    assert time.monotonic() - started < 3.0
    assert await eventually(lambda: redis.get(keys.job_cancel("job123"))) == "1"


@pytest.mark.parametrize("rate_limit", [1])
async def test_rate_limit_gets_a_private_reply(
    app: AsyncApp, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    await dispatch(app, command_body("/ask", "first"))
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    await answer_of(fake, posts[0])
    response = await dispatch(app, command_body("/ask", "second"))
    assert response.status == 200
    replies = await fake.wait_for(lambda: ephemerals(fake))
    assert replies[0].startswith("Slow down: you can ask 1 questions a minute. Try again in ")
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert len(await job_outputs(redis, key_prefix)) == 1
    # Another person is not limited by the first one.
    await dispatch(app, command_body("/ask", "mine", user="U2"))
    await fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) == 2)


async def test_channel_modes_are_for_admins_and_apply_to_new_conversations(
    make_app: AppFactory, fake: FakeSlack, service: ChatService
) -> None:
    app = make_app(service, admin_user_ids=["U2"], rate_limit_per_minute=20)
    await dispatch(app, command_body("/ask-mode"))
    await fake.wait_for(lambda: ephemerals(fake))
    assert ephemerals(fake)[0].startswith("New conversations in this channel use *history*")
    await dispatch(app, command_body("/ask-mode", "no-history"))  # U1 is no admin
    await fake.wait_for(lambda: len(ephemerals(fake)) == 2)
    assert ephemerals(fake)[1].startswith("Only an admin can change this channel's default")
    assert await service.channel_mode(channel_key()) is Mode.HISTORY
    await dispatch(app, command_body("/ask-mode", "sometimes", user="U2"))
    await fake.wait_for(lambda: ephemerals(fake, "U2"))
    assert ephemerals(fake, "U2")[0].startswith("Unknown mode")
    await dispatch(app, command_body("/ask-mode", "no-history", user="U2"))
    await fake.wait_for(lambda: len(ephemerals(fake, "U2")) == 2)
    assert await service.channel_mode(channel_key()) is Mode.NO_HISTORY

    await dispatch(app, command_body("/ask", "forget me"))
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    await answer_of(fake, posts[0])
    ts = bot_messages(fake)[0]["ts"]
    assert await service.get_mode(channel_key(thread=ts)) is Mode.NO_HISTORY
    assert await service.store.history(channel_key(thread=ts)) == []


async def test_only_the_owner_or_an_admin_resets_or_switches_a_thread(
    make_app: AppFactory, fake: FakeSlack, service: ChatService
) -> None:
    fake.add_user("UADM", "root", "Root Admin", is_admin=True)
    app = make_app(service, rate_limit_per_minute=20)
    mention = fake.user_message("C1", f"<@{BOT_USER}> Name a blue fruit.")
    await dispatch(app, event_envelope(mention_event(mention)), kind="json")
    posts = await fake.wait_for(lambda: fake.calls_to("chat.postMessage"))
    await answer_of(fake, posts[0])
    key = channel_key(thread=mention["ts"])
    assert len(await service.store.history(key)) == 1

    async def say(user: str, text: str) -> str:
        before = len(ephemerals(fake, user))
        said = fake.user_message("C1", f"<@{BOT_USER}> {text}", user=user, thread_ts=mention["ts"])
        await dispatch(app, event_envelope(mention_event(said)), kind="json")
        await fake.wait_for(lambda: len(ephemerals(fake, user)) > before)
        return ephemerals(fake, user)[-1]

    refused = await say("U2", "reset")
    assert refused.startswith("Only the person who started this conversation or an admin")
    assert (await say("U2", "mode no-history")).startswith("Only the person")
    assert len(await service.store.history(key)) == 1
    assert await service.get_mode(key) is Mode.HISTORY
    assert "*history* mode" in await say("U2", "mode")  # anyone may look
    assert "now in *no-history*" in await say("U1", "mode no-history")
    assert (await say("UADM", "reset")).startswith("Forgot this thread's conversation (1 turns)")
    assert await service.store.history(key) == []
    assert len(fake.calls_to("chat.postMessage")) == 1, "commands are not questions"


async def test_private_questions_are_ephemeral_and_kept_per_user(
    app: AsyncApp, fake: FakeSlack, service: ChatService
) -> None:
    await dispatch(app, command_body("/ask-private", "my secret question"))
    replies = await fake.wait_for(lambda: len(ephemerals(fake)) >= 2 and ephemerals(fake))
    assert replies[0].startswith("Thinking… (only you can see")
    answer = fake.calls_to("chat.postEphemeral")[1].params
    assert answer["blocks"][0]["elements"][0]["text"] == (
        "<@U1> asked privately: my secret question"
    )
    assert fake.calls_to("chat.postMessage") == [], "nothing posted for everyone"
    mine = channel_key().private_for("U1")
    assert [t.user for t in await service.store.history(mine)] == ["my secret question"]
    assert await service.store.history(channel_key()) == []
    assert await service.store.history(channel_key().private_for("U2")) == []

    await dispatch(app, command_body("/ask-reset", user="U2"))  # Bob's own, empty
    await fake.wait_for(lambda: ephemerals(fake, "U2"))
    assert ephemerals(fake, "U2")[0].startswith("Forgot your private conversation in this")
    assert len(await service.store.history(mine)) == 1
    await dispatch(app, command_body("/ask-reset"))
    await fake.wait_for(lambda: "(1 turns)" in ephemerals(fake)[-1])
    assert await service.store.history(mine) == []
