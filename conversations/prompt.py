"""Prompt templates of airoboros-7b-gpt4, marker defusing and the token budget.

The templates are the model's contract (DESIGN.md section 2): keep them byte-exact.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airoboros_bot.conversations.errors import EmptyPrompt, PromptTooLong
from airoboros_bot.conversations.models import ContextBlock, Turn

MARKERS: tuple[str, ...] = (
    "BEGININPUT",
    "ENDINPUT",
    "BEGINCONTEXT",
    "ENDCONTEXT",
    "BEGININSTRUCTION",
    "ENDINSTRUCTION",
)
EOS = "</s>"

# Invisible characters that would hide a split inside a marker word.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INV = f"[{_INVISIBLE}]"
_LETTER = r"[^\W\d_]"


def _word(word: str) -> str:
    """Regex of an ASCII word, any case, with invisible characters allowed between letters."""
    return f"{_INV}*".join(f"[{c}{c.lower()}]" for c in word)


_FIRST = "|".join(_word(w) for w in ("BEGIN", "END"))
_SECOND = "|".join(_word(w) for w in ("INPUT", "CONTEXT", "INSTRUCTION"))
# A marker word anywhere, unless it is part of a longer word ("SendInput" stays as it is).
_JOINED = re.compile(rf"(?<!{_LETTER})(?P<a>{_FIRST}){_INV}*(?P<b>{_SECOND})(?!{_LETTER})")
# A line that is only a marker split by spaces, tabs, "\r", underscores or invisible characters.
_PAD = rf"(?:[^\S\n]|{_INV})*"
_SPLIT_LINE = re.compile(
    rf"(?m)^(?P<pre>{_PAD})(?P<a>{_FIRST})(?:[^\S\n]|_|{_INV})+(?P<b>{_SECOND})(?P<post>{_PAD})$"
)
_NOT_INVISIBLE = str.maketrans("", "", _INVISIBLE)


def _hyphenate(match: re.Match[str]) -> str:
    groups = match.groupdict(default="")
    first = groups["a"].translate(_NOT_INVISIBLE)
    second = groups["b"].translate(_NOT_INVISIBLE)
    return f"{groups.get('pre', '')}{first}-{second}{groups.get('post', '')}"


def defuse(text: str) -> str:
    """Break every marker word so pasted text can never open or close a block.

    ``ENDINPUT`` (any case, also with invisible characters inside) becomes ``END-INPUT``; a line
    that is only a marker split by whitespace or ``_`` (`` End_Input ``) gets the same hyphen.
    Text without marker words is returned unchanged, and ``defuse`` is idempotent.
    """
    return _SPLIT_LINE.sub(_hyphenate, _JOINED.sub(_hyphenate, text))


def _single_line(value: str) -> str:
    return " ".join(value.split())


def _safe_key(key: str) -> str:
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode().lower()
    token = re.sub(r"[^a-z0-9_ -]+", "_", _single_line(ascii_key)).strip()
    return defuse(token) or "field"


def metadata_lines(metadata: dict[str, str]) -> list[str]:
    """``key: value`` lines in the dict's order; values made single-line and defused.

    Keys become lowercase ``[a-z0-9_ -]`` tokens; entries with a blank value are skipped.
    """
    lines = []
    for key, value in metadata.items():
        flat = _single_line(value)
        if flat:
            lines.append(f"{_safe_key(key)}: {defuse(flat)}")
    return lines


def closed_context(blocks: Sequence[ContextBlock], instruction: str) -> str:
    """The closed-context USER text: one BEGININPUT..ENDINPUT per block, then the instruction."""
    lines: list[str] = []
    for block in blocks:
        lines += ["BEGININPUT", "BEGINCONTEXT", *metadata_lines(block.metadata), "ENDCONTEXT"]
        lines += [defuse(block.text), "ENDINPUT"]
    lines += ["BEGININSTRUCTION", defuse(instruction), "ENDINSTRUCTION"]
    return "\n".join(lines)


def user_text(question: str, blocks: Sequence[ContextBlock]) -> str:
    """The USER text: the closed-context prompt when there are blocks, else the question as is."""
    return closed_context(blocks, question) if blocks else question


_SPECIAL = re.compile(r"</?s>|<unk>")
TURN_WORDS = ("USER", "ASSISTANT")
# A turn separator as typed: the word in capitals (invisible characters allowed inside), not
# inside a longer word or number, then a colon after optional spaces.
_TURN = re.compile(
    rf"(?<![^\W_])(?P<word>{'|'.join(f'{_INV}*'.join(w) for w in TURN_WORDS)})"
    rf"(?=(?:[^\S\n]|{_INV})*[:：])"
)


def defuse_special(text: str) -> str:
    """Typed ``<s>`` / ``</s>`` / ``<unk>`` must not become the model's BOS / EOS / UNK tokens:
    ``< /s>``."""
    return _SPECIAL.sub(lambda m: m.group(0).replace("<", "< ", 1), text)


def defuse_turns(text: str) -> str:
    """Typed turn separators must not read as a new turn: ``USER:`` becomes ``User:``, and
    ``ASSISTANT:`` ``Assistant:`` (the template's capitals are the model's turn tokens).

    Any capitalised ``USER`` / ``ASSISTANT`` word followed by a colon is changed (also after a
    newline or inside a sentence), not ``USERS:`` or ``MYUSER:``; idempotent.
    """
    return _TURN.sub(lambda m: m.group("word").translate(_NOT_INVISIBLE).title(), text)


def defuse_text(text: str) -> str:
    """User-supplied text (questions, history, context blocks) as the template may embed it."""
    return defuse_turns(defuse_special(text))


def chat_prompt(system: str, history: Sequence[Turn], user_text: str) -> str:
    """The vicuna template: ``{system} USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: ``.

    Only the template itself writes ``</s>``, ``USER:`` and ``ASSISTANT:``: in the questions,
    answers and context blocks they are defused (`defuse_text`); in the system prompt, which
    the operator writes, only the special tokens are.
    """
    parts = [f"{defuse_special(system)} " if system else ""]
    parts += [
        f"USER: {defuse_text(turn.user)} ASSISTANT: {defuse_text(turn.assistant)}{EOS}"
        for turn in history
    ]
    parts.append(f"USER: {defuse_text(user_text)} ASSISTANT: ")
    return "".join(parts)


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt fitted to the model's window, and what had to be left out."""

    text: str
    prompt_tokens: int
    max_new_tokens: int
    budget_left: int
    kept_turns: int
    dropped_turns: int
    included_blocks: tuple[ContextBlock, ...]
    omitted_blocks: tuple[ContextBlock, ...]


def fit_prompt(
    *,
    system: str,
    history: Sequence[Turn],
    question: str,
    blocks: Sequence[ContextBlock],
    count_tokens: Callable[[str], int],
    context_length: int = 2048,
    max_new_tokens: int = 512,
    min_answer_tokens: int = 64,
) -> FittedPrompt:
    """Build the prompt that fits ``context_length`` tokens with room for the answer.

    Keeps the system prompt and the question (else `PromptTooLong`), then adds context blocks in
    order while they fit (a block that does not fit is omitted, later ones may still fit), then
    the newest history turns that fit. ``count_tokens`` counts a full prompt; it is called once
    per block plus O(log len(history)) times, and ``prompt_tokens`` is its count of ``text``.
    """
    if not question.strip():
        raise EmptyPrompt()
    if context_length < 1 or max_new_tokens < 1 or min_answer_tokens < 0:
        raise ValueError("context_length and max_new_tokens must be >= 1, min_answer_tokens >= 0")
    reserve = min(max_new_tokens, min_answer_tokens)
    limit = context_length - reserve

    text = chat_prompt(system, (), question)
    tokens = count_tokens(text)
    if tokens > limit:
        raise PromptTooLong(
            f"Prompt too long: {tokens} tokens, the model's window is {context_length} "
            f"({reserve} kept for the answer). Shorten it by at least {tokens - limit} tokens."
        )

    included: list[ContextBlock] = []
    omitted: list[ContextBlock] = []
    for block in blocks:
        candidate = chat_prompt(system, (), closed_context([*included, block], question))
        count = count_tokens(candidate)
        if count <= limit:
            included.append(block)
            text, tokens = candidate, count
        else:
            omitted.append(block)

    # The largest number of newest turns that fits: gallop 1, 2, 4, ... then bisect.
    turns = list(history)
    asked = user_text(question, included)

    def keeps(k: int) -> bool:
        """Whether the newest ``k`` turns fit; if so, they make the prompt so far."""
        nonlocal text, tokens
        candidate = chat_prompt(system, turns[len(turns) - k :], asked)
        count = count_tokens(candidate)
        if count > limit:
            return False
        text, tokens = candidate, count
        return True

    kept, too_many = 0, len(turns) + 1
    while kept < len(turns) and too_many > len(turns):
        k = min(len(turns), 2 * kept or 1)
        kept, too_many = (k, too_many) if keeps(k) else (kept, k)
    while too_many - kept > 1 and too_many <= len(turns):
        k = (kept + too_many) // 2
        kept, too_many = (k, too_many) if keeps(k) else (kept, k)

    budget_left = context_length - tokens
    return FittedPrompt(
        text=text,
        prompt_tokens=tokens,
        max_new_tokens=min(max_new_tokens, budget_left),
        budget_left=budget_left,
        kept_turns=kept,
        dropped_turns=len(turns) - kept,
        included_blocks=tuple(included),
        omitted_blocks=tuple(omitted),
    )
