"""Slack text: mrkdwn escaping, message text to plain text, Block Kit for answers, user texts.

No Slack library here: only strings and dicts in the shapes the Web API takes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from airoboros_bot.bots.core.render import AnswerView
from airoboros_bot.bots.core.service import Answer, AnswerEvent, Delta, Submitted
from airoboros_bot.conversations.models import ContextBlock

SECTION_LIMIT = 3000  # characters of one section block's text
PAGE_LIMIT = 2900  # one answer message: one section, with room to spare
HEADER_QUESTION_CHARS = 300
STOP_ACTION = "stop_answer"
ADD_CONTEXT_CALLBACK = "add_as_context"
# The buttons of "where should this block go?" (value: the held choice's token).
CONTEXT_TO_CURRENT = "context_to_current"
CONTEXT_TO_NEW = "context_to_new"
CONTEXT_CANCEL = "context_cancel"
CONTEXT_CHOICES = (CONTEXT_TO_CURRENT, CONTEXT_TO_NEW, CONTEXT_CANCEL)
THINKING = "Thinking… ▌"
PRIVATE_THINKING = "Thinking… (only you can see this question and its answer)"
EMPTY = "_(empty answer)_"

ASK_USAGE = "Usage: `/ask your question`, e.g. `/ask What is the capital of France?`"
ASK_PRIVATE_USAGE = (
    "Usage: `/ask-private your question`: only you see the answer, and it stays out of "
    "everyone else's conversations."
)
THREAD_COMMANDS = (
    "In a thread, mention me with `reset` to forget its conversation or with "
    "`mode history` / `mode no-history` to switch it (the person who started it, or an admin)."
)
CONTEXT_USAGE = (
    "Usage: `/context [title]` starts a context thread; `/context list` shows the blocks of the "
    "channel's current context thread and how much of the model's window they use; "
    "`/context clear` removes them."
)
MODE_USAGE = (
    "Usage: `/ask-mode` shows the mode new conversations here start with; admins set it with "
    "`/ask-mode history` or `/ask-mode no-history`."
)
COMMANDS_HINT = (
    "Try `/ask`, `/ask-private`, `/context`, `/ask-mode`, `/ask-reset` or `/trivia help`."
)

_ENTITY = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so Slack shows text as written (no links, no mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>``."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _entity_text(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        name = target[1:].split("^")[0]
        return label or f"@{name}"
    target = target.removeprefix("mailto:")
    return f"{label} ({target})" if label and label != target else target


def plain_text(text: str) -> str:
    """Slack message text as plain text: ``<@U1>`` -> ``@U1``, ``<url|label>`` -> ``label (url)``,
    entities unescaped."""
    return unescape(_ENTITY.sub(_entity_text, text or "")).strip()


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """The text without mentions of the bot."""
    if not bot_user_id:
        return text
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text).strip()


def mentions(text: str, bot_user_id: str | None) -> bool:
    """Whether ``text`` mentions the bot."""
    return bool(bot_user_id) and re.search(rf"<@{re.escape(bot_user_id)}[|>]", text) is not None


def message_date(ts: str) -> str:
    """The UTC date and time of a Slack message timestamp (``1700000000.000100``)."""
    try:
        moment = datetime.fromtimestamp(float(ts), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def link(url: str, label: str) -> str:
    """A mrkdwn link ``<url|label>`` (just the escaped label when there is no url)."""
    label = escape(label)
    if not url:
        return label
    target = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{target}|{label}>"


def source_name(block: ContextBlock) -> str:
    """A readable name for a block in a sources list: file, title, or author in channel, date."""
    meta = block.metadata
    for key in ("file", "title"):
        if meta.get(key):
            return meta[key]
    who = " in ".join(v for v in (meta.get("author", ""), meta.get("channel", "")) if v)
    when = meta.get("date", "")[:10]
    name = ", ".join(v for v in (who, when) if v)
    return name or block.label


def format_sources(blocks: tuple[ContextBlock, ...]) -> str:
    """Sources as mrkdwn lines, linked to their messages: ``[1] <url|name>``."""
    lines = []
    for number, block in enumerate(blocks, 1):
        lines.append(f"[{number}] {link(block.metadata.get('url', ''), source_name(block))}")
    return "*Sources:*\n" + "\n".join(lines)


class SlackAnswerView(AnswerView):
    """An `AnswerView` whose model text is escaped for mrkdwn, so an answer can never ping
    ``@channel`` or a user, nor make a link."""

    def apply(self, event: AnswerEvent) -> None:
        """Fold one event into the view, escaping the model's text."""
        if isinstance(event, Delta):
            event = Delta(escape(event.text))
        elif isinstance(event, Answer):
            event = Answer(
                escape(event.text),
                event.finish_reason,
                event.tokens,
                event.prompt_tokens,
                event.sources,
            )
        notes_before = len(self.notes)
        super().apply(event)
        if isinstance(event, Submitted):
            self.notes[notes_before:] = [escape(n) for n in self.notes[notes_before:]]


def section(text: str) -> dict[str, Any]:
    """A section block (text cut to Slack's 3,000-character limit as a last resort)."""
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text.strip() or EMPTY}}


def question_header(user: str, question: str) -> str:
    """The context line over an /ask answer: who asked what."""
    question = " ".join(question.split())
    if len(question) > HEADER_QUESTION_CHARS:
        question = question[: HEADER_QUESTION_CHARS - 1] + "…"
    return f"<@{user}> asked: {escape(question)}"


def answer_blocks(
    content: str, *, header: str | None = None, stop_value: str | None = None
) -> list[dict[str, Any]]:
    """Blocks of one answer message: optional header, the text, optional Stop button."""
    blocks: list[dict[str, Any]] = []
    if header:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": header}]})
    blocks.append(section(content))
    if stop_value:
        stop = button(STOP_ACTION, "Stop", stop_value, "danger")
        blocks.append({"type": "actions", "elements": [stop]})
    return blocks


def button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A Block Kit button."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label[:75]},
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def context_choice_blocks(token: str, current_title: str | None) -> list[dict[str, Any]]:
    """Where should a message go, asked privately: the channel's current context thread (if
    there is one), a new context thread, or nowhere."""
    if current_title:
        question = (
            "This message is not in a context thread. Add it to this channel's context thread "
            f"“{escape(current_title)}”, or to a new one?"
        )
    else:
        question = "This channel has no context thread yet. Start one with this message?"
    buttons = []
    if current_title:
        label = f"Add to “{current_title[:50]}”"
        buttons.append(button(CONTEXT_TO_CURRENT, label, token, "primary"))
    buttons.append(button(CONTEXT_TO_NEW, "New context thread", token))
    buttons.append(button(CONTEXT_CANCEL, "Cancel", token))
    return [section(question), {"type": "actions", "elements": buttons}]


def context_intro(title: str, bot_user_id: str | None) -> str:
    """The parent message of a context thread."""
    bot = f"<@{bot_user_id}>" if bot_user_id else "me"
    return (
        f":paperclip: *Context: {escape(title)}*\n"
        "Reply in this thread with text, or attach .txt / .md files: each message becomes a "
        f"context block with its link, date, author and channel. Mention {bot} in the thread to "
        "ask about them; answers cite their sources. `/context list` shows the blocks, "
        "`/context clear` removes them."
    )
