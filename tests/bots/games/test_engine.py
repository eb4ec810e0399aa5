"""The game loop with a clock moved by hand and a scripted model, on the real Redis server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from airoboros_bot.bots.games import (
    AnswerStatus,
    GameEngine,
    GameError,
    GameKind,
    GameMessage,
    MessageKind,
    QuestionKind,
)
from airoboros_bot.bots.games.bank import default_bank
from airoboros_bot.bots.games.generate import QuestionMaker
from airoboros_bot.bots.games.words import default_words
from airoboros_bot.config.settings import GameSettings
from airoboros_bot.engine.client import EngineUnavailable
from tests.bots.games.conftest import (
    CHANNEL,
    CHOICE,
    SHORT,
    EngineFactory,
    FakeClock,
    RecordingOutput,
    ScriptedModel,
)

BANK_TEXTS = {q.text for q in default_bank().questions}


async def _question(output: RecordingOutput, clock: FakeClock, count: int = 1):
    message = await output.wait_for(MessageKind.QUESTION, count)
    await clock.idle()
    return message


START_OPTIONS = ("topic", "rounds", "prefix", "user_id", "user_name")
Play = Callable[..., Awaitable[tuple[GameEngine, GameMessage]]]


@pytest.fixture
def play(make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock) -> Play:
    """Start a game in `CHANNEL` on a new engine and wait for its first question:
    ``engine, question = await play(kind, model, rounds=1, multiple_choice_share=0.0)`` (the
    options of `GameEngine.start`, and game settings)."""

    async def start(
        kind: str, model: ScriptedModel | None = None, **options: object
    ) -> tuple[GameEngine, GameMessage]:
        start_options = {k: options.pop(k) for k in START_OPTIONS if k in options}
        engine = make_engine(model, **options)
        await engine.start(CHANNEL, kind, **start_options)  # type: ignore[arg-type]
        return engine, await _question(output, clock)

    return start


async def test_a_valid_generated_question_is_asked_and_scored(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    model = ScriptedModel([CHOICE])
    engine = make_engine(model, multiple_choice_share=1.0)
    status = await engine.start(CHANNEL, "trivia", topic="space", rounds=1, user_name="Ann")
    assert status.kind is GameKind.TRIVIA and status.rounds == 1
    assert output.of(MessageKind.START)[0].text.startswith("Trivia: 1 question about space")
    question = await _question(output, clock)
    assert question.question == "Which planet is closest to the Sun?"
    assert question.options == ("Venus", "Mercury", "Mars", "Earth")
    assert "B) Mercury" in question.text and question.points == 10 and question.seconds == 20
    assert (
        "about space" in model.prompts[0] and "[<letter>, <the correct option>]" in model.prompts[0]
    )

    outcome = await engine.on_message(CHANNEL, "u1", "Ann", "[B, Mercury]")
    assert outcome.status is AnswerStatus.CORRECT and outcome.points == 10
    correct = output.of(MessageKind.CORRECT)[0]
    assert correct.text == "Ann got it: B) Mercury (+10 points)."
    final = await output.wait_for(MessageKind.SCORES)
    assert [(r.rank, r.name, r.points) for r in final.leaderboard] == [(1, "Ann", 10)]
    board = await engine.leaderboard(CHANNEL)
    assert [(r.user_id, r.points) for r in board.leaderboard] == [("u1", 10)]
    await engine.wait(CHANNEL)
    assert await engine.status(CHANNEL) is None


async def test_a_rejected_question_is_retried(play: Play, output: RecordingOutput) -> None:
    bad_key = CHOICE.replace("[B, Mercury]", "[B, Venus]")
    model = ScriptedModel([bad_key, CHOICE])
    _, question = await play(
        GameKind.TRIVIA, model, multiple_choice_share=1.0, generation_attempts=2, rounds=1
    )
    assert question.question == "Which planet is closest to the Sun?"
    assert len(model.prompts) == 2
    assert not output.of(MessageKind.INFO)


@pytest.mark.parametrize(
    "outputs",
    [
        ["garbage", "more garbage"],
        ["\x00\x01 ���", "Question: ?\nA) a\nAnswer: [A, a]"],
        [CHOICE.replace("[B, Mercury]", "[E, Pluto]")] * 2,
    ],
)
async def test_garbage_from_the_model_falls_back_to_the_bank(
    play: Play, output: RecordingOutput, clock: FakeClock, outputs: list[str]
) -> None:
    model = ScriptedModel(outputs + ["garbage"] * 4)
    _, first = await play("trivia", model, generation_attempts=2, between_rounds_s=1, rounds=2)
    assert first.question in BANK_TEXTS
    assert len(model.prompts) == 2
    note = output.of(MessageKind.INFO)[0].text
    assert note.startswith("The model's question did not pass the checks (")
    assert note.endswith("using one from the built-in bank.")
    clock.advance(20)
    await output.wait_for(MessageKind.REVEAL)
    await clock.idle()
    clock.advance(1)
    second = await _question(output, clock, 2)
    assert second.question in BANK_TEXTS and second.question != first.question
    assert len(output.of(MessageKind.INFO)) == 1, "the fallback is noted once per game"


async def test_an_engine_error_falls_back_at_once(play: Play, output: RecordingOutput) -> None:
    model = ScriptedModel([EngineUnavailable("No engine worker is running.")])
    _, question = await play("anagram", model, generation_attempts=3, rounds=1)
    assert question.question in BANK_TEXTS and question.title == "Anagram 1/1"
    assert len(model.prompts) == 1
    assert "No engine worker is running." in output.of(MessageKind.INFO)[0].text


async def test_a_model_that_hangs_falls_back_after_the_timeout(
    play: Play, output: RecordingOutput
) -> None:
    class Hanging(ScriptedModel):
        async def complete(self, instruction: str, **options: object) -> str:
            self.prompts.append(instruction)
            await asyncio.sleep(3600)
            return ""

    model = Hanging()
    _, question = await play(
        "trivia", model, generation_timeout_s=0.05, generation_attempts=3, rounds=1
    )
    assert question.question in BANK_TEXTS and len(model.prompts) == 1
    assert "(the model took too long)" in output.of(MessageKind.INFO)[0].text


async def test_hints_reveal_letters_and_points_decay(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    model = ScriptedModel([SHORT])
    engine, _ = await play("trivia", model, multiple_choice_share=0.0, rounds=1)
    clock.advance(7.9)
    await clock.idle()  # the loop is asleep again (or never woke): nothing more is coming
    assert not output.of(MessageKind.HINT), "no hint before 40% of the time"
    clock.advance(0.1)
    first = await output.wait_for(MessageKind.HINT)
    await clock.idle()
    letters = first.hint.split(" ")
    assert letters[0] == "N" and len(letters) == 7 and sum(c != "_" for c in letters) == 2
    assert first.points == 6 and first.seconds == pytest.approx(12)
    assert first.text == f"Hint: {first.hint} (now 6 points, 12 s left)"
    clock.advance(6)
    second = await output.wait_for(MessageKind.HINT, 2)
    await clock.idle()
    shown = second.hint.split(" ")
    assert sum(c != "_" for c in shown) == 4 and second.points == 3
    assert all(c in ("_", a) for c, a in zip(shown, "Nairobi", strict=True))
    outcome = await engine.on_message(CHANNEL, "u1", "Ann", "nairobi")
    assert (outcome.status, outcome.points) == (AnswerStatus.CORRECT, 3)


async def test_points_follow_the_clock_not_the_posted_hints(play: Play, clock: FakeClock) -> None:
    engine, _ = await play("trivia", ScriptedModel([SHORT]), multiple_choice_share=0.0, rounds=1)
    clock.advance(3)
    await clock.idle()
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "Nairobi")).points == 10


async def test_multiple_choice_hints_rule_out_wrong_options(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    await play("trivia", ScriptedModel([CHOICE]), multiple_choice_share=1.0, rounds=1)
    clock.advance(8)
    first = await output.wait_for(MessageKind.HINT)
    await clock.idle()
    clock.advance(6)
    second = await output.wait_for(MessageKind.HINT, 2)
    assert first.hint.count("not ") == 1 and second.hint.count("not ") == 2
    assert "Mercury" not in second.hint
    ruled_out = first.hint.removeprefix("not ")
    assert ruled_out in second.hint


async def test_time_out_reveals_then_the_next_question_comes(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    engine, first = await play(
        "trivia", ScriptedModel([SHORT, CHOICE]), between_rounds_s=4, rounds=2
    )
    clock.advance(19.9)
    await clock.idle()
    assert not output.of(MessageKind.REVEAL)
    clock.advance(0.1)
    reveal = await output.wait_for(MessageKind.REVEAL)
    await clock.idle()
    assert reveal.answer and reveal.text == f"Time's up! The answer was: {reveal.answer}."
    late = await engine.on_message(CHANNEL, "u1", "Ann", reveal.answer)
    assert late.status is AnswerStatus.TOO_LATE and late.message == "Too late: time ran out."
    clock.advance(3.9)
    await clock.idle()
    assert len(output.of(MessageKind.QUESTION)) == 1
    clock.advance(0.1)
    second = await _question(output, clock, 2)
    assert second.round == 2 and second.question != first.question


async def test_first_right_answer_wins_when_two_answer_at_once(
    play: Play, output: RecordingOutput
) -> None:
    engine, _ = await play("trivia", ScriptedModel([SHORT]), multiple_choice_share=0.0, rounds=2)
    outcomes = await asyncio.gather(
        *(engine.on_message(CHANNEL, f"u{i}", f"P{i}", "Nairobi") for i in range(6))
    )
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count(AnswerStatus.CORRECT) == 1
    assert statuses.count(AnswerStatus.TOO_LATE) == 5
    winner = next(i for i, o in enumerate(outcomes) if o.status is AnswerStatus.CORRECT)
    losers = [o.message for o in outcomes if o.status is AnswerStatus.TOO_LATE]
    assert set(losers) == {f"Too late: P{winner} got it first."}
    assert len(output.of(MessageKind.CORRECT)) == 1
    board = await engine.leaderboard(CHANNEL, "workspace")
    assert [(r.user_id, r.points) for r in board.leaderboard] == [(f"u{winner}", 10)]


async def test_a_flood_from_one_player_scores_once_and_runs_out_of_tries(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    two = [SHORT, SHORT.replace("Kenya", "Peru").replace("Nairobi", "Lima")]
    engine, _ = await play(
        "trivia",
        ScriptedModel(two),
        rounds=2,
        max_answers_per_question=3,
        between_rounds_s=1,
        multiple_choice_share=0.0,
    )
    outcomes = await asyncio.gather(
        *(engine.on_message(CHANNEL, "u1", "Ann", "Nairobi") for _ in range(10))
    )
    assert [o.status for o in outcomes].count(AnswerStatus.CORRECT) == 1
    assert sum(o.points for o in outcomes) == 10
    assert (await engine.leaderboard(CHANNEL)).leaderboard[0].points == 10

    clock.advance(1)
    await _question(output, clock, 2)
    wrong = [await engine.on_message(CHANNEL, "u2", "Bob", f"guess {i}") for i in range(5)]
    assert [o.status for o in wrong] == [AnswerStatus.WRONG] * 3 + [AnswerStatus.TOO_MANY] * 2
    assert wrong[3].message == "You have used your 3 tries for this question."
    assert wrong[4].message == ""
    refused = await engine.on_message(CHANNEL, "u2", "Bob", "Lima")
    assert refused.status is AnswerStatus.TOO_MANY
    assert (await engine.on_message(CHANNEL, "u3", "Cy", "lima")).status is AnswerStatus.CORRECT


async def test_multiple_choice_allows_one_pick(play: Play) -> None:
    engine, _ = await play("trivia", ScriptedModel([CHOICE]), multiple_choice_share=1.0, rounds=1)
    chat = await engine.on_message(CHANNEL, "u1", "Ann", "hmm, hard one")
    assert chat.status is AnswerStatus.NOT_AN_OPTION
    assert chat.message == "Answer with a letter from A to D, or with an option's text."
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "what?")).message == ""
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "a")).status is AnswerStatus.WRONG
    again = await engine.on_message(CHANNEL, "u1", "Ann", "B")
    assert again.status is AnswerStatus.TOO_MANY
    assert again.message == "You already picked an option for this question."
    assert (await engine.on_message(CHANNEL, "u2", "Bob", "mercury")).status is AnswerStatus.CORRECT


async def test_two_games_in_one_channel_are_refused(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    engine = make_engine()
    results = await asyncio.gather(
        engine.start(CHANNEL, "trivia"), engine.start(CHANNEL, "anagram"), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, GameError)]
    assert len(errors) == 1 and len(output.of(MessageKind.START)) == 1
    await _question(output, clock)
    with pytest.raises(GameError) as refused:
        await engine.start(CHANNEL, "words")
    assert "already running here (round 1 of" in refused.value.user_message
    assert "stop it with /trivia stop first" in refused.value.user_message
    other = CHANNEL.__class__("test", "w1", "c2")
    await engine.start(other, "words")  # another channel is fine
    assert len(output.of(MessageKind.START)) == 2


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("poker", {}, "Unknown game 'poker'"),
        ("trivia", {"rounds": 0}, "Rounds must be between 1 and 30."),
        ("trivia", {"rounds": 31}, "Rounds must be between 1 and 30."),
        ("trivia", {"topic": "x" * 61}, "That topic is too long"),
        ("words", {"prefix": "xq"}, "Cannot play 'XQ': too few common words"),
    ],
)
async def test_bad_start_arguments(
    make_engine: EngineFactory, output: RecordingOutput, kind: str, options: dict, message: str
) -> None:
    engine = make_engine()
    with pytest.raises(GameError, match=message):
        await engine.start(CHANNEL, kind, **options)
    assert await engine.status(CHANNEL) is None and not output.sent


async def test_stop_reveals_and_late_answers_get_a_clear_message(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    engine = make_engine(ScriptedModel([SHORT]), late_answer_window_s=60, multiple_choice_share=0.0)
    with pytest.raises(GameError, match="No game is running here"):
        await engine.stop(CHANNEL)
    await engine.start(CHANNEL, "trivia", rounds=3)
    await _question(output, clock)
    final = await engine.stop(CHANNEL, user_name="Ann")
    assert final.text.startswith("Trivia over, stopped by Ann (the answer was: Nairobi).")
    assert "Nobody scored this time." in final.text
    assert output.of(MessageKind.SCORES) == [final]
    assert await engine.status(CHANNEL) is None and not engine.running(CHANNEL)

    late = await engine.on_message(CHANNEL, "u1", "Ann", "Nairobi")
    assert late.status is AnswerStatus.TOO_LATE
    assert late.message.startswith("This game is over, so no points for that.")
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "nairobi")).message == ""
    chat = await engine.on_message(CHANNEL, "u2", "Bob", "good game everyone")
    assert chat.status is AnswerStatus.IGNORED and not chat.handled
    clock.advance(61)
    assert (await engine.on_message(CHANNEL, "u3", "Cy", "Nairobi")).status is AnswerStatus.IGNORED
    assert (await engine.leaderboard(CHANNEL)).leaderboard == ()


async def test_silence_stops_the_game(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    engine, _ = await play("trivia", silence_stop_s=45, between_rounds_s=4, rounds=10)  # t=0
    clock.advance(20)
    await output.wait_for(MessageKind.REVEAL)
    await clock.idle()
    clock.advance(4)
    await _question(output, clock, 2)  # t=24
    clock.advance(6)
    await engine.on_message(CHANNEL, "u1", "Ann", "no idea")  # t=30: someone is there
    for number in (2, 3):
        clock.advance(14 if number == 2 else 20)
        await output.wait_for(MessageKind.REVEAL, number)
        await clock.idle()
        clock.advance(4)
        await _question(output, clock, number + 1)  # t=48, 72: less than 45 s since t=30
    clock.advance(20)  # t=92: the 4th question times out after 62 s of silence
    await output.wait_for(MessageKind.REVEAL, 4)
    final = await output.wait_for(MessageKind.SCORES)
    assert final.text.startswith("Trivia over: nobody has answered for a while.")
    await engine.wait(CHANNEL)
    assert len(output.of(MessageKind.QUESTION)) == 4
    assert await engine.status(CHANNEL) is None


async def test_a_full_game_ends_with_its_scores_and_leaderboards_add_up(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    engine = make_engine(between_rounds_s=0, multiple_choice_share=0.0)
    players = [("u1", "Ann"), ("u2", "Bob"), ("u1", "Ann")]
    for number, (user, name) in enumerate(players, 1):
        if number == 1:
            await engine.start(CHANNEL, "trivia", rounds=3)
        await _question(output, clock, number)
        status = await engine.status(CHANNEL)
        assert status is not None and status.question is not None
        clock.advance(9 if number == 2 else 0)
        outcome = await engine.on_message(CHANNEL, user, name, status.question.answer)
        assert outcome.status is AnswerStatus.CORRECT
    final = await output.wait_for(MessageKind.SCORES)
    assert [(r.rank, r.name, r.points) for r in final.leaderboard] == [
        (1, "Ann", 20),
        (2, "Bob", 6),
    ]
    assert final.text.startswith("Trivia over. Final scores:\n  1. Ann  20\n  2. Bob  6")

    # A second game in another channel of the same workspace.
    other = CHANNEL.__class__("test", "w1", "c2")
    await engine.start(other, "trivia", rounds=1)
    await output.wait_for(MessageKind.QUESTION, 4)
    await clock.idle()
    status = await engine.status(other)
    assert status and status.question
    await engine.on_message(other, "u2", "Bob", status.question.answer)
    await output.wait_for(MessageKind.SCORES, 2)
    channel_board = await engine.leaderboard(CHANNEL, "channel")
    assert [(r.name, r.points) for r in channel_board.leaderboard] == [("Ann", 20), ("Bob", 6)]
    other_board = await engine.leaderboard(other, "channel")
    assert [(r.name, r.points) for r in other_board.leaderboard] == [("Bob", 10)]
    workspace = await engine.leaderboard(other, "workspace")
    assert [(r.rank, r.name, r.points) for r in workspace.leaderboard] == [
        (1, "Ann", 20),
        (2, "Bob", 16),
    ]
    assert workspace.text.startswith("Top players in this workspace (all time):")
    elsewhere = await engine.leaderboard(CHANNEL.__class__("test", "w2", "c1"), "workspace")
    assert elsewhere.leaderboard == () and "nobody has scored yet" in elsewhere.text


async def test_a_game_survives_a_restart_and_its_timer_resumes(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    first = make_engine(ScriptedModel([SHORT]), multiple_choice_share=0.0)
    await first.start(CHANNEL, "trivia", rounds=2)
    await _question(output, clock)
    clock.advance(8)
    await output.wait_for(MessageKind.HINT)
    await clock.idle()
    await first.close()  # the bot goes down; the game stays in Redis
    assert not first.running(CHANNEL)

    clock.advance(5)
    second = make_engine(ScriptedModel([]), multiple_choice_share=0.0)
    assert await second.resume_all("test") == 1
    assert await second.resume_all("other-platform") == 0
    await clock.idle()
    assert len(output.of(MessageKind.HINT)) == 1, "hint 1 is not shown twice"
    clock.advance(1)
    second_hint = await output.wait_for(MessageKind.HINT, 2)
    assert second_hint.seconds == pytest.approx(6)
    outcome = await second.on_message(CHANNEL, "u1", "Ann", "Nairobi")
    assert (outcome.status, outcome.points) == (AnswerStatus.CORRECT, 3)
    await clock.idle()
    clock.advance(4)
    await _question(output, clock, 2)
    status = await second.status(CHANNEL)
    assert status and status.round == 2


async def test_resume_after_the_deadline_reveals_at_once(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    first = make_engine(between_rounds_s=2)
    await first.start(CHANNEL, "trivia", rounds=2)
    await _question(output, clock)
    await first.close()
    clock.advance(25)
    second = make_engine(between_rounds_s=2)
    assert await second.resume(CHANNEL)
    await output.wait_for(MessageKind.REVEAL)
    await clock.idle()
    clock.advance(2)
    await _question(output, clock, 2)


async def test_an_answer_resumes_a_game_nobody_runs(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    first = make_engine()
    await first.start(CHANNEL, "trivia", rounds=1)
    await _question(output, clock)
    await first.close()
    second = make_engine()
    status = await second.status(CHANNEL)
    assert status and status.question
    await second.on_message(CHANNEL, "u1", "Ann", "certainly wrong")
    assert second.running(CHANNEL)


async def test_word_list_game(play: Play, output: RecordingOutput) -> None:
    engine, question = await play(
        "words", words_target=3, words_time_s=60, prefix="EN", user_name="Ann"
    )
    assert question.question == "Give me 3 words that start with EN."
    assert question.title == "Word list 1/1" and question.seconds == 60

    ok = await engine.on_message(CHANNEL, "u1", "Ann", "enjoy")
    assert (ok.status, ok.points, ok.words) == (AnswerStatus.WORD_ACCEPTED, 1, ("enjoy",))
    assert ok.message == "+1: enjoy (1/3)."
    dup = await engine.on_message(CHANNEL, "u2", "Bob", "Enjoy!")
    assert (dup.status, dup.message) == (
        AnswerStatus.WORD_DUPLICATE,
        "enjoy was already found by Ann.",
    )
    bad = await engine.on_message(CHANNEL, "u2", "Bob", "apple")
    assert (bad.status, bad.message) == (
        AnswerStatus.WORD_REJECTED,
        '"apple" does not start with EN',
    )
    fake = await engine.on_message(CHANNEL, "u2", "Bob", "enxqzt")
    assert fake.message == '"enxqzt" is not in the word list'
    two = await engine.on_message(CHANNEL, "u2", "Bob", "enjoy, enter energy")
    assert two.status is AnswerStatus.WORD_ACCEPTED and two.points == 2
    assert two.message == "+2: enter, energy (3/3). enjoy was already found by Ann."
    done = await output.wait_for(MessageKind.ROUND_OVER)
    assert done.text == "All 3 words found: enjoy (Ann), enter (Bob), energy (Bob)."
    final = await output.wait_for(MessageKind.SCORES)
    assert [(r.name, r.points) for r in final.leaderboard] == [("Bob", 2), ("Ann", 1)]


async def test_word_list_time_out_shows_other_words(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    engine, _ = await play("words", words_time_s=30, prefix="un")
    await engine.on_message(CHANNEL, "u1", "Ann", "under")
    clock.advance(29)
    await clock.idle()
    assert not output.of(MessageKind.HINT), "the word list has no hints"
    clock.advance(1)
    reveal = await output.wait_for(MessageKind.REVEAL)
    assert reveal.text.startswith("Time's up! Found 1 of 7: under (Ann). Other words: ")
    assert "under" not in reveal.words[1:] and len(reveal.words) == 6
    late = await engine.on_message(CHANNEL, "u1", "Ann", "until")
    assert late.status is AnswerStatus.TOO_LATE and late.message.startswith("This game is over")


async def test_word_list_flood_of_invalid_words(play: Play) -> None:
    engine, _ = await play("words", max_answers_per_question=2, prefix="en")
    results = [await engine.on_message(CHANNEL, "u1", "Ann", f"zz{i}") for i in range(4)]
    assert [r.status for r in results] == [
        AnswerStatus.WORD_REJECTED,
        AnswerStatus.WORD_REJECTED,
        AnswerStatus.TOO_MANY,
        AnswerStatus.TOO_MANY,
    ]
    assert results[2].message == "You have used your 2 tries for this round."
    valid = await engine.on_message(CHANNEL, "u1", "Ann", "enough")
    assert valid.status is AnswerStatus.WORD_ACCEPTED, "valid words are never refused"


async def test_anagram_from_the_model_is_checked(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    wrong = 'Riddle: This anagram of "silent" is a shiny decoration.\nAnswer: tinsels'
    right = 'Riddle: This anagram of "night" is an object.\nAnswer: thing'
    model = ScriptedModel([wrong, right])
    engine, question = await play("anagram", model, generation_attempts=2, rounds=1)
    assert question.question == 'This anagram of "night" is an object.'
    assert "This anagram of" in model.prompts[0]
    clock.advance(8)
    hint = await output.wait_for(MessageKind.HINT)
    assert hint.hint.startswith("t ")
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "night")).status is AnswerStatus.WRONG
    assert (await engine.on_message(CHANNEL, "u1", "Ann", "Thing")).status is AnswerStatus.CORRECT


async def test_answers_between_rounds(
    play: Play, output: RecordingOutput, clock: FakeClock
) -> None:
    two = [SHORT, SHORT.replace("Kenya", "Peru").replace("Nairobi", "Lima")]
    engine, _ = await play("trivia", ScriptedModel(two), rounds=2, multiple_choice_share=0.0)
    await engine.on_message(CHANNEL, "u1", "Ann", "Nairobi")
    await clock.idle()
    late = await engine.on_message(CHANNEL, "u2", "Bob", "Nairobi")
    assert (late.status, late.message) == (AnswerStatus.TOO_LATE, "Too late: Ann got it first.")
    again = await engine.on_message(CHANNEL, "u2", "Bob", "Nairobi")
    assert (again.status, again.message) == (AnswerStatus.TOO_LATE, "")
    chat = await engine.on_message(CHANNEL, "u2", "Bob", "nice")
    assert chat.status is AnswerStatus.WAIT and chat.handled


async def test_a_broken_output_does_not_stop_the_game(
    make_engine: EngineFactory, output: RecordingOutput, clock: FakeClock
) -> None:
    class Flaky(RecordingOutput):
        async def send(self, channel, message):
            await super().send(channel, message)
            if message.kind is MessageKind.QUESTION:
                raise ConnectionError("platform down")

    flaky = Flaky()
    engine = make_engine(between_rounds_s=0)
    engine.attach(flaky)
    await engine.start(CHANNEL, "trivia", rounds=2)
    await flaky.wait_for(MessageKind.QUESTION)
    await clock.idle()
    status = await engine.status(CHANNEL)
    assert status and status.question
    await engine.on_message(CHANNEL, "u1", "Ann", status.question.answers[0])
    await flaky.wait_for(MessageKind.QUESTION, 2)


async def test_trivia_mixes_multiple_choice_and_short_answers() -> None:
    def maker(share: float) -> QuestionMaker:
        settings = GameSettings(multiple_choice_share=share)
        return QuestionMaker(None, default_bank(), default_words(), settings, random.Random(5))

    mixed = maker(0.5)
    kinds = [(await mixed.make(GameKind.TRIVIA)).question.kind for _ in range(30)]
    assert set(kinds) == {QuestionKind.CHOICE, QuestionKind.SHORT}
    only = maker(1.0)
    assert {(await only.make(GameKind.TRIVIA)).question.kind for _ in range(10)} == {
        QuestionKind.CHOICE
    }
    words = await maker(0.5).make(GameKind.WORDS, prefix="EN")
    assert (words.question.prefix, words.question.target) == ("en", 7)
