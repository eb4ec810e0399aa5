"""The data a conversation is made of: its key, mode, turns and context blocks."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import quote


class Mode(StrEnum):
    """Whether earlier turns are sent to the model with a new question."""

    HISTORY = "history"
    NO_HISTORY = "no-history"


@dataclass(frozen=True)
class ConversationKey:
    """Where a conversation lives: platform, workspace (guild / team), channel, thread.

    A thread (or the root message of a reply chain) is one conversation; ``user`` is set for a
    person's private conversation there (`private_for`), which nobody else's questions read.
    """

    platform: str
    workspace: str
    channel: str
    thread: str = ""
    user: str = ""

    @property
    def id(self) -> str:
        """A stable string id, safe to use inside a Redis key."""
        parts = (self.platform, self.workspace, self.channel, self.thread)
        parts += (f"@{self.user}",) if self.user else ()
        return ":".join(quote(p, safe="") for p in parts)

    @property
    def channel_key(self) -> ConversationKey:
        """The channel this conversation is in (its settings are the defaults of new ones)."""
        return ConversationKey(self.platform, self.workspace, self.channel)

    @property
    def shared(self) -> ConversationKey:
        """The shared conversation (this key without its private ``user``)."""
        return replace(self, user="")

    def private_for(self, user: str) -> ConversationKey:
        """``user``'s private conversation in the same place."""
        return replace(self, user=user)

    def at(self, thread: str) -> ConversationKey:
        """The conversation of thread (or reply-chain root) ``thread`` in the same channel."""
        return ConversationKey(self.platform, self.workspace, self.channel, thread)


@dataclass(frozen=True)
class Turn:
    """One finished exchange: the user's prompt and the assistant's answer.

    ``id`` (the answer's job id when the service stores it) makes storing it twice a no-op;
    it plays no part in equality.
    """

    user: str
    assistant: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False)

    def to_json(self) -> str:
        """Encode for storage (the id first: the store recognises a stored turn by it)."""
        return json.dumps({"id": self.id, "user": self.user, "assistant": self.assistant})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Turn:
        """Decode from storage (turns stored before ids existed get an empty one)."""
        data = json.loads(raw)
        return cls(user=data["user"], assistant=data["assistant"], id=data.get("id", ""))


@dataclass(frozen=True)
class ContextBlock:
    """A document the user attached, with metadata lines (url, date, author, ...).

    ``metadata`` keeps its insertion order; it becomes the ``key: value`` lines between
    BEGINCONTEXT and ENDCONTEXT.
    """

    text: str
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def to_json(self) -> str:
        """Encode for storage (the id first: the store recognises a stored block by it)."""
        return json.dumps({"id": self.id, "text": self.text, "metadata": self.metadata})

    @classmethod
    def from_json(cls, raw: str | bytes) -> ContextBlock:
        """Decode from storage."""
        data: dict[str, Any] = json.loads(raw)
        return cls(text=data["text"], metadata=dict(data["metadata"]), id=data["id"])

    @property
    def label(self) -> str:
        """A short human name for listings: file name, title, url or the first words."""
        for key in ("file", "title", "url"):
            if self.metadata.get(key):
                return self.metadata[key]
        words = " ".join(self.text.split()[:8])
        return words[:60] or "(empty)"
