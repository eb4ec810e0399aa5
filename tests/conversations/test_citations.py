"""Which blocks an answer cites: its Source lines against the blocks' metadata."""

from __future__ import annotations

from airoboros_bot.conversations.citations import citations, cited_blocks, source_text
from airoboros_bot.conversations.models import ContextBlock

BLUE = ContextBlock("Blueberries are now green.", {"url": "https://web.site/123", "date": "d1"})
RED = ContextBlock("Strawberries are blue.", {"url": "https://web.site/12", "date": "d1"})
FILE = ContextBlock("# Notes", {"file": "notes.md", "author": "Bob", "date": "d1"})
BLOCKS = (BLUE, RED, FILE)


def test_the_seed_examples_source_lines_cite_one_block() -> None:
    answer = "Blueberries are now green.\nSource:\ndate: 2021-01-01\nurl: https://web.site/123"
    assert citations(answer, BLOCKS) == (BLUE,)


def test_a_url_that_is_a_prefix_of_another_does_not_cite_it() -> None:
    assert citations("Sources: url: https://web.site/12", BLOCKS) == (RED,)
    assert citations("Sources: url: https://web.site/123.", BLOCKS) == (BLUE,)


def test_several_sources_in_any_layout() -> None:
    answer = (
        "They changed colour.\n\n**Sources:**\n\n- url: https://web.site/123\n"
        "- file: NOTES.md\n\nAnything else?"
    )
    assert citations(answer, BLOCKS) == (BLUE, FILE)
    assert "Anything else" not in source_text(answer)


def test_shared_metadata_cites_nothing_and_text_outside_sources_is_ignored() -> None:
    # Every block has date d1 and the url appears only in the answer's body, not its sources.
    answer = "See https://web.site/123 for more.\nSource: date: d1, author: Bob"
    assert citations(answer, BLOCKS) == ()


def test_no_citation_falls_back_to_every_block() -> None:
    assert cited_blocks("Green, I think.", BLOCKS) == BLOCKS
    assert cited_blocks("Green.\nSource: url: https://web.site/123", BLOCKS) == (BLUE,)
    assert cited_blocks("Anything", ()) == ()
