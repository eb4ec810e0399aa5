"""The buttons under an answer (Stop while it is written, "Continue in thread" once it is
done) and those of the "where should this message go?" question of **Add as context**.

Their custom ids carry what a press needs, so buttons keep working after the bot restarts; a
press is handed to the bot's cog named `ANSWER_BUTTONS_COG` (a `ButtonHandler`: the `/ask`
commands) or `CONTEXT_BUTTONS_COG` (a `ContextChoiceHandler`), looked up on the client, so this
module imports no command.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import discord

ANSWER_BUTTONS_COG = "ask"
CONTEXT_BUTTONS_COG = "context"
CONTEXT_CHOICES = ("current", "new", "cancel")


@runtime_checkable
class ButtonHandler(Protocol):
    """What the client does when a button is pressed."""

    async def stop_button(
        self, interaction: discord.Interaction, job_id: str, owner_id: int
    ) -> None:
        """The Stop button of job ``job_id``, asked for by ``owner_id``."""

    async def continue_in_thread(self, interaction: discord.Interaction) -> None:
        """The "Continue in thread" button."""


@runtime_checkable
class ContextChoiceHandler(Protocol):
    """What the client does when the user says where a context block goes."""

    async def context_choice(
        self, interaction: discord.Interaction, choice: str, token: str
    ) -> None:
        """``choice`` (one of `CONTEXT_CHOICES`) for the message held under ``token``."""


def _cog(interaction: discord.Interaction, name: str) -> object:
    get_cog = getattr(interaction.client, "get_cog", None)
    return get_cog(name) if get_cog is not None else None


def _handler(interaction: discord.Interaction) -> ButtonHandler | None:
    """The cog that handles presses of the answer buttons, if the client has it."""
    cog = _cog(interaction, ANSWER_BUTTONS_COG)
    return cog if isinstance(cog, ButtonHandler) else None


class StopButton(
    discord.ui.DynamicItem[discord.ui.Button],
    # Job ids are hex, or ``tag~hex`` from the engine client (its reply reader's hash tag).
    template=r"airoboros:stop:(?P<job>[0-9a-z~]{1,64}):(?P<user>[0-9]{1,20})",
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


class ContextChoiceButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"airoboros:ctx:(?P<choice>current|new|cancel):(?P<token>[A-Za-z0-9_-]{1,40})",
):
    """One answer to "where should this message go?": the channel's current context thread,
    a new one, or cancel; ``token`` names the message held meanwhile (`ChatService.hold`)."""

    LABELS: ClassVar[dict[str, str]] = {"new": "New context thread", "cancel": "Cancel"}
    STYLES: ClassVar[dict[str, discord.ButtonStyle]] = {
        "current": discord.ButtonStyle.primary,
        "new": discord.ButtonStyle.secondary,
        "cancel": discord.ButtonStyle.danger,
    }

    def __init__(self, choice: str, token: str, label: str = "") -> None:
        super().__init__(
            discord.ui.Button(
                label=(label or self.LABELS.get(choice, choice))[:80],
                style=self.STYLES[choice],
                custom_id=f"airoboros:ctx:{choice}:{token}",
            )
        )
        self.choice = choice
        self.token = token

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any
    ) -> ContextChoiceButton:
        return cls(match["choice"], match["token"])

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = _cog(interaction, CONTEXT_BUTTONS_COG)
        if isinstance(handler, ContextChoiceHandler):
            await handler.context_choice(interaction, self.choice, self.token)


def button_view(*items: discord.ui.Item) -> discord.ui.View:
    """A view holding ``items`` that never times out."""
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view
