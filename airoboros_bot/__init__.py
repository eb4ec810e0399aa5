"""airoboros-bot: Discord and Slack bots and a terminal chat answering with airoboros-7b-gpt4.

One import namespace over the repository's top-level folders (see pyproject.toml's
``package-dir``): ``airoboros_bot.config`` <- ``config/``, ``airoboros_bot.engine`` <- ``engine/``,
``airoboros_bot.conversations`` <- ``conversations/``, ``airoboros_bot.bots`` <- ``bots/``.
"""

__version__ = "0.2.0"
