"""The App Home tab: what the bot does, the user's own usage and limits, and the settings they
may change (channel defaults for admins, their own conversations for everyone)."""

from __future__ import annotations

from typing import Any

from airoboros_bot.bots.core.ratelimit import RateLimiter
from airoboros_bot.bots.core.service import ChatService
from airoboros_bot.bots.slack.api import SlackApi
from airoboros_bot.bots.slack.format import escape, section
from airoboros_bot.bots.slack.threads import PLATFORM
from airoboros_bot.config.settings import SlackSettings

MAX_CHANNELS = 20

ABOUT = (
    "*What I do*\n"
    "• `/ask question` answers at the top of the channel; reply in the answer's thread to go "
    "on (no mention needed): each thread is its own conversation.\n"
    "• Mention me in any thread: I read the thread first, so “summarise this thread” works.\n"
    "• `/ask-private question`: only you see the answer; it stays out of everyone's "
    "history.\n"
    "• `/context title` opens a context thread: messages and .txt / .md files posted there "
    "become documents I answer from, with their sources linked. *Add as context* (message "
    "menu) adds any message.\n"
    "• `/trivia`, `/anagram`, `/words`: games."
)


def _usage(used: int, limit: int, window_s: float) -> str:
    if limit <= 0:
        return f"*Your usage*\nYou asked {used} question(s) recently; there is no limit."
    left = max(0, limit - used)
    return (
        f"*Your usage*\nYou asked {used} of {limit} questions allowed per "
        f"{window_s:.0f} s: {left} left now."
    )


async def home_view(
    service: ChatService,
    limiter: RateLimiter,
    api: SlackApi,
    settings: SlackSettings,
    team: str,
    user: str,
    is_admin: bool,
) -> dict[str, Any]:
    """The ``home`` view for ``user`` (for views.publish)."""
    used = await limiter.used(f"slack:{team}:{user}")
    modes = await service.store.channel_modes(PLATFORM, team)
    default = service.store.default_mode.value
    lines = []
    for channel, mode in sorted(modes.items())[:MAX_CHANNELS]:
        lines.append(f"• {escape(await api.channel_name(channel))}: *{mode.value}*")
    channels = "\n".join(lines) or "• none set: every channel uses the default."
    if is_admin:
        settings_text = (
            "*Settings you may change* (you are an admin)\n"
            "• A channel's mode for new conversations: `/ask-mode history` or "
            f"`/ask-mode no-history` in it (default *{default}*). Set so far:\n{channels}\n"
            "• Any conversation: mention me in its thread with `reset` or `mode …`; "
            "`/context clear` in any channel."
        )
    else:
        settings_text = (
            "*Settings you may change*\n"
            "• Conversations you started: mention me in the thread with `reset`, "
            "`mode history` or `mode no-history`.\n"
            "• Context threads you opened: `/context clear` in their channel.\n"
            "• Your private conversation in a channel: `/ask-reset` there.\n"
            f"Channel modes for new conversations (admins change them; default *{default}*):\n"
            f"{channels}"
        )
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "airoboros"}},
            section(ABOUT),
            {"type": "divider"},
            section(_usage(used, limiter.limit, limiter.window_s)),
            {"type": "divider"},
            section(settings_text),
        ],
    }
