"""The one parser of game requests (`bots.games.requests`) that the terminal, Discord and Slack
adapters share: any text gives a request or a `GameError` with the usage, never another error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airoboros_bot.bots.games import (
    Commands,
    GameError,
    GameKind,
    GameUsage,
    ShowLeaderboard,
    StartGame,
    StopGame,
    parse_command,
    parse_post,
)
from airoboros_bot.bots.games.requests import MAX_ROUNDS_DIGITS, POST_ROUNDS

USAGE = GameUsage.of(Commands(), "/trivia")
GAMES = [kind.value for kind in GameKind]
# Text with what trips parsers: digits of other scripts (², ٣, ５), odd spaces, the words.
PIECES = [*"ab zé²٣５07-`", "\u00a0", "\u2003", "\n", "\t", "start", "stop", "leaderboard"]
PIECES += ["trivia", "anagram", "words", "all", "help", "99", "1" * 5000]
TEXT = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=20).map("".join) | st.text()


@pytest.mark.parametrize(
    ("game", "text", "expected"),
    [
        ("trivia", "start", StartGame(GameKind.TRIVIA)),
        (
            "trivia",
            "Start roman  history 3",
            StartGame(GameKind.TRIVIA, topic="roman history", rounds=3),
        ),
        ("trivia", "start 2024", StartGame(GameKind.TRIVIA, rounds=2024)),
        ("trivia", "start ²", StartGame(GameKind.TRIVIA, topic="²")),
        ("trivia", "stop", StopGame()),
        ("trivia", "leaderboard", ShowLeaderboard("channel")),
        ("trivia", "leaderboard all", ShowLeaderboard("workspace")),
        ("trivia", "leaderboard Workspace", ShowLeaderboard("workspace")),
        ("anagram", "", StartGame(GameKind.ANAGRAM)),
        ("anagram", " 3 ", StartGame(GameKind.ANAGRAM, rounds=3)),
        ("words", "en", StartGame(GameKind.WORDS, prefix="en")),
        ("words", "en 2", StartGame(GameKind.WORDS, prefix="en", rounds=2)),
        ("WORDS", "2", StartGame(GameKind.WORDS, rounds=2)),
        ("anagram", "1" * 5000, StartGame(GameKind.ANAGRAM, rounds=10**MAX_ROUNDS_DIGITS)),
    ],
)
def test_commands(game: str, text: str, expected: object) -> None:
    assert parse_command(game, text, USAGE) == expected


@pytest.mark.parametrize(
    ("game", "text", "shown"),
    [
        ("anagram", "²", USAGE.anagram),  # str.isdigit says yes, int() says no
        ("anagram", "٣", USAGE.anagram),  # int() would read it: rounds are ASCII digits only
        ("anagram", "many", USAGE.anagram),
        ("words", "en un", USAGE.words),
        ("trivia", "", USAGE.trivia),
        ("trivia", "help", USAGE.trivia),
        ("trivia", "begin", f"I don't know `/trivia begin`. {USAGE.trivia}"),
        ("trivia", "leaderboard galaxy", USAGE.leaderboard),
        ("chess", "", "Unknown game 'chess': play trivia, anagram or words."),
    ],
)
def test_bad_commands_get_the_usage(game: str, text: str, shown: str) -> None:
    with pytest.raises(GameError) as caught:
        parse_command(game, text, USAGE)
    assert caught.value.user_message == shown


@pytest.mark.parametrize(
    ("post", "expected"),
    [
        ("trivia", StartGame(GameKind.TRIVIA, rounds=POST_ROUNDS)),
        ("Trivia start space 3", StartGame(GameKind.TRIVIA, topic="space", rounds=3)),
        ("anagram 2", StartGame(GameKind.ANAGRAM, rounds=2)),
        ("words en", StartGame(GameKind.WORDS, prefix="en", rounds=POST_ROUNDS)),
        ("triviality", None),
        ("play trivia", None),
        ("trivia-night", None),
        ("   ", None),
    ],
)
def test_posts_in_a_trivia_channel(post: str, expected: StartGame | None) -> None:
    assert parse_post(post, USAGE) == expected


def test_a_post_that_names_a_game_but_does_not_fit_gets_the_usage() -> None:
    with pytest.raises(GameError, match="anagram"):
        parse_post("anagram ²", USAGE)


def test_usage_of_the_terminal_commands() -> None:
    usage = GameUsage.of(
        Commands("!!trivia start", "!!trivia stop", "!!trivia leaderboard", "!!anagram", "!!words"),
        "!!trivia",
    )
    assert (
        usage.trivia
        == "Usage: !!trivia start [topic] [rounds] | !!trivia stop | !!trivia leaderboard"
    )
    assert usage.anagram == "Usage: !!anagram [rounds]"


@given(st.sampled_from([*GAMES, "Trivia", "chess", ""]), TEXT)
def test_any_command_text_gives_a_request_or_a_clear_error(game: str, text: str) -> None:
    try:
        request = parse_command(game, text, USAGE)
    except GameError as exc:
        assert exc.user_message.strip()
        return
    assert isinstance(request, StartGame | StopGame | ShowLeaderboard)
    if isinstance(request, StartGame):
        _check_start(request, text.split(), None)


@given(TEXT)
def test_any_post_gives_a_game_none_or_a_clear_error(text: str) -> None:
    try:
        request = parse_post(text, USAGE)
    except GameError as exc:
        assert exc.user_message.strip()
        assert text.split()[0].lower() in GAMES
        return
    if request is None:
        assert not text.split() or text.split()[0].lower() not in GAMES
        return
    first, *args = text.split()
    assert request.kind == first.lower()
    _check_start(request, args, POST_ROUNDS)


def _check_start(request: StartGame, args: list[str], default_rounds: int | None) -> None:
    """What holds for any game started by the words ``args``."""
    if args and args[-1].isascii() and args[-1].isdigit():
        big = len(args[-1]) > MAX_ROUNDS_DIGITS
        assert request.rounds == (10**MAX_ROUNDS_DIGITS if big else int(args[-1]))
    else:
        assert request.rounds == default_rounds
    assert request.topic == request.topic.strip() and request.prefix == request.prefix.strip()
    assert request.kind is GameKind.TRIVIA or not request.topic
    assert " " not in request.prefix and request.prefix in [*args, ""]


@given(
    st.sampled_from(list(GameKind)),
    st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=3),
    st.none() | st.integers(1, 10**6),
)
def test_a_request_written_out_reads_back(
    kind: GameKind, words: list[str], rounds: int | None
) -> None:
    if kind is GameKind.ANAGRAM:
        words = []
    elif kind is GameKind.WORDS:
        words = words[:1]
    typed = " ".join(
        [
            *(["start"] if kind is GameKind.TRIVIA else []),
            *words,
            *([str(rounds)] if rounds else []),
        ]
    )
    request = parse_command(kind.value, typed, USAGE)
    topic = " ".join(words) if kind is GameKind.TRIVIA else ""
    prefix = words[0] if kind is GameKind.WORDS and words else ""
    assert request == StartGame(kind, topic=topic, prefix=prefix, rounds=rounds)
