"""The buttons under an answer: Stop while it is written, "Continue in thread" once it is done.

Their custom ids carry what a press needs, so buttons keep working after the bot restarts; a
press is handed to the bot's cog named `ANSWER_BUTTONS_COG` (a `ButtonHandler`: the `/ask`
commands), looked up on the client, so this module imports no command.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import discord

ANSWER_BUTTONS_COG = "ask"


@runtime_checkable
class ButtonHandler(Protocol):
    """What the client does when a button is pressed."""

    async def stop_button(
        self, interaction: discord.Interaction, job_id: str, owner_id: int
    ) -> None:
        """The Stop button of job ``job_id``, asked for by ``owner_id``."""

    async def continue_in_thread(self, interaction: discord.Interaction) -> None:
        """The "Continue in thread" button."""


def _handler(interaction: discord.Interaction) -> ButtonHandler | None:
    """The cog that handles presses of the answer buttons, if the client has it."""
    get_cog = getattr(interaction.client, "get_cog", None)
    cog = get_cog(ANSWER_BUTTONS_COG) if get_cog is not None else None
    return cog if isinstance(cog, ButtonHandler) else None


class StopButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"airoboros:stop:(?P<job>[0-9a-f]{1,64}):(?P<user>[0-9]{1,20})",
):
    """Stops the answer of job ``job_id``; only its asker (or a message manager) may."""

    def __init__(self, job_id: str, user_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Stop",
                style=discord.ButtonStyle.danger,
                custom_id=f"airoboros:stop:{job_id}:{user_id}",
            )
        )
        self.job_id = job_id
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> StopButton:
        return cls(match["job"], int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.stop_button(interaction, self.job_id, self.user_id)


class ContinueButton(discord.ui.DynamicItem[discord.ui.Button], template=r"airoboros:thread"):
    """Opens a thread on the answer where plain replies continue the conversation."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label="Continue in thread",
                style=discord.ButtonStyle.secondary,
                custom_id="airoboros:thread",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> ContinueButton:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _handler(interaction)
        if handler is not None:
            await handler.continue_in_thread(interaction)


def button_view(*items: discord.ui.Item) -> discord.ui.View:
    """A view holding ``items`` that never times out."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
