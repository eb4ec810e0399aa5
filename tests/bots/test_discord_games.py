"""Trivia and word games on Discord: the real discord.py client against the fake REST server,
gateway events injected, the real Redis, and a clock the tests move by hand (the end-to-end game
runs on the real worker with the tiny demo model and a fast clock)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import discord
import pytest
import redis.asyncio as aioredis

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.discord.client import AiroborosBot
from airoboros_bot.bots.discord.commands.games import trivia_post
from airoboros_bot.bots.discord.game_view import escape, game_embed
from airoboros_bot.bots.discord.text import TRIVIA_CHANNEL_NOTE
from airoboros_bot.bots.games import (
    GameEngine,
    GameKind,
    GameMessage,
    MessageKind,
    Question,
    ScaledClock,
)
from airoboros_bot.bots.games.messages import hint, question
from airoboros_bot.bots.games.models import QuestionKind
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import GameSettings
from tests.bots import discord_fixtures
from tests.bots.conftest import GameEngineFactory
from tests.bots.discord_fixtures import key, running_bot
from tests.bots.games.conftest import FakeClock
from tests.fakes.discord import (
    EPHEMERAL,
    DiscordError,
    FakeDiscord,
    World,
    assert_no_mentions,
    inject,
)

fake, world = discord_fixtures.fake, discord_fixtures.world

Games = Callable[..., GameEngine]
DEFAULT_ROUNDS = GameSettings().default_rounds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def games(make_game_engine: GameEngineFactory, clock: FakeClock) -> Games:
    """Game engines on the hand-moved clock, questions from the bank."""

    def build(**settings: object) -> GameEngine:
        values: dict[str, object] = {"use_model": False, "between_rounds_s": 0, **settings}
        return make_game_engine(None, clock=clock, seed=11, **values)

    return build


@dataclass
class Table:
    """What a game test plays with: the fake Discord and its world, the chat service on the
    test's Redis, and new game engines (`games`)."""

    fake: FakeDiscord
    world: World
    service: ChatService
    redis: aioredis.Redis
    key_prefix: str
    games: Games

    def bot(
        self, engine: GameEngine | None, **options: object
    ) -> AbstractAsyncContextManager[AiroborosBot]:
        """The bot playing ``engine``'s games, logged in to the fake."""
        return running_bot(
            self.fake,
            self.world,
            self.service,
            self.redis,
            self.key_prefix,
            games=engine,
            **options,
        )

    async def trivia(
        self,
        bot: AiroborosBot,
        engine: GameEngine,
        rounds: int | None = None,
        *,
        channel: dict | None = None,
        user: dict | None = None,
        **options: object,
    ) -> tuple[dict, Question]:
        """``/trivia start`` in ``channel`` (#general) by ``user`` (Alice), with ``rounds``
        and other ``options`` (``topic``, ``roles``); waits for the first question. Returns the
        command's payload and that question."""
        channel = channel or self.world.general
        roles = options.pop("roles", ())
        values = {**({"rounds": rounds} if rounds else {}), **options}
        payload = slash(
            self.fake,
            bot,
            "trivia",
            channel,
            user or self.world.alice,
            values or None,
            subcommand="start",
            roles=roles,
        )
        await embed_titled(self.fake, channel, f"Question 1/{rounds or DEFAULT_ROUNDS}")
        return payload, await open_question(engine, key(self.world, channel))


@pytest.fixture
def table(
    fake: FakeDiscord,
    world: World,
    service: ChatService,
    redis: aioredis.Redis,
    key_prefix: str,
    games: Games,
) -> Table:
    return Table(fake, world, service, redis, key_prefix, games)


# -- helpers -------------------------------------------------------------------------------------
def bot_embeds(fake: FakeDiscord, channel: dict) -> list[dict]:
    """Every embed the bot posted in a channel (interaction responses included), in order."""
    posted = fake.channel_messages(channel["id"], fake.bot_user["id"])
    return [embed for message in posted for embed in message["embeds"]]


async def embed_titled(fake: FakeDiscord, channel: dict, start: str, count: int = 1) -> dict:
    """The ``count``-th embed whose title starts with ``start``, waiting for it."""

    def found() -> dict | None:
        hits = [e for e in bot_embeds(fake, channel) if e.get("title", "").startswith(start)]
        return hits[count - 1] if len(hits) >= count else None

    return await fake.wait_for(found, 15, f"an embed titled {start!r}")


async def open_question(engine: GameEngine, channel: object) -> Question:
    status = await engine.status(channel)  # type: ignore[arg-type]
    assert status is not None and status.phase == "open" and status.question is not None
    return status.question


def right(q: Question) -> str:
    return q.key if q.kind is QuestionKind.CHOICE else q.answer


def wrong(q: Question) -> str:
    if q.kind is QuestionKind.CHOICE:
        return next("ABCDE"[i] for i, o in enumerate(q.options) if o != q.answer)
    return "certainly not this"


def say(fake: FakeDiscord, bot: discord.Client, channel: dict, user: dict, text: str, **kw) -> dict:
    """A user posts ``text`` in ``channel``; returns the message."""
    payload = fake.message_create(channel, user, text, **kw)
    inject(bot, "MESSAGE_CREATE", payload)
    return payload


async def reacted(fake: FakeDiscord, message: dict, emoji: str) -> None:
    await fake.wait_for(lambda: emoji in fake.reactions(message["id"]), 10, f"{emoji} reaction")


def replies_to(fake: FakeDiscord, message: dict) -> list[dict]:
    """The bot's replies to a message."""
    return [
        m
        for m in fake.channel_messages(message["channel_id"], fake.bot_user["id"])
        if str((m.get("message_reference") or {}).get("message_id")) == message["id"]
    ]


def callback(fake: FakeDiscord, payload: dict) -> dict:
    [call] = [r for r in fake.interaction_calls(payload) if r.path.endswith("/callback")]
    return call.json


async def responded(fake: FakeDiscord, payload: dict) -> dict:
    """Wait for the interaction's callback; return its body."""
    await fake.wait_for(lambda: fake.interactions[payload["token"]].acknowledged, 10)
    return callback(fake, payload)


def slash(fake: FakeDiscord, bot: discord.Client, *args, **kwargs) -> dict:
    payload = fake.slash(*args, **kwargs)
    inject(bot, "INTERACTION_CREATE", payload)
    return payload


# -- pure parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("post", "expected"),
    [
        ("trivia", (GameKind.TRIVIA, "", "", 1)),
        ("Trivia space planets 3", (GameKind.TRIVIA, "space planets", "", 3)),
        ("trivia start space 2", (GameKind.TRIVIA, "space", "", 2)),
        ("anagram", (GameKind.ANAGRAM, "", "", 1)),
        ("ANAGRAM 2", (GameKind.ANAGRAM, "", "", 2)),
        ("words", (GameKind.WORDS, "", "", 1)),
        ("words en 2", (GameKind.WORDS, "", "en", 2)),
        ("anagram please", None),
        ("anagram ²", None),
        ("words en ex", None),
        ("trivial pursuit", None),
        ("what is trivia", None),
        ("", None),
    ],
)
def test_trivia_channel_posts_that_start_a_game(post: str, expected: tuple | None) -> None:
    request = trivia_post(post)
    got = request and (request.kind, request.topic, request.prefix, request.rounds)
    assert got == expected


def test_question_embed_letters_options_and_escapes_model_text() -> None:
    q = Question(
        QuestionKind.CHOICE,
        "Which *planet* is <@123> [here](https://x.test)?",
        answer="Mars_2",
        options=("Venus", "Mars_2", "# Jupiter", "Pluto"),
    )
    embed = game_embed(question(GameKind.TRIVIA, q, 1, 5, 20, 10)).to_dict()
    assert embed["title"] == "Question 1/5"
    lines = embed["description"].split("\n")
    assert lines[0] == r"Which \*planet\* is \<@123\> \[here\](https://x.test)?"
    assert lines[2:] == [r"**A)** Venus", r"**B)** Mars\_2", r"**C)** \# Jupiter", "**D)** Pluto"]
    assert embed["footer"]["text"] == "20 s · 10 points · answer with a letter (A-D) or the option"
    short = Question(QuestionKind.SHORT, "Red planet?", answer="the mars rover")
    shown = game_embed(hint(GameKind.TRIVIA, short, 1, 5, "t _ _   m _ _ _ _", 6, 8.0)).to_dict()
    assert shown["description"] == "`t _ _   m _ _ _ _`"
    assert shown["footer"]["text"] == "now 6 points · 8 s left"
    assert escape("- a\n> b\n+ c") == "\\- a\n\\> b\n\\+ c"


def test_embeds_stay_within_discords_limits() -> None:
    long = GameMessage(MessageKind.INFO, "x" * 9000, None, title="t" * 400)
    embed = game_embed(long).to_dict()
    assert len(embed["title"]) == 256 and len(embed["description"]) == 4096


# -- commands ------------------------------------------------------------------------------------
async def test_game_commands_are_synced_as_discord_requires(table: Table) -> None:
    fake = table.fake
    async with table.bot(table.games()) as bot:
        bad = {
            "name": "mixed",
            "description": "a subcommand beside an option",
            "options": [
                {"type": 1, "name": "start", "description": "start"},
                {"type": 4, "name": "rounds", "description": "rounds"},
            ],
        }
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.bulk_upsert_global_commands(bot.application_id, [bad])
    assert refused.value.status == 400 and refused.value.code == 50035
    sync = fake.calls("PUT", r"/applications/\d+/commands")[0]
    commands = {c["name"]: c for c in sync.json}
    assert {"trivia", "anagram", "words", "ask", "help"} <= set(commands)
    trivia = {o["name"]: o for o in commands["trivia"]["options"]}
    assert {name: o["type"] for name, o in trivia.items()} == {
        "start": 1,
        "stop": 1,
        "leaderboard": 1,
    }
    assert [(o["name"], o["type"], o["required"]) for o in trivia["start"]["options"]] == [
        ("topic", 3, False),
        ("rounds", 4, False),
    ]
    assert trivia["start"]["options"][1]["min_value"] == 1
    [scope] = trivia["leaderboard"]["options"]
    assert [c["value"] for c in scope["choices"]] == ["channel", "server"]
    assert [o["name"] for o in commands["anagram"]["options"]] == ["rounds"]
    assert [o["name"] for o in commands["words"]["options"]] == ["prefix", "rounds"]


async def test_without_an_engine_there_are_no_game_commands(table: Table) -> None:
    fake, world = table.fake, table.world
    async with table.bot(None) as bot:
        help_ = slash(fake, bot, "help", world.general, world.alice)
        reply = (await responded(fake, help_))["data"]["content"]
    names = {c["name"] for c in fake.calls("PUT", r"/applications/\d+/commands")[0].json}
    assert not {"trivia", "anagram", "words"} & names
    assert "/trivia" not in reply


async def test_starting_a_game_posts_the_announcement_and_a_question(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    async with table.bot(engine) as bot:
        start, q = await table.trivia(bot, engine, 2, topic="space")
        body = callback(fake, start)
        [asked] = [e for e in bot_embeds(fake, world.general) if e["title"] == "Question 1/2"]
        help_ = slash(fake, bot, "help", world.general, world.alice)
        help_text = (await responded(fake, help_))["data"]["content"]

    assert body["type"] == 4, "the announcement answers the command"
    [announcement] = body["data"]["embeds"]
    assert announcement["title"] == "Trivia starts"
    assert "2 questions about space (started by Alice)" in announcement["description"]
    assert "/trivia stop" in announcement["description"]
    assert body["data"]["allowed_mentions"] == {"parse": []}
    assert asked["description"].startswith(escape(q.text))
    if q.options:
        assert "**A)** " + escape(q.options[0]) in asked["description"]
    for command in ("/trivia start", "/trivia stop", "/trivia leaderboard", "/anagram", "/words"):
        assert command in help_text
    assert_no_mentions(fake)


async def test_a_right_answer_scores_and_the_winner_is_posted(table: Table) -> None:
    fake, world, service, engine = table.fake, table.world, table.service, table.games()
    general = key(world, world.general)
    async with table.bot(engine) as bot:
        _, q = await table.trivia(bot, engine, 1)
        miss = say(fake, bot, world.general, world.bob, wrong(q))
        await reacted(fake, miss, "❌")
        hit = say(fake, bot, world.general, world.alice, right(q))
        await reacted(fake, hit, "✅")
        winner = await embed_titled(fake, world.general, "Correct")
        final = await embed_titled(fake, world.general, "Trivia over")
        again = say(fake, bot, world.general, world.alice, right(q))
        await fake.wait_for(lambda: replies_to(fake, again), 10, "the too-late note")

    assert winner["description"] == f"**Alice** got it: **{escape(q.shown_answer)}** (+10 points)"
    assert winner["title"] == "Correct · round 1/1"
    assert "🥇 **Alice** · 10 points" in final["description"]
    channel_board = await engine.leaderboard(general, "channel")
    server_board = await engine.leaderboard(general, "workspace")
    for board in (channel_board, server_board):
        assert [(r.user_id, r.name, r.points) for r in board.leaderboard] == [
            (world.alice["id"], "Alice", 10)
        ]
    assert replies_to(fake, miss) == [], "a wrong answer only gets a reaction"
    [late] = replies_to(fake, again)
    assert late["content"].startswith("This game is over, so no points for that.")
    assert not await service.store.history(general), "answers are not chat"
    assert_no_mentions(fake)


async def test_a_second_game_in_the_channel_is_refused_privately(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    async with table.bot(engine) as bot:
        await table.trivia(bot, engine)
        again = slash(fake, bot, "trivia", world.general, world.bob, subcommand="start")
        refused = await responded(fake, again)
        words = slash(fake, bot, "words", world.general, world.bob, {"prefix": "en"})
        also_refused = await responded(fake, words)
        elsewhere = slash(fake, bot, "anagram", world.random, world.bob, {"rounds": 1})
        await embed_titled(fake, world.random, "Anagram 1/1")
        too_many = slash(fake, bot, "anagram", world.general, world.bob, {"rounds": 999})
        bad_rounds = await responded(fake, too_many)

    for body in (refused, also_refused):
        assert body["type"] == 4 and body["data"]["flags"] == EPHEMERAL
        assert "A Trivia game is already running here (round 1 of 5)" in body["data"]["content"]
        assert "/trivia stop" in body["data"]["content"]
    assert callback(fake, elsewhere)["type"] == 4, "another channel plays its own game"
    assert bad_rounds["data"]["content"] == "Rounds must be between 1 and 30."
    status = await engine.status(key(world, world.general))
    assert status is not None and status.kind is GameKind.TRIVIA and status.started_by == "Alice"


async def test_two_starts_at_once_give_one_game_and_one_refusal(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    async with table.bot(engine) as bot:
        both = [
            slash(fake, bot, "trivia", world.general, user, subcommand="start")
            for user in (world.alice, world.bob)
        ]
        bodies = [await responded(fake, p) for p in both]
        await embed_titled(fake, world.general, "Question 1/5")

    announced = [b for b in bodies if b["data"].get("embeds")]
    refused = [b for b in bodies if b["data"].get("flags") == EPHEMERAL]
    assert len(announced) == 1 and len(refused) == 1
    assert "already running here" in refused[0]["data"]["content"]
    starts = [e for e in bot_embeds(fake, world.general) if e["title"] == "Trivia starts"]
    assert starts == announced[0]["data"]["embeds"], "one announcement, as the command's answer"


async def test_stop_reveals_the_answer_and_late_answers_get_one_note(table: Table) -> None:
    fake, world, service, engine = table.fake, table.world, table.service, table.games()
    general = key(world, world.general)
    async with table.bot(engine) as bot:
        _, q = await table.trivia(bot, engine)
        stop = slash(fake, bot, "trivia", world.general, world.bob, subcommand="stop")
        body = await responded(fake, stop)
        late = say(fake, bot, world.general, world.alice, right(q))
        await fake.wait_for(lambda: replies_to(fake, late), 10, "the too-late note")
        later = say(fake, bot, world.general, world.alice, right(q))
        # Messages of a channel are handled in order: once this question is answered by the
        # model, the late answer before it has been handled too.
        mention = f"<@{fake.bot_user['id']}> who won?"
        chat = say(fake, bot, world.general, world.bob, mention, mentions=[fake.bot_user])
        await fake.wait_for(lambda: replies_to(fake, chat), 15, "the answer to the question")
        assert await bot.running.wait_idle(15)
        stop_again = slash(fake, bot, "trivia", world.general, world.bob, subcommand="stop")
        nothing_to_stop = await responded(fake, stop_again)

    [final] = body["data"]["embeds"]
    assert final["title"] == "Trivia over"
    assert f"stopped by Bob (the answer was: {escape(q.shown_answer)})" in final["description"]
    assert "Nobody scored this time." in final["description"]
    [note] = replies_to(fake, late)
    assert note["content"] == (
        "This game is over, so no points for that. Start a new one with /trivia start, "
        "/anagram or /words."
    )
    assert replies_to(fake, later) == [] and fake.reactions(later["id"]) == [], "told once"
    [answer] = replies_to(fake, chat)
    [turn] = await service.store.history(key(world, world.general, answer["id"]))
    assert turn.user == "who won?", "after the game, questions go to the model again"
    assert nothing_to_stop["data"]["content"] == "No game is running here."
    assert (await engine.leaderboard(general)).leaderboard == ()
    assert await engine.status(general) is None


async def test_leaderboards_of_the_channel_and_of_the_server(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    async with table.bot(engine) as bot:
        for channel, player, rounds in (
            (world.general, world.alice, 2),
            (world.random, world.bob, 1),
        ):
            slash(fake, bot, "trivia", channel, player, {"rounds": rounds}, subcommand="start")
            for number in range(1, rounds + 1):
                await embed_titled(fake, channel, f"Question {number}/{rounds}")
                say(
                    fake,
                    bot,
                    channel,
                    player,
                    right(await open_question(engine, key(world, channel))),
                )
            await embed_titled(fake, channel, "Trivia over")
        here = slash(fake, bot, "trivia", world.general, world.bob, subcommand="leaderboard")
        server = slash(
            fake,
            bot,
            "trivia",
            world.general,
            world.bob,
            {"scope": "server"},
            subcommand="leaderboard",
        )
        quiet = fake.text_channel(world.guild["id"], "quiet")
        empty = slash(fake, bot, "trivia", quiet, world.bob, subcommand="leaderboard")
        bodies = [await responded(fake, p) for p in (here, server, empty)]

    [here_board], [server_board], [empty_board] = (b["data"]["embeds"] for b in bodies)
    assert all(b["type"] == 4 and not b["data"].get("flags") for b in bodies), "posted for all"
    assert here_board["title"] == "Top players in this channel (all time)"
    assert here_board["description"] == "🥇 **Alice** · 20 points"
    assert server_board["title"] == "Top players in this server (all time)"
    assert server_board["description"] == "🥇 **Alice** · 20 points\n🥈 **Bob** · 10 points"
    assert empty_board["description"] == "Nobody has scored yet."
    assert_no_mentions(fake)


async def test_a_trivia_channel_plays_on_demand_and_leaves_the_model_out(table: Table) -> None:
    fake, world, service, engine = table.fake, table.world, table.service, table.games()
    room = key(world, world.random)
    bot_id = fake.bot_user["id"]
    async with table.bot(engine, trivia_channel_ids=[int(world.random["id"])]) as bot:
        asked = say(
            fake,
            bot,
            world.random,
            world.alice,
            f"<@{bot_id}> what is 2+2?",
            mentions=[fake.bot_user],
        )
        await fake.wait_for(lambda: replies_to(fake, asked), 10, "the trivia-channel note")
        say(fake, bot, world.random, world.alice, "trivia")
        announcement = await embed_titled(fake, world.random, "Trivia starts")
        await embed_titled(fake, world.random, "Question 1/1")
        say(fake, bot, world.random, world.bob, right(await open_question(engine, room)))
        final = await embed_titled(fake, world.random, "Trivia over")
        say(fake, bot, world.random, world.bob, "words en")
        words = await embed_titled(fake, world.random, "Word list 1/1")
        # Elsewhere the same post is ordinary chat: no game (checked after a question there
        # has been answered, which comes after the post in that channel's order).
        say(fake, bot, world.general, world.alice, "trivia")
        question = say(
            fake, bot, world.general, world.alice, f"<@{bot_id}> hi", mentions=[fake.bot_user]
        )
        await fake.wait_for(lambda: replies_to(fake, question), 15, "an answer in #general")
        assert await bot.running.wait_idle(15)

    [note] = replies_to(fake, asked)
    assert note["content"] == TRIVIA_CHANNEL_NOTE
    for message in fake.channel_messages(world.random["id"], bot_id):
        answered = await service.conversation_of(key(world, world.random, message["id"]))
        assert answered is None, "the model was not asked in #random"
    assert "Trivia: 1 question about anything (started by Alice)" in announcement["description"]
    assert "🥇 **Bob** · 10 points" in final["description"]
    assert "Give me 7 words that start with EN." in words["description"]
    assert await engine.status(key(world, world.general)) is None
    [answer] = replies_to(fake, question)
    conversation = key(world, world.general, answer["id"])
    assert [t.user for t in await service.store.history(conversation)] == ["hi"]


async def test_the_word_list_scores_every_new_word(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games(words_target=3)
    general = key(world, world.general)
    first, second, third = engine.words.starting_with("en", top=5000)[:3]
    assert "enxq" not in engine.words
    async with table.bot(engine) as bot:
        start = slash(fake, bot, "words", world.general, world.alice, {"prefix": "EN"})
        await responded(fake, start)
        asked = await embed_titled(fake, world.general, "Word list 1/1")
        two = say(fake, bot, world.general, world.alice, f"{first}, {second}")
        await reacted(fake, two, "✅")
        again = say(fake, bot, world.general, world.bob, first)
        await reacted(fake, again, "🔁")
        bad = say(fake, bot, world.general, world.bob, "enxq")
        await reacted(fake, bad, "❌")
        last = say(fake, bot, world.general, world.bob, third.upper())
        await reacted(fake, last, "✅")
        done = await embed_titled(fake, world.general, "Round over")
        await embed_titled(fake, world.general, "Word list over")

    assert asked["description"] == "Give me 3 words that start with EN."
    assert asked["footer"]["text"].startswith("60 s · 1 point a word · write words here")
    assert f"{first} (Alice), {second} (Alice), {third} (Bob)" in done["description"]
    board = await engine.leaderboard(general)
    assert [(r.name, r.points) for r in board.leaderboard] == [("Alice", 2), ("Bob", 1)]
    assert all(replies_to(fake, m) == [] for m in (two, again, bad, last)), "reactions only"


async def test_an_anagram_game_in_a_thread(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    thread = fake.thread(world.general, "games", owner_id=world.alice["id"])
    in_thread = key(world, world.general, thread["id"])
    async with table.bot(engine) as bot:
        slash(fake, bot, "anagram", thread, world.alice, {"rounds": 1})
        riddle = await embed_titled(fake, thread, "Anagram 1/1")
        q = await open_question(engine, in_thread)
        answer = say(fake, bot, thread, world.bob, q.answer.upper())
        await reacted(fake, answer, "✅")
        await embed_titled(fake, thread, "Anagrams over")

    assert riddle["description"] == escape(q.text)
    assert bot_embeds(fake, world.general) == [], "everything went to the thread"
    assert await engine.status(key(world, world.general)) is None
    board = await engine.leaderboard(in_thread)
    assert [(r.name, r.points) for r in board.leaderboard] == [("Bob", 10)]


async def test_a_running_game_resumes_when_the_bot_is_rebuilt(
    table: Table, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake, world = table.fake, table.world
    caplog.set_level(logging.INFO, logger="airoboros_bot.bots.discord.commands.games")
    general = key(world, world.general)
    before = table.games()
    async with table.bot(before) as bot:
        _, q = await table.trivia(bot, before, 2)
    assert not before.running(general), "closing the bot stops its game loops"
    assert await open_question(before, general) == q, "the question stays open in Redis"

    after = table.games()
    async with table.bot(after) as bot:
        assert not after.running(general), "nothing resumes before the gateway is ready"
        inject(bot, "READY", fake.ready([world.guild]))
        inject(bot, "GUILD_CREATE", world.guild)
        await fake.wait_for(lambda: after.running(general), 10, "the game to resume")
        await clock.idle()
        clock.advance(20)  # the first question's time runs out
        reveal = await embed_titled(fake, world.general, "Time's up")
        await embed_titled(fake, world.general, "Question 2/2")
        second = await open_question(after, general)
        say(fake, bot, world.general, world.bob, right(second))
        await embed_titled(fake, world.general, "Trivia over")

    assert reveal["description"] == escape(f"Time's up! The answer was: {q.shown_answer}.")
    assert "resumed 1 game(s)" in caplog.text
    board = await after.leaderboard(general)
    assert [(r.name, r.points) for r in board.leaderboard] == [("Bob", 10)]


async def test_access_rules_and_the_rate_limit_apply_to_games(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    member = [world.member_role]
    limits = {"rate_limit_per_minute": 1, "role_ids": [int(world.member_role)]}
    async with table.bot(engine, **limits) as bot:
        start, q = await table.trivia(bot, engine, 1, roles=member)
        too_fast = slash(fake, bot, "anagram", world.random, world.alice, roles=member)
        outsider = slash(fake, bot, "anagram", world.random, world.bob)
        refusals = [await responded(fake, p) for p in (too_fast, outsider)]
        ignored = say(fake, bot, world.general, world.bob, right(q))  # bob lacks the role
        counted = say(fake, bot, world.general, world.alice, right(q), roles=member)
        winner = await embed_titled(fake, world.general, "Correct")

    assert callback(fake, start)["type"] == 4
    assert refusals[0]["data"]["flags"] == EPHEMERAL
    assert refusals[0]["data"]["content"].startswith(
        "You are asking too fast: at most 1 questions or new games a minute."
    )
    assert (
        refusals[1]["data"]["content"] == "You need one of the roles set up for me to use me here."
    )
    assert winner["description"].startswith("**Alice** got it")
    assert fake.reactions(ignored["id"]) == [] and fake.reactions(counted["id"]) == ["✅"]
    assert await engine.status(key(world, world.random)) is None


async def test_a_flood_of_answers_gets_one_note_then_silence(table: Table) -> None:
    fake, world = table.fake, table.world
    engine = table.games(multiple_choice_share=0, max_answers_per_question=2)
    async with table.bot(engine) as bot:
        _, q = await table.trivia(bot, engine, 1)
        assert q.kind is QuestionKind.SHORT
        flood = [say(fake, bot, world.general, world.bob, f"guess {i}") for i in range(5)]
        flood.append(say(fake, bot, world.general, world.bob, right(q)))  # out of tries
        hit = say(fake, bot, world.general, world.alice, right(q))
        await reacted(fake, hit, "✅")
        await reacted(fake, flood[1], "❌")
        await fake.wait_for(lambda: replies_to(fake, flood[2]), 10, "the one note")

    assert [fake.reactions(m["id"]) for m in flood] == [["❌"], ["❌"], [], [], [], []]
    assert [len(replies_to(fake, m)) for m in flood] == [0, 0, 1, 0, 0, 0]
    assert (
        replies_to(fake, flood[2])[0]["content"] == "You have used your 2 tries for this question."
    )
    board = await engine.leaderboard(key(world, world.general))
    assert [(r.name, r.points) for r in board.leaderboard] == [("Alice", 10)]


async def test_without_embed_links_the_game_is_posted_as_text(table: Table) -> None:
    fake, world, engine = table.fake, table.world, table.games()
    path = f"POST /channels/{world.general['id']}/messages"
    fake.fail_next[path] = DiscordError(403, 50013, "Missing Permissions")
    async with table.bot(engine) as bot:
        slash(fake, bot, "trivia", world.general, world.alice, {"rounds": 1}, subcommand="start")
        posted = await fake.wait_for(
            lambda: [
                m
                for m in fake.channel_messages(world.general["id"], fake.bot_user["id"])
                if m["content"].startswith("Question 1/1")
            ],
            10,
            "the question as text",
        )
        q = await open_question(engine, key(world, world.general))
    assert q.text in posted[0]["content"] and posted[0]["embeds"] == []
    assert_no_mentions(fake)


# -- end to end ----------------------------------------------------------------------------------
async def test_a_trivia_game_end_to_end_on_the_real_worker(table: Table) -> None:
    fake, world, service, redis = table.fake, table.world, table.service, table.redis
    settings = GameSettings(
        question_time_s=60, between_rounds_s=2, generation_attempts=1, generation_max_new_tokens=24
    )
    # Ten times faster than real time: a 60 s question lasts 6 s.
    engine = GameEngine(redis, Keys(table.key_prefix), service, settings, clock=ScaledClock(10))
    general = key(world, world.general)
    async with table.bot(engine) as bot:
        _, q = await table.trivia(bot, engine, 1, topic="science")
        note = await embed_titled(fake, world.general, "Note")  # posted before the question
        hit = say(fake, bot, world.general, world.alice, right(q))
        await reacted(fake, hit, "✅")
        winner = await embed_titled(fake, world.general, "Correct")
        final = await embed_titled(fake, world.general, "Trivia over")

    assert "did not pass the checks" in note["description"]
    asked = [k async for k in redis.scan_iter(Keys(table.key_prefix).job_output_pattern)]
    assert asked, "the model was asked for a question first"
    assert winner["description"].startswith("**Alice** got it")
    [row] = (await engine.leaderboard(general)).leaderboard
    assert row.name == "Alice" and row.points in settings.points
    assert f"🥇 **Alice** · {row.points} points" in final["description"]
    assert_no_mentions(fake)
