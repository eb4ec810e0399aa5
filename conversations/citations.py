"""Which context blocks an answer cites: its ``Source:`` / ``Sources:`` lines read against the
blocks' metadata.

The closed-context model ends an answer with lines such as ``Source:`` then ``url: ...`` or
``date: ...``, copied from the BEGINCONTEXT metadata of the blocks it used. A block counts as
cited when one of its distinctive values (url, file name, title) appears in those lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from airoboros_bot.conversations.models import ContextBlock

# Metadata that tells blocks apart; date, author and channel are shared by many blocks.
DISTINCTIVE = ("url", "file", "title")
MIN_VALUE_CHARS = 3

_HEADER = re.compile(
    r"^\s*(?:[-*>]\s*)?[*_]{0,2}(?:sources?|references?|citations?)[*_]{0,2}\s*:[*_]{0,2}(.*)$",
    re.IGNORECASE,
)


def source_text(answer: str) -> str:
    """The text of every ``Source:`` section of an answer: the rest of the header line and the
    lines under it up to the next blank line ("" when the answer names no source)."""
    sections: list[str] = []
    lines = answer.splitlines()
    index = 0
    while index < len(lines):
        header = _HEADER.match(lines[index])
        index += 1
        if header is None:
            continue
        part = [header.group(1)]
        if not header.group(1).strip():
            while index < len(lines) and not lines[index].strip():
                index += 1  # "Source:" then a blank line, then the metadata
        while index < len(lines) and lines[index].strip() and not _HEADER.match(lines[index]):
            part.append(lines[index])
            index += 1
        sections.append("\n".join(part))
    return "\n".join(sections)


def _mentioned(value: str, text: str) -> bool:
    value = value.strip()
    if len(value) < MIN_VALUE_CHARS:
        return False
    pattern = rf"(?<!\w){re.escape(value)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def citations(answer: str, blocks: Sequence[ContextBlock]) -> tuple[ContextBlock, ...]:
    """The blocks the answer's ``Source:`` lines name, in the blocks' order (maybe none)."""
    text = source_text(answer)
    if not text.strip():
        return ()
    return tuple(
        block
        for block in blocks
        if any(_mentioned(block.metadata.get(key, ""), text) for key in DISTINCTIVE)
    )


def cited_blocks(answer: str, blocks: Sequence[ContextBlock]) -> tuple[ContextBlock, ...]:
    """The blocks to list as an answer's sources: those it cites, or all of them when it
    cites none (the model does not always write its ``Source:`` lines)."""
    return citations(answer, blocks) or tuple(blocks)
