"""Every Redis key airoboros-bot uses, in one place.

Keys of one job share the hash tag ``{job id}`` so a Redis Cluster keeps them on one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

CONSUMER_GROUP = "workers"


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``AIROBOROS_REDIS_KEY_PREFIX``)."""

    prefix: str = "airoboros"

    @property
    def jobs(self) -> str:
        """The job stream every worker reads through the consumer group."""
        return f"{self.prefix}:jobs"

    @property
    def dead_letters(self) -> str:
        """Jobs that failed too many times."""
        return f"{self.prefix}:jobs:dead"

    def job_output(self, job_id: str) -> str:
        """The reply stream of one job."""
        return f"{self.prefix}:job:{{{job_id}}}:out"

    def job_cancel(self, job_id: str) -> str:
        """Set when the job's reader asks it to stop."""
        return f"{self.prefix}:job:{{{job_id}}}:cancel"

    def worker_health(self, worker: str) -> str:
        """A worker's heartbeat key (expires when the worker stops reporting)."""
        return f"{self.prefix}:worker:{worker}"

    @property
    def worker_health_pattern(self) -> str:
        """Pattern matching every worker's heartbeat key."""
        return f"{self.prefix}:worker:*"

    def conversation(self, conversation_id: str) -> str:
        """Hash with a conversation's settings (mode, title)."""
        return f"{self.prefix}:conv:{conversation_id}"

    def conversation_turns(self, conversation_id: str) -> str:
        """List of a conversation's finished turns, oldest first."""
        return f"{self.prefix}:conv:{conversation_id}:turns"

    def conversation_context(self, conversation_id: str) -> str:
        """List of a conversation's context blocks, in the order they were added."""
        return f"{self.prefix}:conv:{conversation_id}:context"
