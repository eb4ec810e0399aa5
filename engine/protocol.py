"""The job protocol: what goes on the job stream and on a job's reply stream. No I/O here.

A job is one stream entry on ``{prefix}:jobs``. Its answer comes back as entries on the job's own
reply stream, each a chunk: ``start`` (a worker took it), ``token`` (text to append), ``reset``
(discard the text so far: the job is being run again), ``done`` (the whole answer) or ``failed``.

Every chunk carries the ``attempt`` that wrote it (1, 2, ... each time a worker begins the job)
and its ``seq`` within that attempt (0 for ``start``/``reset``, then 1, 2, ...). Workers write
only while they own the attempt, so attempts never interleave; `ChunkFence` is the reader's side:
it drops chunks of an older attempt and repeated sequence numbers.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ChunkKind = Literal["start", "token", "reset", "done", "failed"]
FinishReason = Literal["eos", "length", "stop", "cancelled", "deadline"]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; jobs with equal parameters can share one batch."""

    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.9
    repetition_penalty: float = 1.1


@dataclass(frozen=True)
class Job:
    """One generation request."""

    prompt: str
    max_new_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    deadline: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)

    def to_fields(self) -> dict[str, str]:
        """Encode as stream entry fields."""
        return {"job": json.dumps(asdict(self))}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Job:
        """Decode from stream entry fields; raises ValueError when malformed."""
        try:
            data = json.loads(fields["job"])
            data["sampling"] = Sampling(**data["sampling"])
            data["stop"] = tuple(data["stop"])
            job = cls(**data)
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed job entry: {exc}") from None
        if not isinstance(job.prompt, str) or job.max_new_tokens < 1:
            raise ValueError("malformed job entry: bad prompt or max_new_tokens")
        return job


@dataclass(frozen=True)
class Chunk:
    """One entry of a job's reply stream."""

    kind: ChunkKind
    text: str = ""
    finish_reason: FinishReason | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    error: str = ""
    worker: str = ""
    attempt: int = 1
    seq: int = 0

    @property
    def final(self) -> bool:
        """Whether this chunk ends the answer (``done`` or ``failed``)."""
        return self.kind in ("done", "failed")

    def to_fields(self) -> dict[str, str]:
        """Encode as stream entry fields (defaults left out)."""
        # vars(), not asdict(): the fields are flat, and asdict's deep copy was a tenth of the
        # worker's time per streamed chunk.
        data: dict[str, Any] = {
            k: v for k, v in vars(self).items() if v not in ("", 0, None) or k == "kind"
        }
        return {"chunk": json.dumps(data)}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Chunk:
        """Decode from stream entry fields."""
        return cls(**json.loads(fields["chunk"]))


class ChunkFence:
    """What a reader keeps of a reply stream: one attempt at a time, each sequence number once.

    `admit` returns the chunks to pass on for one chunk read: none for a stale or repeated
    chunk; a synthetic ``reset`` before the first chunk of a newer attempt when its own
    ``reset`` was not seen; nothing at all after the final chunk.
    """

    def __init__(self) -> None:
        self.attempt = 0
        self.seq = -1
        self.finished = False

    def admit(self, chunk: Chunk) -> list[Chunk]:
        """The chunks a reader should see for ``chunk`` (in order)."""
        if self.finished or chunk.attempt < self.attempt:
            return []
        out: list[Chunk] = []
        if chunk.attempt > self.attempt:
            if self.attempt and chunk.kind not in ("start", "reset"):
                out.append(Chunk(kind="reset", attempt=chunk.attempt))
            self.attempt, self.seq = chunk.attempt, -1
        elif chunk.seq <= self.seq:
            return []
        self.seq = chunk.seq
        self.finished = chunk.final
        out.append(chunk)
        return out
