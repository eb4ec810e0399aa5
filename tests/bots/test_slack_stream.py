"""Streaming answers into Slack: cadence, the shared Tier 3 budget, long answers as thread
replies, errors, with scripted answer events and the fake Slack Web API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from slack_sdk.web.async_client import AsyncWebClient

from airoboros_bot.bots.core.render import EditBudget
from airoboros_bot.bots.core.service import Answer, AnswerEvent, Delta, Submitted
from airoboros_bot.bots.slack.format import PAGE_LIMIT, SECTION_LIMIT, answer_blocks
from airoboros_bot.bots.slack.stream import FAILED, SlackAnswerSink, render_answer
from airoboros_bot.bots.slack.web import WebApi
from airoboros_bot.engine.client import JobTimedOut
from tests.bots import slack_fixtures
from tests.fakes.slack import FakeSlack

fake, client = slack_fixtures.fake, slack_fixtures.client


@pytest.fixture
def api(client: AsyncWebClient) -> WebApi:
    return WebApi(client)


class FakeClock:
    """A clock the scripted answer moves forward."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Script:
    """Answer events at given (fake) times; notes when each chat.update happened."""

    def __init__(self, fake: FakeSlack, clock: FakeClock, steps: list[tuple[float, Any]]) -> None:
        self.fake, self.clock, self.steps = fake, clock, steps
        self.update_times: list[float] = []
        self.closed_early = False

    async def events(self) -> AsyncIterator[AnswerEvent]:
        finished = False
        try:
            for at, event in self.steps:
                self.clock.now = at
                if isinstance(event, Exception):
                    raise event
                yield event
                updates = len(self.fake.calls_to("chat.update"))
                self.update_times += [self.clock.now] * (updates - len(self.update_times))
            finished = True
        finally:
            self.closed_early = not finished


def submitted() -> Submitted:
    return Submitted("job42", 10, 0, ())


def answer(text: str, reason: str = "eos") -> Answer:
    return Answer(text, reason, 100, 10, ())


async def placeholder(api: WebApi, channel: str = "C1", thread_ts: str | None = None) -> str:
    return await api.post_message(
        channel, "Thinking… ▌", answer_blocks("Thinking… ▌"), thread_ts=thread_ts
    )


def bot_thread(fake: FakeSlack, channel: str, ts: str) -> list[dict[str, Any]]:
    """The placeholder and its continuation replies, in order."""
    replies = [m for m in fake.messages[channel].values() if m.get("thread_ts") == ts]
    return [fake.messages[channel][ts], *sorted(replies, key=lambda m: m["ts"])]


@pytest.mark.parametrize("interval", [1.0, 0.5])
async def test_edits_follow_the_interval(fake: FakeSlack, api: WebApi, interval: float) -> None:
    clock = FakeClock()
    words = [f"w{i}" for i in range(100)]
    steps: list[tuple[float, Any]] = [(0.0, submitted())]
    steps += [(0.05 * (i + 1), Delta(f"{w} ")) for i, w in enumerate(words)]
    steps.append((5.1, answer(" ".join(words))))
    script = Script(fake, clock, steps)
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=EditBudget(60_000, burst=1000))

    view = await render_answer(script.events(), sink, interval_s=interval, clock=clock)

    updates = fake.calls_to("chat.update")
    writing = [i for i, u in enumerate(updates) if u.params["text"].endswith("▌")]
    times = [script.update_times[i] for i in writing]
    assert len(times) == pytest.approx(5.0 / interval + 1, abs=1)
    assert all(b - a >= interval for a, b in itertools.pairwise(times))
    assert not updates[-1].params["text"].endswith("▌")
    assert fake.messages["C1"][ts]["text"] == " ".join(words) == view.pages()[0]
    # The Stop button is there while writing, with the job and the owner, and gone at the end.
    assert updates[writing[-1]].params["blocks"][-1]["elements"][0]["value"] == "job42"
    assert all(b["type"] != "actions" for b in fake.messages["C1"][ts]["blocks"])


async def test_many_answers_share_the_workspace_budget(fake: FakeSlack, api: WebApi) -> None:
    budget = EditBudget(per_minute=600, burst=3)  # 10 edits a second for everyone together

    async def one(n: int) -> tuple[str, str]:
        async def events() -> AsyncIterator[AnswerEvent]:
            yield submitted()
            for i in range(40):
                await asyncio.sleep(0.025)
                yield Delta(f"a{n}w{i} ")
            yield answer(" ".join(f"a{n}w{i}" for i in range(40)))

        ts = await placeholder(api)
        sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=budget)
        view = await render_answer(events(), sink, interval_s=0.05)
        return ts, view.pages()[0]

    started = time.monotonic()
    results = await asyncio.gather(*(one(n) for n in range(6)))
    elapsed = time.monotonic() - started

    updates = fake.calls_to("chat.update")
    # Unthrottled, 6 answers x 20 rounds would be ~120 edits; the budget allows burst + rate.
    assert len(updates) <= 3 + 10 * elapsed + 1
    for ts, text in results:
        assert fake.messages["C1"][ts]["text"] == text
        assert all(b["type"] != "actions" for b in fake.messages["C1"][ts]["blocks"])


@pytest.mark.parametrize("in_thread", [False, True])
async def test_long_answers_continue_as_thread_replies(
    fake: FakeSlack, api: WebApi, in_thread: bool
) -> None:
    paragraph = "Blueberries grow on shrubs and ripen in summer. " * 40
    code = "```python\n" + "\n".join(f"print('line {i}')" for i in range(150)) + "\n```"
    text = f"{paragraph}\n\n{code}\n\n{paragraph}\n\n{paragraph}"
    root = await api.post_message("C1", "question?") if in_thread else None
    ts = await placeholder(api, thread_ts=root)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=root, budget=EditBudget(60_000, burst=1000))
    clock = FakeClock()
    steps = [(0.0, submitted()), (1.5, Delta(text)), (3.0, answer(text))]
    view = await render_answer(
        Script(fake, clock, steps).events(), sink, interval_s=1.0, clock=clock
    )

    pages = view.pages()
    assert len(pages) >= 3
    continuations = fake.calls_to("chat.postMessage")[1 + in_thread :]
    assert len(continuations) == len(pages) - 1
    assert {c.params["thread_ts"] for c in continuations} == {root or ts}
    messages = [fake.messages["C1"][t] for t in sink.ts]
    assert [m["text"] for m in messages] == pages
    for page in pages:
        assert len(page) <= PAGE_LIMIT < SECTION_LIMIT
        assert page.count("```") % 2 == 0, "a code block is closed on its page"
    shown_words = [w for p in pages for w in p.split() if not w.startswith("```")]
    assert shown_words == [w for w in text.split() if not w.startswith("```")]


async def test_skipped_edits_are_sent_when_the_answer_ends(fake: FakeSlack, api: WebApi) -> None:
    budget = EditBudget(per_minute=120, burst=1)  # one edit now, then one each half second
    text = "Strawberries are red. " * 200  # two pages
    clock = FakeClock()
    steps = [(0.0, submitted()), (1.5, Delta(text)), (1.6, answer(text))]
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=budget, owner="U1")
    view = await render_answer(
        Script(fake, clock, steps).events(), sink, interval_s=1.0, clock=clock
    )

    pages = view.pages()
    assert len(pages) == 2
    assert [fake.messages["C1"][t]["text"] for t in sink.ts] == pages
    assert all(b["type"] != "actions" for b in fake.messages["C1"][ts]["blocks"])
    texts = [u.params["text"] for u in fake.calls_to("chat.update")]
    assert texts[0] == "Thinking… ▌" and pages[0] in texts


async def test_model_text_cannot_mention_or_link(fake: FakeSlack, api: WebApi) -> None:
    text = "<!channel> look at <https://evil.example|this> & ping <@U2>"
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=EditBudget(600))
    clock = FakeClock()
    steps = [(0.0, submitted()), (1.0, Delta(text)), (2.0, answer(text))]
    await render_answer(Script(fake, clock, steps).events(), sink, clock=clock)
    shown = fake.messages["C1"][ts]["text"]
    assert (
        shown == "&lt;!channel&gt; look at &lt;https://evil.example|this&gt; &amp; ping &lt;@U2&gt;"
    )
    assert not re.search(r"<[@!#h]", shown)


async def test_errors_mid_answer_end_up_in_the_message(fake: FakeSlack, api: WebApi) -> None:
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=EditBudget(600))
    clock = FakeClock()
    steps = [
        (0.0, submitted()),
        (1.0, Delta("Half an")),
        (2.0, JobTimedOut("The answer took too long and was stopped.")),
    ]
    await render_answer(Script(fake, clock, steps).events(), sink, clock=clock)
    message = fake.messages["C1"][ts]
    assert message["text"] == "Half an\n\n:warning: The answer took too long and was stopped."
    assert all(b["type"] != "actions" for b in message["blocks"])


async def test_a_deleted_placeholder_abandons_the_answer(fake: FakeSlack, api: WebApi) -> None:
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=EditBudget(600))
    clock = FakeClock()
    steps = [(0.0, submitted())] + [(1.0 + i, Delta("more ")) for i in range(10)]
    script = Script(fake, clock, steps)

    async def deleting() -> AsyncIterator[AnswerEvent]:
        async with contextlib.aclosing(script.events()) as events:
            async for event in events:
                if clock.now >= 2.0:
                    fake.messages["C1"].pop(ts, None)  # someone deleted the message
                yield event

    await render_answer(deleting(), sink, clock=clock)
    assert script.closed_early, "the answer's events were closed (which cancels the job)"
    assert len(fake.calls_to("chat.update")) <= 4


async def test_unexpected_failures_still_close_the_placeholder(
    fake: FakeSlack, api: WebApi, caplog: pytest.LogCaptureFixture
) -> None:
    ts = await placeholder(api)
    sink = SlackAnswerSink(api, "C1", ts, thread_ts=None, budget=EditBudget(600))
    clock = FakeClock()
    steps = [(0.0, submitted()), (1.0, RedisConnectionError("Connection reset by peer"))]
    await render_answer(Script(fake, clock, steps).events(), sink, clock=clock)
    message = fake.messages["C1"][ts]
    assert message["text"] == f":warning: {FAILED}"
    assert all(b["type"] != "actions" for b in message["blocks"])
    assert "an answer failed" in caplog.text
