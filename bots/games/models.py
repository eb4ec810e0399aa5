"""The data of the games: questions, the messages the engine sends, answer outcomes."""

from __future__ import annotations

import hashlib
import string
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from airoboros_bot.conversations.errors import ChatError
from airoboros_bot.conversations.models import ConversationKey

LETTERS = string.ascii_uppercase[:5]


class GameError(ChatError):
    """A game command that cannot be done (a game already runs, none runs, bad argument)."""


class GameKind(StrEnum):
    """The games one channel can play."""

    TRIVIA = "trivia"
    ANAGRAM = "anagram"
    WORDS = "words"

    @property
    def title(self) -> str:
        """A name to show players."""
        return {"trivia": "Trivia", "anagram": "Anagrams", "words": "Word list"}[self.value]


class QuestionKind(StrEnum):
    """What a question asks for."""

    CHOICE = "choice"  # multiple choice, answered by letter or by option text
    SHORT = "short"  # short answer in a few words
    ANAGRAM = "anagram"  # a word made of exactly the letters of another word
    WORDS = "words"  # as many words with a prefix as the round asks for


def question_id(kind: QuestionKind | str, text: str) -> str:
    """A stable id from a question's kind and text (same question, same id)."""
    digest = hashlib.sha1(f"{kind}\n{' '.join(text.lower().split())}".encode()).hexdigest()
    return digest[:12]


@dataclass(frozen=True)
class Question:
    """One question as asked. ``answer`` is the right option's text for multiple choice."""

    kind: QuestionKind
    text: str
    answer: str = ""
    options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    topic: str = ""
    source: str = "bank"  # "bank" or "model"
    word: str = ""  # anagram: the word whose letters the answer uses
    prefix: str = ""  # word list: what every word starts with
    target: int = 0  # word list: how many words are asked for
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", question_id(self.kind, self.text))

    @property
    def key(self) -> str:
        """The letter of the right option (multiple choice), else ""."""
        if self.kind is QuestionKind.CHOICE and self.answer in self.options:
            return LETTERS[self.options.index(self.answer)]
        return ""

    @property
    def answers(self) -> tuple[str, ...]:
        """Every accepted answer text."""
        return (self.answer, *self.aliases) if self.answer else self.aliases

    @property
    def shown_answer(self) -> str:
        """The answer as revealed to players: ``C) Pluto`` for multiple choice."""
        if self.kind is QuestionKind.CHOICE:
            return f"{self.key}) {self.answer}"
        return self.answer

    def to_dict(self) -> dict[str, Any]:
        """Encode for storage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        """Decode from storage."""
        values = dict(data)
        values["kind"] = QuestionKind(values["kind"])
        values["options"] = tuple(values.get("options", ()))
        values["aliases"] = tuple(values.get("aliases", ()))
        return cls(**values)


class MessageKind(StrEnum):
    """What a `GameMessage` announces."""

    START = "start"  # a game begins
    QUESTION = "question"  # a new question is open
    HINT = "hint"  # letters revealed / an option ruled out, points lowered
    CORRECT = "correct"  # someone won the round
    ROUND_OVER = "round_over"  # a word-list round got all its words
    REVEAL = "reveal"  # time ran out: the answer
    SCORES = "scores"  # final scores of a game, or a leaderboard
    INFO = "info"  # a notice (bank used instead of the model, stopping after silence)
    ERROR = "error"  # something went wrong that players should know about


@dataclass(frozen=True)
class LeaderboardRow:
    """One line of a leaderboard."""

    rank: int
    user_id: str
    name: str
    points: int


@dataclass(frozen=True)
class GameMessage:
    """Something the engine tells a channel.

    ``text`` is the complete plain-text rendering (what the terminal prints, and a fallback for
    any platform); the other fields carry the same content structured, so Discord embeds or
    Slack blocks can lay it out. Options are lettered A, B, C... in order.
    """

    kind: MessageKind
    text: str
    game: GameKind | None = None
    title: str = ""
    round: int = 0
    rounds: int = 0
    question: str = ""
    options: tuple[str, ...] = ()
    hint: str = ""
    points: int = 0
    seconds: float = 0.0
    user_id: str = ""
    user_name: str = ""
    answer: str = ""
    words: tuple[str, ...] = ()
    leaderboard: tuple[LeaderboardRow, ...] = ()


class AnswerStatus(StrEnum):
    """What became of one player's message."""

    IGNORED = "ignored"  # no game here and nothing late: an ordinary chat message
    WAIT = "wait"  # a game runs but no question is open right now
    CORRECT = "correct"  # won the round
    WRONG = "wrong"
    NOT_AN_OPTION = "not_an_option"  # multiple choice: neither a letter nor an option
    TOO_MANY = "too_many"  # this player is out of tries for this question
    TOO_LATE = "too_late"  # the round or the game is over
    WORD_ACCEPTED = "word_accepted"
    WORD_REJECTED = "word_rejected"  # wrong prefix or not in the word list
    WORD_DUPLICATE = "word_duplicate"  # someone found it already


@dataclass(frozen=True)
class AnswerOutcome:
    """The result of `GameEngine.on_message` for the player who wrote it.

    ``message`` is a short note for that player only ("" = nothing worth saying); platforms
    with reactions may react instead of replying for CORRECT / WRONG / WORD_*.
    """

    status: AnswerStatus
    message: str = ""
    points: int = 0
    words: tuple[str, ...] = ()

    @property
    def handled(self) -> bool:
        """Whether the message belonged to a game (False: treat it as ordinary chat)."""
        return self.status is not AnswerStatus.IGNORED


@dataclass(frozen=True)
class GameStatus:
    """A snapshot of the game running in a channel."""

    game_id: str
    kind: GameKind
    channel: ConversationKey
    topic: str
    round: int
    rounds: int
    phase: str  # "new" (first question coming), "open", "closed" (between rounds)
    question: Question | None
    deadline: float
    started_by: str


@dataclass(frozen=True)
class Commands:
    """How players type the game commands on a platform (used in the engine's texts)."""

    trivia: str = "/trivia start"
    stop: str = "/trivia stop"
    leaderboard: str = "/trivia leaderboard"
    anagram: str = "/anagram"
    words: str = "/words"
