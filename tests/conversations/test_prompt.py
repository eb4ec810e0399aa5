"""Prompt templates (byte-exact goldens), defusing and the token budget."""

from __future__ import annotations

import math

import pytest

from airoboros_bot.config.settings import DEFAULT_SYSTEM_PROMPT
from airoboros_bot.conversations.errors import ChatError, EmptyPrompt, PromptTooLong
from airoboros_bot.conversations.models import ContextBlock, Turn
from airoboros_bot.conversations.prompt import (
    MARKERS,
    FittedPrompt,
    chat_prompt,
    closed_context,
    defuse,
    fit_prompt,
    metadata_lines,
    user_text,
)

SYSTEM = DEFAULT_SYSTEM_PROMPT
BLUEBERRIES = ContextBlock(
    text=(
        "In a shocking turn of events, blueberries are now green, "
        "but will be sticking with the same name."
    ),
    metadata={"date": "2021-01-01", "url": "https://web.site/123"},
)


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word plus BOS."""
    return len(text.split()) + 1


# --- goldens -------------------------------------------------------------------------------


def test_single_turn_default_system_prompt() -> None:
    assert chat_prompt(SYSTEM, [], "What color are blueberries?") == (
        "A chat between a curious user and an assistant. The assistant gives helpful, detailed, "
        "accurate, uncensored responses to the user's input. "
        "USER: What color are blueberries? ASSISTANT: "
    )


def test_three_turn_history() -> None:
    history = [Turn("Hi!", "Hello! How can I help?"), Turn("Name a fruit.", "Blueberry.")]
    assert chat_prompt(SYSTEM, history, "And its color?") == (
        f"{SYSTEM} USER: Hi! ASSISTANT: Hello! How can I help?</s>"
        "USER: Name a fruit. ASSISTANT: Blueberry.</s>"
        "USER: And its color? ASSISTANT: "
    )


def test_multiline_prompt_kept_as_is() -> None:
    assert chat_prompt("Sys.", [], "line 1\nline 2\n") == "Sys. USER: line 1\nline 2\n ASSISTANT: "


def test_custom_system_prompt() -> None:
    assert chat_prompt("You are a pirate.", [Turn("q1", "a1")], "q2") == (
        "You are a pirate. USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: "
    )


def test_empty_system_prompt_has_no_leading_space() -> None:
    assert chat_prompt("", [], "q") == "USER: q ASSISTANT: "


def test_seed_card_blueberries() -> None:
    expected = (
        "BEGININPUT\n"
        "BEGINCONTEXT\n"
        "date: 2021-01-01\n"
        "url: https://web.site/123\n"
        "ENDCONTEXT\n"
        "In a shocking turn of events, blueberries are now green, but will be sticking with the "
        "same name.\n"
        "ENDINPUT\n"
        "BEGININSTRUCTION\n"
        "What color are bluberries?  Source?\n"
        "ENDINSTRUCTION"
    )
    assert closed_context([BLUEBERRIES], "What color are bluberries?  Source?") == expected
    assert user_text("What color are bluberries?  Source?", [BLUEBERRIES]) == expected
    assert chat_prompt(SYSTEM, [], expected) == f"{SYSTEM} USER: {expected} ASSISTANT: "


def test_two_blocks() -> None:
    second = ContextBlock(
        "Cranberries stay red.",
        {"url": "https://chat.example/p/9", "date": "2023-06-01", "author": "ann"},
    )
    assert closed_context([BLUEBERRIES, second], "Which fruit changed color?") == (
        "BEGININPUT\nBEGINCONTEXT\ndate: 2021-01-01\nurl: https://web.site/123\nENDCONTEXT\n"
        f"{BLUEBERRIES.text}\nENDINPUT\n"
        "BEGININPUT\nBEGINCONTEXT\nurl: https://chat.example/p/9\ndate: 2023-06-01\n"
        "author: ann\nENDCONTEXT\nCranberries stay red.\nENDINPUT\n"
        "BEGININSTRUCTION\nWhich fruit changed color?\nENDINSTRUCTION"
    )


def test_block_without_metadata_keeps_context_lines() -> None:
    block = ContextBlock("Plain text.\nSecond line.")
    assert closed_context([block], "Summarize.") == (
        "BEGININPUT\nBEGINCONTEXT\nENDCONTEXT\nPlain text.\nSecond line.\nENDINPUT\n"
        "BEGININSTRUCTION\nSummarize.\nENDINSTRUCTION"
    )


def test_user_text_without_blocks_is_the_question_as_is() -> None:
    assert user_text("  Hi ENDINPUT\n", []) == "  Hi ENDINPUT\n"


@pytest.mark.parametrize("blocks", [[], [BLUEBERRIES]])
def test_prompt_ends_with_assistant_and_one_space(blocks: list[ContextBlock]) -> None:
    text = chat_prompt(SYSTEM, [Turn("a", "b")], user_text("What color?", blocks))
    assert text.endswith(" ASSISTANT: ")
    assert not text.endswith("  ")


# --- defuse and metadata -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "defused"),
    [
        ("ENDINPUT", "END-INPUT"),
        ("endinput", "end-input"),
        (" EndContext ", " End-Context "),
        ("see BEGININSTRUCTION here", "see BEGIN-INSTRUCTION here"),
        ("ENDINPUT.", "END-INPUT."),
        ("EN\u200bDIN\u00adPUT", "END-INPUT"),
        ("END\u200bINPUT", "END-INPUT"),
        ("  END INPUT\r", "  END-INPUT\r"),
        ("END_INSTRUCTION", "END-INSTRUCTION"),
        ("\tbegin \t context", "\tbegin-context"),
        ("a\nEND INPUT\nb", "a\nEND-INPUT\nb"),
    ],
)
def test_defuse_breaks_markers(raw: str, defused: str) -> None:
    assert defuse(raw) == defused
    assert defuse(defused) == defused


@pytest.mark.parametrize(
    "text",
    [
        "",
        "What color are blueberries?",
        "SendInput(x)",
        "the end input",
        "END OF INPUT",
        "BEGIN\nINPUT",
        "END-INPUT",
        "key: value\r\n",
        "BEGINNING INPUTS",
    ],
)
def test_defuse_leaves_other_text_alone(text: str) -> None:
    assert defuse(text) == text


def test_defuse_every_marker() -> None:
    for marker in MARKERS:
        assert marker not in defuse(marker)
        assert defuse(marker).replace("-", "") == marker


def test_metadata_lines() -> None:
    assert metadata_lines(
        {
            "URL": "https://x.y/1",
            "Date ": " 2023-06-01 ",
            "file name": "notes\nv2.txt",
            "empty": "  \n",
            "Café:x": "ENDINPUT",
            "endcontext": "v",
            "日付": "z",
        }
    ) == [
        "url: https://x.y/1",
        "date: 2023-06-01",
        "file name: notes v2.txt",
        "cafe_x: END-INPUT",
        "end-context: v",
        "field: z",
    ]


def test_instruction_is_defused() -> None:
    assert closed_context([], "ENDINSTRUCTION\nok").split("\n") == [
        "BEGININSTRUCTION",
        "END-INSTRUCTION",
        "ok",
        "ENDINSTRUCTION",
    ]


# --- fit_prompt ----------------------------------------------------------------------------


def history_of(n: int) -> list[Turn]:
    return [Turn(f"question {i}", f"answer number {i}") for i in range(n)]


def fit(**arguments: object) -> FittedPrompt:
    """`fit_prompt` counting words, with system "S", question "q" and no history or blocks
    unless given."""
    defaults: dict[str, object] = {"system": "S", "history": [], "question": "q", "blocks": []}
    return fit_prompt(**{**defaults, "count_tokens": words, **arguments})  # type: ignore[arg-type]


def test_fit_keeps_everything_that_fits() -> None:
    history = history_of(3)
    fitted = fit_prompt(
        system=SYSTEM, history=history, question="Next?", blocks=[BLUEBERRIES], count_tokens=words
    )
    assert fitted.text == chat_prompt(SYSTEM, history, closed_context([BLUEBERRIES], "Next?"))
    assert fitted.prompt_tokens == words(fitted.text)
    assert (fitted.kept_turns, fitted.dropped_turns) == (3, 0)
    assert fitted.included_blocks == (BLUEBERRIES,)
    assert fitted.omitted_blocks == ()
    assert fitted.max_new_tokens == 512
    assert fitted.budget_left == 2048 - fitted.prompt_tokens


def test_fit_drops_oldest_turns_first() -> None:
    history = history_of(50)
    fitted = fit(history=history, context_length=100, max_new_tokens=40, min_answer_tokens=20)
    kept = fitted.kept_turns
    assert 0 < kept < 50
    assert fitted.dropped_turns == 50 - kept
    assert fitted.text == chat_prompt("S", history[50 - kept :], "q")
    assert fitted.prompt_tokens == words(fitted.text) <= 80
    # as many as fit: one more turn would not
    assert words(chat_prompt("S", history[50 - kept - 1 :], "q")) > 80
    assert fitted.max_new_tokens == min(40, 100 - fitted.prompt_tokens)


def test_fit_few_token_counts_on_long_history() -> None:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return words(text)

    history = history_of(5000)
    fitted = fit(history=history, count_tokens=counting)
    assert 0 < fitted.kept_turns < 5000
    assert words(chat_prompt("S", history[-fitted.kept_turns - 1 :], "q")) > 2048 - 64
    assert len(calls) <= 2 + 2 * math.ceil(math.log2(5001))
    assert fitted.prompt_tokens == words(fitted.text)


def test_fit_omits_blocks_that_do_not_fit_and_keeps_later_small_ones() -> None:
    small1 = ContextBlock("first small block", {"url": "u1"})
    huge = ContextBlock("word " * 500, {"url": "u2"})
    small2 = ContextBlock("second small block", {"url": "u3"})
    fitted = fit(
        blocks=[small1, huge, small2], context_length=200, max_new_tokens=100, min_answer_tokens=50
    )
    assert fitted.included_blocks == (small1, small2)
    assert fitted.omitted_blocks == (huge,)
    assert fitted.text == chat_prompt("S", [], closed_context([small1, small2], "q"))
    assert fitted.prompt_tokens == words(fitted.text)


def test_fit_blocks_win_over_history() -> None:
    block = ContextBlock("word " * 60)
    history = history_of(20)
    fitted = fit(
        history=history, blocks=[block], context_length=150, max_new_tokens=50, min_answer_tokens=50
    )
    assert fitted.included_blocks == (block,)
    assert 0 < fitted.kept_turns < 20
    assert fitted.text == chat_prompt(
        "S", history[20 - fitted.kept_turns :], user_text("q", [block])
    )


def test_fit_no_block_fits_falls_back_to_plain_question() -> None:
    block = ContextBlock("word " * 500)
    fitted = fit(blocks=[block], context_length=100)
    assert fitted.included_blocks == ()
    assert fitted.omitted_blocks == (block,)
    assert fitted.text == "S USER: q ASSISTANT: "


def test_fit_prompt_too_long_names_the_numbers() -> None:
    question = "word " * 2290
    tokens = words(chat_prompt(SYSTEM, [], question))
    with pytest.raises(PromptTooLong) as caught:
        fit_prompt(
            system=SYSTEM,
            history=history_of(3),
            question=question,
            blocks=[BLUEBERRIES],
            count_tokens=words,
        )
    message = caught.value.user_message
    assert message == (
        f"Prompt too long: {tokens} tokens, the model's window is 2048 (64 kept for the answer). "
        f"Shorten it by at least {tokens - 1984} tokens."
    )
    assert isinstance(caught.value, ChatError)


def test_fit_reserve_is_capped_by_max_new_tokens() -> None:
    question = "word " * 90  # 90 words + "S USER: ASSISTANT:" + BOS = 94 tokens
    fitted = fit(question=question, context_length=100, max_new_tokens=6, min_answer_tokens=64)
    assert fitted.prompt_tokens == 94
    assert fitted.max_new_tokens == 6
    with pytest.raises(PromptTooLong, match=r"95 tokens.*window is 100 \(6 kept.*by at least 1 "):
        fit(question=question + "x", context_length=100, max_new_tokens=6, min_answer_tokens=64)


def test_fit_max_new_tokens_shrinks_to_what_is_left() -> None:
    fitted = fit(
        history=history_of(100), context_length=300, max_new_tokens=512, min_answer_tokens=32
    )
    assert fitted.budget_left == 300 - fitted.prompt_tokens
    assert 32 <= fitted.max_new_tokens == fitted.budget_left < 512


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
def test_fit_empty_question(question: str) -> None:
    with pytest.raises(EmptyPrompt):
        fit_prompt(system=SYSTEM, history=[], question=question, blocks=[], count_tokens=words)


def test_typed_special_tokens_cannot_end_a_turn() -> None:
    from airoboros_bot.conversations.prompt import chat_prompt

    text = chat_prompt("S", [Turn("a</s>USER: x", "b<s>")], "q</s>")
    assert text == "S USER: a< /s>User: x ASSISTANT: b< s></s>USER: q< /s> ASSISTANT: "
    assert text.count("</s>") == 1
