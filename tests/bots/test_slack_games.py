"""Trivia and word games in the real slack-bolt app: signed slash commands and message events,
the fake Web API, the game engine on the real Redis with a fast clock (one end-to-end game on
the real worker with the tiny demo model, whose questions are noise, so the bank stands in)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.games import GameEngine, GameKind, ScaledClock, StartGame, parse_post
from airoboros_bot.bots.games import messages as texts
from airoboros_bot.bots.games.models import LeaderboardRow, Question, QuestionKind
from airoboros_bot.bots.slack.game_format import (
    ANAGRAM_USAGE,
    SLACK_GAME_COMMANDS,
    TRIVIA_CHANNEL_HINT,
    TRIVIA_USAGE,
    game_blocks,
    game_text,
)
from airoboros_bot.bots.slack.game_output import ChannelPacer
from airoboros_bot.bots.slack.games import SLACK_GAME_USAGE
from airoboros_bot.bots.slack.web import WebApi
from airoboros_bot.config.keys import Keys
from airoboros_bot.config.settings import (
    GameSettings,
    Settings,
)
from airoboros_bot.conversations.models import ConversationKey
from tests.bots import slack_fixtures
from tests.bots.conftest import GameEngineFactory
from tests.bots.slack_fixtures import (
    SECRET,
    AppFactory,
    dispatch,
    dispatch_and_finish,
    ephemerals,
    free_port,
    job_outputs,
    serving,
    stop_with_sigterm,
    wait_listening,
)
from tests.fakes.slack import (
    BOT_USER,
    TEAM,
    Call,
    FakeSlack,
    command_body,
    event_envelope,
    mention_event,
    signed_request,
)

fake, client, make_app = slack_fixtures.fake, slack_fixtures.client, slack_fixtures.make_app
settings = slack_fixtures.settings

SPEED = 10.0  # game time runs ten times faster: a 30 s question lasts 3 s
PACE = 0.05  # seconds between two game messages in one channel
EVIL = "<!channel> Eve"  # a display name that would ping everyone if it were not escaped

GamesFactory = Callable[..., GameEngine]


def key(channel: str = "C1") -> ConversationKey:
    return ConversationKey("slack", TEAM, channel)


@pytest.fixture
def clock() -> ScaledClock:
    """One clock for every engine of a test, like the wall clock every bot process shares."""
    return ScaledClock(SPEED)


@pytest.fixture
def make_games(make_game_engine: GameEngineFactory, clock: ScaledClock) -> GamesFactory:
    """Game engines on the fast clock (the bank only unless given a model)."""

    def build(model: ChatService | None = None, **overrides: Any) -> GameEngine:
        values: dict[str, Any] = {
            "question_time_s": 30,
            "between_rounds_s": 20,
            "silence_stop_s": 600,
            "words_target": 3,
            "use_model": model is not None,
            "generation_attempts": 1,
            "generation_max_new_tokens": 24,
        }
        return make_game_engine(model, clock=clock, seed=3, **{**values, **overrides})

    return build


@pytest.fixture
def games(make_games: GamesFactory) -> GameEngine:
    return make_games()


@pytest.fixture
def app(make_app: AppFactory, service: ChatService, games: GameEngine, fake: FakeSlack) -> AsyncApp:
    fake.add_user("U3", "eve", EVIL)
    return make_app(service, games=games, game_post_interval_s=PACE, rate_limit_per_minute=50)


# -- reading what the bot did ------------------------------------------------------------------
def posts(fake: FakeSlack, channel: str = "C1") -> list[Call]:
    """The bot's chat.postMessage calls in ``channel``, in order."""
    return [c for c in fake.calls_to("chat.postMessage") if c.params["channel"] == channel]


def shown(call: Call) -> str:
    """Everything a post shows: the texts of its blocks."""
    parts = []
    for block in call.params.get("blocks") or []:
        if block["type"] == "section":
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


async def post_with(fake: FakeSlack, needle: str, channel: str = "C1", count: int = 1) -> Call:
    """The ``count``-th post in ``channel`` whose blocks show ``needle`` (waiting for it)."""

    def found() -> Call | None:
        matching = [c for c in posts(fake, channel) if needle in shown(c)]
        return matching[count - 1] if len(matching) >= count else None

    return await fake.wait_for(found, what=f"a post showing {needle!r}")


async def private(fake: FakeSlack, needle: str, user: str = "U1") -> str:
    """The first ephemeral reply to ``user`` that contains ``needle`` (waiting for it)."""
    return (
        await fake.wait_for(
            lambda: [t for t in ephemerals(fake, user) if needle in t],
            what=f"an ephemeral {needle!r} to {user}",
        )
    )[0]


async def say(
    app: AsyncApp, fake: FakeSlack, text: str, *, user: str = "U1", channel: str = "C1"
) -> None:
    """A person posts ``text`` in the channel; returns once the app has handled it."""
    message = fake.user_message(channel, text, user=user)
    response = await dispatch_and_finish(app, event_envelope(message), kind="json")
    assert response.status == 200


async def command(app: AsyncApp, name: str, text: str = "", **fields: Any) -> str:
    """A slash command; returns the ack's body (checking it came within Slack's 3 s)."""
    started = time.monotonic()
    response = await dispatch(app, command_body(name, text, **fields))
    assert response.status == 200
    assert time.monotonic() - started < 3.0
    return str(response.body)


async def open_question(engine: GameEngine, channel: str = "C1") -> Question:
    status = await engine.status(key(channel))
    assert status is not None and status.phase == "open" and status.question is not None
    return status.question


def right_answer(question: Question) -> str:
    """The right answer, in the model's own multiple-choice form when there are options."""
    return f"[{question.key}, {question.answer}]" if question.options else question.answer


def gaps(calls: list[Call]) -> list[float]:
    return [b.time - a.time for a, b in itertools.pairwise(calls)]


# -- the games in a channel --------------------------------------------------------------------
async def test_trivia_scores_once_refuses_a_second_game_and_stops_with_the_reveal(
    app: AsyncApp,
    fake: FakeSlack,
    games: GameEngine,
    redis: aioredis.Redis,
    key_prefix: str,
    service: ChatService,
) -> None:
    assert await command(app, "/trivia", "start space 5") == ""
    announcement = await post_with(fake, "Trivia starts")
    assert "Trivia: 5 questions about space (started by Alice Doe)." in shown(announcement)
    assert "Stop with `/trivia stop`." in announcement.params["text"]
    question_post = await post_with(fake, "*Question 1/5*")
    question = await open_question(games)
    assert question.text.split()[0] in shown(question_post)
    if question.options:
        assert "*A)* " in shown(question_post) and "one pick each" in shown(question_post)

    # Eve answers right twice (a flood), Bob right after her: one winner, scored once.
    await say(app, fake, right_answer(question), user="U3")
    await say(app, fake, right_answer(question), user="U3")
    winner = await post_with(fake, "got it: ")
    await say(app, fake, right_answer(question), user="U2")
    assert winner.params["text"].startswith("&lt;!channel&gt; Eve got it: ")
    assert "<!channel>" not in str(winner.params), "names never ping anyone"
    late = await private(fake, "Too late: ", user="U2")
    assert late == "Too late: &lt;!channel&gt; Eve got it first."
    board = await games.leaderboard(key())
    [row] = board.leaderboard
    assert (row.user_id, row.name) == ("U3", EVIL)
    assert f"(+{row.points} point" in winner.params["text"] and row.points in (10, 6, 3)

    # A second game in the same channel is refused privately; the first goes on.
    assert await command(app, "/anagram", "2") == ""
    refusal = await private(fake, "already running")
    assert refusal.startswith("A Trivia game is already running here (round 1 of 5).")
    assert refusal.endswith("stop it with `/trivia stop` first.")

    # Stopping during the open second question reveals its answer with the final scores.
    await post_with(fake, "*Question 2/5*")
    second = await open_question(games)
    await command(app, "/trivia", "stop", user="U2")
    final = await post_with(fake, "Trivia over, stopped by Bob Roe")
    assert f"(the answer was: {second.shown_answer})" in final.params["text"].replace("&amp;", "&")
    assert ":first_place_medal: *&lt;!channel&gt; Eve*" in shown(final)
    assert "`/trivia leaderboard`" in shown(final)
    assert await games.status(key()) is None

    # After the game, an answer gets "too late" (once) and scores nothing.
    await say(app, fake, right_answer(second))
    await private(fake, "This game is over, so no points for that.")
    await say(app, fake, right_answer(second))
    assert (await games.leaderboard(key())).leaderboard == (row,)

    await command(app, "/trivia", "leaderboard")
    scores = await private(fake, "Top players in this channel")
    assert f"*&lt;!channel&gt; Eve*  {row.points} points" in scores
    await command(app, "/trivia", "leaderboard workspace", channel="C2", channel_name="random")
    assert "*&lt;!channel&gt; Eve*" in await private(fake, "Top players in this workspace")

    # The answers were game moves, never questions for the model; posts kept their pace.
    assert not [c for c in fake.calls_to("chat.postMessage") if "Thinking" in c.params["text"]]
    assert await job_outputs(redis, key_prefix) == []
    assert await service.store.history(key()) == []
    over = [t for t in ephemerals(fake, "U1") if t.startswith("This game is over")]
    assert over == [
        "This game is over, so no points for that. Start a new one with `/trivia start`, "
        "`/anagram` or `/words`."
    ]
    assert min(gaps(posts(fake))) >= PACE - 0.005


async def test_anagram_and_word_list_rounds(
    app: AsyncApp, fake: FakeSlack, games: GameEngine
) -> None:
    await command(app, "/anagram", "1")
    await post_with(fake, "*Anagram 1/1*")
    riddle = await open_question(games)
    assert riddle.kind is QuestionKind.ANAGRAM
    await say(app, fake, "surely not", user="U2")
    await say(app, fake, riddle.answer.upper(), user="U2")
    await post_with(fake, "*Bob Roe* got it: ")
    await post_with(fake, "Anagrams over. Final scores:")

    await command(app, "/words", "en")
    question_post = await post_with(fake, "Give me 3 words that start with EN.")
    assert "1 point a word" in shown(question_post)
    await say(app, fake, "enter, energy")
    assert await private(fake, "+2: ") == "+2: enter, energy (2/3)."
    await say(app, fake, "apple", user="U2")
    assert '"apple" does not start with EN' in await private(fake, "apple", user="U2")
    await say(app, fake, "enjoy", user="U2")
    done = await post_with(fake, "All 3 words found")
    assert "enter (Alice Doe), energy (Alice Doe), enjoy (Bob Roe)" in done.params["text"]
    await post_with(fake, "Word list over. Final scores:")
    rows = {r.user_id: r.points for r in (await games.leaderboard(key())).leaderboard}
    assert rows["U1"] == 2 and rows["U2"] >= 1 + 3


async def test_a_trivia_channel_plays_on_demand_and_never_chats(
    make_app: AppFactory, service: ChatService, games: GameEngine, fake: FakeSlack
) -> None:
    app = make_app(
        service,
        games=games,
        channel_ids=["C1"],  # a trivia channel works even when not listed here
        trivia_channel_ids=["C2"],
        game_post_interval_s=PACE,
    )
    mention = fake.user_message("C2", f"<@{BOT_USER}> what is the capital of France?")
    await dispatch(app, event_envelope(mention_event(mention)), kind="json")
    await dispatch(app, event_envelope(mention), kind="json")
    assert await private(fake, "trivia channel") == TRIVIA_CHANNEL_HINT
    await say(app, fake, "hello all", channel="C2")
    await say(app, fake, "trivia", channel="C1")  # not a trivia channel: ordinary talk
    assert fake.calls_to("chat.postMessage") == []

    await say(app, fake, "trivia", channel="C2")
    start = await post_with(fake, "Trivia starts", channel="C2")
    assert "1 question about anything" in start.params["text"]
    await post_with(fake, "*Question 1/1*", channel="C2")
    question = await open_question(games, "C2")
    answer = fake.user_message("C2", f"<@{BOT_USER}> {right_answer(question)}", user="U2")
    await dispatch(app, event_envelope(mention_event(answer)), kind="json")
    await dispatch(app, event_envelope(answer), kind="json")
    winner = await post_with(fake, "*Bob Roe* got it: ", channel="C2")
    await post_with(fake, "Trivia over. Final scores:", channel="C2")
    [row] = (await games.leaderboard(key("C2"))).leaderboard
    assert row.user_id == "U2" and f"(+{row.points} point" in winner.params["text"]
    assert not [c for c in fake.calls_to("chat.postMessage") if "Thinking" in c.params["text"]]
    assert posts(fake, "C1") == []

    await say(app, fake, "words are fun", channel="C2")
    assert (await private(fake, "Usage: `/words")).startswith("Usage: `/words [prefix] [rounds]`")
    # /ask is refused in C2 (not a chat channel here); games commands are not.
    assert "not enabled in this channel" in await command(app, "/ask", "hi", channel="C2")
    assert await command(app, "/trivia", "stop", channel="C2") == ""
    await private(fake, "No game is running here.")


async def test_bad_game_commands_get_clear_private_answers(
    make_app: AppFactory, service: ChatService, games: GameEngine, fake: FakeSlack
) -> None:
    # Every start asked for counts, refused ones too (the 99 rounds below and one game).
    app = make_app(service, games=games, rate_limit_per_minute=2, game_post_interval_s=PACE)
    for name, text, reply in (
        ("/trivia", "", TRIVIA_USAGE),
        ("/trivia", "begin", f"I don't know `/trivia begin`. {TRIVIA_USAGE}"),
        ("/anagram", "many", ANAGRAM_USAGE),
        ("/words", "en un", "Usage: `/words [prefix] [rounds]`"),
        ("/trivia", "leaderboard galaxy", "Usage: `/trivia leaderboard [channel | workspace]`."),
        ("/trivia", "stop", "No game is running here."),
        ("/trivia", "start space 99", "Rounds must be between 1 and 30."),
    ):
        await command(app, name, text)
        assert (await private(fake, reply)).startswith(reply)

    # Access rules and the rate limit apply to starting games.
    await command(app, "/words", "en 1")
    await post_with(fake, "Give me 3 words")
    await command(app, "/trivia", "stop")
    await post_with(fake, "Word list over, stopped by Alice Doe.")
    await command(app, "/words", "en 1")
    assert (await private(fake, "Slow down")).startswith(
        "Slow down: you can start 2 games or questions a minute. Try again in "
    )
    assert await games.status(key()) is None

    # A channel the bot was never invited to: told how to fix it, and no invisible game runs.
    hook = fake.response_url()
    assert await command(app, "/anagram", "", channel="CPRIV", user="U2", response_url=hook) == ""
    reply = await fake.wait_for(lambda: fake.calls_to("response_url"))
    assert reply[0].params["text"] == (
        "I can't post in this channel: invite me first (`/invite @airoboros`)."
    )
    assert await games.status(key("CPRIV")) is None

    closed = make_app(service, games=games, channel_ids=["C2"])
    assert "not enabled in this channel" in await command(closed, "/trivia", "start")


async def test_games_resume_when_the_app_is_rebuilt(
    make_app: AppFactory, service: ChatService, make_games: GamesFactory, fake: FakeSlack
) -> None:
    first = make_games()
    app = make_app(service, games=first, game_post_interval_s=PACE)
    await command(app, "/trivia", "start 3")
    await post_with(fake, "*Question 1/3*")
    await first.close()  # the bot stops; the game stays in Redis
    seen = len(posts(fake))

    again = make_games()
    app = make_app(service, games=again, game_post_interval_s=PACE)
    assert await again.resume_all("slack") == 1
    hint = await post_with(fake, "Hint: ")  # the timer runs on in the new process
    assert fake.calls.index(hint) > fake.calls.index(posts(fake)[seen - 1])
    question = await open_question(again)
    await say(app, fake, right_answer(question), user="U2")
    winner = await post_with(fake, "*Bob Roe* got it: ")
    [row] = (await again.leaderboard(key())).leaderboard
    assert row.user_id == "U2" and f"(+{row.points} point" in winner.params["text"]
    assert row.points < 10, "the hint shown lowered the points"


async def test_a_real_game_on_the_worker_with_the_tiny_model(
    make_app: AppFactory, service: ChatService, make_games: GamesFactory, fake: FakeSlack
) -> None:
    games = make_games(service, question_time_s=60, generation_timeout_s=60)
    app = make_app(service, games=games, game_post_interval_s=PACE)
    await command(app, "/trivia", "start 1")
    note = await post_with(fake, "The model's question did not pass the checks")
    assert note.params["blocks"][0]["text"]["text"].startswith(":information_source: ")
    await post_with(fake, "*Question 1/1*")
    question = await open_question(games)
    assert question.source == "bank"
    await say(app, fake, right_answer(question))
    await post_with(fake, "*Alice Doe* got it: ")
    final = await post_with(fake, "Trivia over. Final scores:")
    assert ":first_place_medal: *Alice Doe*" in shown(final)


# -- run_slack: the engine is built, resumed and closed with the app --------------------------
@pytest.fixture
def game_settings(settings: Settings) -> Settings:
    """`run_slack` settings in HTTP mode with paced games from the bank."""
    settings.slack = settings.slack.model_copy(
        update={"app_token": None, "game_post_interval_s": PACE}
    )
    settings.games = GameSettings(use_model=False, question_time_s=30)
    return settings


async def test_run_slack_resumes_stored_games_and_plays_them(
    game_settings: Settings, fake: FakeSlack, redis: aioredis.Redis, key_prefix: str
) -> None:
    before = GameEngine(redis, Keys(key_prefix), None, game_settings.games)
    await before.start(key(), GameKind.ANAGRAM, rounds=2, user_name="Alice Doe")
    await before.close()  # a game left in Redis by a bot that stopped

    port = free_port()
    async with serving(game_settings, http=True, port=port) as task:
        question = await post_with(fake, "*Anagram 1/2*")
        assert fake.calls_to("auth.test")[0].time < question.time
        await wait_listening(port, task)
        raw, headers = signed_request(command_body("/trivia", "stop"), SECRET)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/slack/events", data=raw, headers=headers) as r,
        ):
            assert r.status == 200
        await post_with(fake, "Anagrams over, stopped by Alice Doe")
        assert await stop_with_sigterm(task) == 0
    assert await before.status(key()) is None


# -- rendering and pacing ----------------------------------------------------------------------
async def test_every_game_message_is_escaped_and_accepted_by_slack(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    mc = Question(
        QuestionKind.CHOICE,
        "Which <b>planet</b> & moon? <!here>",
        answer="Pluto <@U1>",
        options=("Mars", "Pluto <@U1>", "Venus & co", "<https://x.example|Earth>"),
    )
    words = Question(QuestionKind.WORDS, "Give me 3 words that start with EN.", prefix="en")
    rows = [LeaderboardRow(1, "U3", EVIL, 16), LeaderboardRow(2, "U2", "Bob *Roe*", 1)]
    messages = [
        texts.start(GameKind.TRIVIA, 5, "<!channel>", EVIL, 20, SLACK_GAME_COMMANDS),
        texts.question(GameKind.TRIVIA, mc, 1, 5, 20, 10),
        texts.question(GameKind.WORDS, words, 1, 1, 60, 1),
        texts.hint(GameKind.TRIVIA, mc, 1, 5, "not A) Mars", 6, 8),
        texts.correct(GameKind.TRIVIA, mc, 1, 5, "U3", EVIL, 6),
        texts.reveal(GameKind.TRIVIA, mc, 1, 5),
        texts.round_over(GameKind.WORDS, words, 1, 1, {"enter": EVIL}),
        texts.final(GameKind.TRIVIA, ", stopped by <@U2>", rows, SLACK_GAME_COMMANDS),
        texts.leaderboard("Top players in this channel (all time)", rows),
        texts.leaderboard("Top players in this channel (all time)", []),
        texts.info(GameKind.TRIVIA, "The model's question <did not> pass"),
    ]
    api = WebApi(client)
    for message in messages:
        text, blocks = game_text(message), game_blocks(message)
        everything = text + str(blocks)
        for raw in ("<!", "<@", "<http", "<b>"):
            assert raw not in everything, (message.kind, raw)
        await api.post_message("C1", text, blocks)  # the fake checks Block Kit's limits
    mc_blocks = game_blocks(messages[1])
    assert shown_blocks(mc_blocks[1]) == (
        "*A)* Mars\n*B)* Pluto &lt;@U1&gt;\n*C)* Venus &amp; co\n*D)* &lt;https://x.example|Earth&gt;"
    )
    assert "Answer here with a letter (A–D)" in shown_blocks(mc_blocks[2])
    final = shown_blocks(game_blocks(messages[7])[0])
    assert final.splitlines() == [
        ":trophy: *Trivia over, stopped by &lt;@U2&gt;. Final scores:*",
        ":first_place_medal: *&lt;!channel&gt; Eve*  16 points",
        ":second_place_medal: *Bob *Roe**  1 point",
        "All-time scores: `/trivia leaderboard`",
    ]
    assert len(fake.calls_to("chat.postMessage")) == len(messages)


def shown_blocks(block: dict[str, Any]) -> str:
    if block["type"] == "section":
        return block["text"]["text"]
    return "\n".join(e["text"] for e in block["elements"])


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("trivia", StartGame(GameKind.TRIVIA, rounds=1)),
        ("Trivia start space 3", StartGame(GameKind.TRIVIA, topic="space", rounds=3)),
        ("trivia roman history", StartGame(GameKind.TRIVIA, topic="roman history", rounds=1)),
        ("anagram", StartGame(GameKind.ANAGRAM, rounds=1)),
        ("words en 2", StartGame(GameKind.WORDS, prefix="en", rounds=2)),
        ("wordsmith", None),
        ("triviality", None),
        ("play trivia", None),
    ],
)
def test_trivia_channel_triggers(text: str, request_: StartGame | None) -> None:
    assert parse_post(text, SLACK_GAME_USAGE) == request_


async def test_pacer_keeps_each_channel_to_its_interval_in_order() -> None:
    pacer = ChannelPacer(0.2)
    done: list[tuple[str, int, float]] = []

    async def post(channel: str, number: int) -> None:
        async with pacer.turn(channel):
            done.append((channel, number, time.monotonic()))

    await asyncio.gather(post("A", 1), post("A", 2), post("B", 1), post("A", 3))
    in_a = [(n, t) for c, n, t in done if c == "A"]
    assert [n for n, _ in in_a] == [1, 2, 3]
    assert all(b[1] - a[1] >= 0.19 for a, b in itertools.pairwise(in_a))
    b_time = next(t for c, _, t in done if c == "B")
    assert b_time - in_a[0][1] < 0.15, "another channel does not wait"
