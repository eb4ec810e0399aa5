"""The text of a batch of answers as their token ids grow: decoded together, cut at stop strings.

The worker streams every answer of a running batch at each flush. Decoding token by token costs
two tokenizer calls per token under the GIL, which CTranslate2's thread needs for every token's
callback; here each flush decodes what all answers gained in two ``decode_batch`` calls, which
run in Rust without the GIL, and looks for stop strings only in the new text.

Each answer is decoded as `tokenizer.StreamDecoder` decodes one: a short window of ids whose
first part was already emitted (so a word's leading space comes out as in a full decode), and
nothing past the last ordinary token (a run of byte-fallback tokens decodes all at once, and
special tokens add no text), so the pieces always add up to ``tokenizer.decode(ids)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from airoboros_bot.engine.tokenizer import Tokenizer

REPLACEMENT = "\ufffd"


class AnswerText:
    """One answer: its token ids (appended elsewhere), its text so far and what was streamed.

    `ids` may grow from another thread (CTranslate2's) while `decode_new` reads it: only list
    appends and slices are used, which the GIL keeps whole.
    """

    __slots__ = (
        "_longest",
        "_prefix",
        "_prefix_text",
        "_read",
        "emitted",
        "ids",
        "stopped",
        "stops",
        "text",
    )

    def __init__(self, ids: list[int], stops: Sequence[str] = ()) -> None:
        self.ids = ids
        self.stops = tuple(s for s in stops if s)
        self._longest = max((len(s) for s in self.stops), default=0)
        self.text = ""
        """The answer's text so far: everything decoded, cut before the first stop string."""
        self.emitted = 0
        """How much of `text` was handed out by `unsent`."""
        self.stopped = False
        """Whether a stop string ended the answer (the text is cut before it)."""
        self._prefix = 0  # start of the decoding window: ids already decoded, kept as context
        self._read = 0  # end of the decoded ids
        self._prefix_text = ""  # decode(ids[prefix:read])

    def unsent(self) -> str:
        """Text not handed out yet, holding back an end that may be the start of a stop string."""
        safe = len(self.text)
        if not self.stopped:
            for stop in self.stops:
                for n in range(min(len(stop) - 1, safe), 0, -1):
                    if self.text.endswith(stop[:n]):
                        safe = min(safe, len(self.text) - n)
                        break
        piece = self.text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return piece

    def rest(self) -> str:
        """Everything not handed out yet (the end of the answer), and mark it handed out."""
        piece = self.text[self.emitted :]
        self.emitted = len(self.text)
        return piece

    def _add(self, piece: str) -> None:
        start = max(0, len(self.text) - self._longest + 1)
        self.text += piece
        cut = min((i for s in self.stops if (i := self.text.find(s, start)) >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.stopped = True  # nothing more is decoded

    def _window_end(self, tokenizer: Tokenizer, final: bool) -> int:
        """How far the ids can be decoded now: to the end when final, else to just past the
        last ordinary token (byte runs and special tokens after it wait)."""
        end = len(self.ids)
        if final:
            return end
        while end > self._read:
            token = self.ids[end - 1]
            if not (tokenizer.is_byte_token(token) or tokenizer.is_special_token(token)):
                return end
            end -= 1
        return self._read


def decode_new(tokenizer: Tokenizer, answers: Sequence[AnswerText], *, final: bool = False) -> None:
    """Extend every answer's text with what its new ids decode to, in two tokenizer calls.

    With ``final`` (the answers are complete), held-back ids are decoded too, and a character
    cut in half at the very end is dropped.
    """
    todo: list[tuple[AnswerText, int]] = []
    for answer in answers:
        if answer.stopped:
            continue
        end = answer._window_end(tokenizer, final)
        if end > answer._read:
            todo.append((answer, end))
    if not todo:
        return
    windows = tokenizer.decode_batch([a.ids[a._prefix : end] for a, end in todo])
    advanced: list[tuple[AnswerText, int]] = []
    for (answer, end), window in zip(todo, windows, strict=True):
        if not window.startswith(answer._prefix_text):
            # Not expected with LLaMA-style decoders: compare a full decode with the text so far.
            answer._prefix, answer._prefix_text = 0, answer.text
            window = tokenizer.decode(answer.ids[:end])
        if len(window) <= len(answer._prefix_text):
            continue
        piece = window[len(answer._prefix_text) :]
        if piece.endswith(REPLACEMENT):
            if not final:
                continue  # a byte-level tokenizer's incomplete character: wait for the rest
            piece = piece.rstrip(REPLACEMENT)
        answer._add(piece)
        if not answer.stopped:
            answer._prefix, answer._read = answer._read, end
            advanced.append((answer, end))
    if advanced:
        prefixes = tokenizer.decode_batch([a.ids[a._prefix : end] for a, end in advanced])
        for (answer, _), text in zip(advanced, prefixes, strict=True):
            answer._prefix_text = text
