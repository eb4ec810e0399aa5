"""What the Discord bot says: help, sources as Discord links, context usage, short notices.

Plain text in Discord markdown; nothing here talks to Discord (see `bots.discord.client`).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from airoboros_bot.bots.core.service import ContextUsage
from airoboros_bot.conversations.models import ContextBlock, ConversationKey

MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
TEXT_SUFFIXES = (".txt", ".md")

HELP = """**airoboros** answers with a local language model.
`/ask question [private]` ask a question; the answer streams in (Stop button to stop it). Each \
`/ask` (or mention) starts a conversation: **reply** to one of my answers to continue it, no \
mention needed. A private answer is yours alone, and so is its history. "Continue in thread" \
under an answer opens a thread where plain messages continue the conversation.
`/context new [title]` open a thread for documents: every message and `.txt` / `.md` file \
posted there becomes context; ask there with `/ask` or by mentioning me, and the answer cites \
its sources.
`/context list` the context blocks and how much of the model's window they use.
`/context clear` remove the context blocks (whoever opened the thread, or Manage Messages).
Message menu → Apps → **Add as context**: add a message to a context thread (I ask which).
`/mode history|no-history` whether earlier questions are sent with a new one, in a thread.
`/channel-mode` the mode new conversations in this channel start with (Manage Messages).
`/reset [private]` forget this thread's conversation (whoever started it, or Manage \
Messages), or your private answers here.
`/stop` stop your answer that is being written here.
`/help` this list."""

GAMES_HELP = """**Games** (answer with plain messages in the channel; first right answer wins):
`/trivia start [topic] [rounds]` trivia questions; `/anagram [rounds]` anagram riddles; \
`/words [prefix] [rounds]` find words that start with a prefix.
`/trivia stop` stop the game here. `/trivia leaderboard [channel|server]` all-time scores."""
TRIVIA_CHANNEL_NOTE = (
    "This is a trivia channel: post `trivia [topic] [rounds]`, `anagram [rounds]` or "
    "`words [prefix] [rounds]` to play (or use `/trivia start`). Ask me with `/ask`, or "
    "mention me in another channel."
)

CONTEXT_WELCOME = (
    "**Context thread.** Post text or attach `.txt` / `.md` files here: each message becomes a "
    "context block (📎 when stored). Then ask with `/ask` or by mentioning me; answers use only "
    "these blocks and cite them. `/context list` shows the blocks, `/context clear` removes them."
)
CHAT_THREAD_WELCOME = (
    "Reply here to continue the conversation: no need to mention me. `/stop` stops an answer, "
    "`/reset` forgets the conversation."
)
CHANNEL_MODE_NOTE = (
    "New conversations here start with it: each `/ask` or mention starts one, and replies to "
    "my answers continue it. Its thread (**Continue in thread**) can switch it with `/mode`; "
    "`/channel-mode` (Manage Messages) changes this channel's."
)
MODE_IN_A_CHANNEL = (
    "Each question here starts its own conversation, so there is no conversation of the "
    "channel to switch: use `/mode` in a conversation's thread (**Continue in thread**), or "
    "`/channel-mode` (Manage Messages) for the mode new ones start with."
)
CHOICE_EXPIRED = "That choice has expired: use **Add as context** again."
NO_THREADS_HERE = "Context threads need a server text channel: run `/context new` in one."
STOP_NOT_YOURS = "Only the person who asked can stop this answer."
STORED_REACTION = "📎"

_MARKDOWN_SPECIALS = re.compile(r"([\\\[\]*_~`|])")


def escape_link_text(text: str) -> str:
    """Text safe inside a Discord markdown link label (one line, specials escaped)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(text.split()))


def source_name(block: ContextBlock) -> str:
    """A short human name for a block: its file, title, or whose message it was."""
    meta = block.metadata
    if meta.get("file"):
        return meta["file"]
    if meta.get("title"):
        return meta["title"]
    if meta.get("author"):
        return f"message by {meta['author']}"
    return block.label


def format_sources(blocks: tuple[ContextBlock, ...]) -> str:
    """Sources as a numbered list of Discord markdown links (embeds suppressed)."""
    lines = ["**Sources**"]
    for number, block in enumerate(blocks, 1):
        meta = block.metadata
        name = escape_link_text(source_name(block))[:200]
        url = meta.get("url", "")
        line = f"{number}. [{name}](<{url}>)" if url.startswith("https://") else f"{number}. {name}"
        details = [meta[k] for k in ("author", "date") if meta.get(k)]
        if details:
            line += " — " + escape_link_text(", ".join(details))
        lines.append(line)
    return "\n".join(lines)


def context_question(author: str, current: ConversationKey | None, title: str | None) -> str:
    """The private question "where should this message go?" of **Add as context**."""
    where = (
        f"this channel's context thread <#{current.thread}> ({escape_link_text(title or '')}), "
        if current is not None
        else ""
    )
    return (
        f"Where should {escape_link_text(author)}'s message go? I can add it to {where}"
        "a new context thread, or nowhere. Questions there (or about it) use only the blocks "
        "of that thread."
    )


def cannot_open_thread(reason: str) -> str:
    """What to tell the user when Discord refuses a new thread."""
    return (
        f"I could not open a thread here ({reason}): I need the Create Public Threads and "
        "Send Messages in Threads permissions."
    )


def usage_report(usage: ContextUsage, where: str) -> str:
    """The `/context list` text: each block with its tokens, and the share of the window."""
    if not usage.blocks:
        return f"No context blocks in {where} yet."
    percent = round(100 * usage.total_tokens / usage.window)
    lines = [
        f"**{len(usage.blocks)} context block(s) in {where}**: {usage.total_tokens} of "
        f"{usage.window} tokens of the model's window ({percent}%)."
    ]
    for number, (block, tokens) in enumerate(zip(usage.blocks, usage.block_tokens, strict=True)):
        url = block.metadata.get("url", "")
        name = escape_link_text(source_name(block))[:200]
        label = f"[{name}](<{url}>)" if url.startswith("https://") else name
        lines.append(f"{number + 1}. {label} ({tokens} tokens)")
    if usage.total_tokens >= usage.window * 3 // 4:
        lines.append(
            "_Together they nearly fill the window: blocks that do not fit with a question are "
            "left out of the answer, which says which ones._"
        )
    return "\n".join(lines)


def rate_limited(wait_s: float, limit: int, what: str = "questions") -> str:
    """The reply to a user over the per-minute limit (questions and new games share it)."""
    seconds = max(1, round(wait_s))
    return f"You are asking too fast: at most {limit} {what} a minute. Try again in {seconds} s."


def strip_mention(content: str, bot_id: int) -> str:
    """The message text without mentions of the bot."""
    for form in (f"<@{bot_id}>", f"<@!{bot_id}>"):
        content = content.replace(form, " ")
    return content.strip()


def is_text_file(filename: str) -> bool:
    """Whether an attachment is one the bot reads as context (.txt or .md)."""
    return PurePosixPath(filename.lower()).suffix in TEXT_SUFFIXES


def thread_name(title: str, fallback: str = "Context") -> str:
    """A valid thread name (1..100 characters, one line)."""
    name = " ".join(title.split()) or fallback
    return name[:THREAD_NAME_LIMIT]
