"""The games' settings: environment variables and the checks between hints and points."""

from __future__ import annotations

import pytest

from airoboros_bot.config.settings import GameSettings, SettingsError, load_settings


def test_games_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIROBOROS_GAMES_QUESTION_TIME_S", "30")
    monkeypatch.setenv("AIROBOROS_GAMES_HINT_AT", "[0.5]")
    monkeypatch.setenv("AIROBOROS_GAMES_POINTS", "[5, 2]")
    games = load_settings().games
    assert (games.question_time_s, games.hint_at, games.points) == (30, [0.5], [5, 2])
    assert games.use_model and games.max_answers_per_question == 5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"points": [10, 5]}, "points needs one value more than hint_at"),
        ({"hint_at": [0.7, 0.4], "points": [3, 2, 1]}, "increasing fractions"),
        ({"hint_at": [1.0], "points": [3, 2]}, "increasing fractions"),
        ({"question_time_s": 1}, "greater than or equal to 3"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GameSettings(**values)


def test_a_wrong_variable_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIROBOROS_GAMES_POINTS", "[1]")
    with pytest.raises(SettingsError, match="AIROBOROS_GAMES"):
        load_settings()
