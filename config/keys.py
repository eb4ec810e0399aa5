"""Every Redis key airoboros-bot uses, in one place.

On a Redis Cluster, a command or script over several keys must stay in one hash slot, so the
keys used together share a hash tag (the part in braces decides the slot):

- one job: ``{job id}`` (reply stream, fencing hash, cancel key, ...); a job id of the form
  ``tag~rest`` uses ``{tag}`` instead, so a reader gives the jobs it waits for its own tag and
  reads all their reply streams, and its wake stream, with one ``XREAD`` (which must not span
  slots);
- the submission markers take the job stream's own name as their hash tag, so the script that
  queues a job touches a single slot too;
- one conversation: ``{conversation id}`` (settings, turns, context blocks);
- one workspace's games: ``{platform:workspace}`` (game, scores, names, per-question scratch).

Keys never used together (the worker registry, rate limits) need no tag. The job stream is one
key, so one cluster node serves the whole queue (a few commands per job, not per token: see
README, Scaling out).
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

    def _job(self, job_id: str) -> str:
        tag, sep, rest = job_id.partition("~")
        return f"{self.prefix}:job:{{{tag}}}{sep}{rest}"

    def job_output(self, job_id: str) -> str:
        """The reply stream of one job."""
        return f"{self._job(job_id)}:out"

    @property
    def job_output_pattern(self) -> str:
        """Pattern matching the reply stream of every job (``tag~`` ids included)."""
        return f"{self.prefix}:job:*:out"

    def job_run(self, job_id: str) -> str:
        """Hash fencing a job's output: attempt, owner token, last sequence number, done."""
        return f"{self._job(job_id)}:run"

    def job_submitted(self, job_id: str) -> str:
        """The job's current entry id on the job stream (same slot as the stream): a retried
        submission finds it and queues nothing twice."""
        # Under the prefix (an ACL rule ``~airoboros:*`` covers it), tagged with the job
        # stream's name: the slot of ``{airoboros:jobs}`` is the slot of ``airoboros:jobs``.
        return f"{self.prefix}:submitted:{{{self.jobs}}}:{job_id}"

    def reply_wake(self, reader_tag: str) -> str:
        """A stream that wakes one process's reply reader when it has a new stream to watch
        (on the slot of the reader's ``tag~`` jobs)."""
        return f"{self.prefix}:reader:{{{reader_tag}}}:wake"

    def job_cancel(self, job_id: str) -> str:
        """Set when the job's reader asks it to stop."""
        return f"{self._job(job_id)}:cancel"

    def worker_health(self, worker: str) -> str:
        """A worker's heartbeat key (expires when the worker stops reporting)."""
        return f"{self.prefix}:worker:{worker}"

    @property
    def workers(self) -> str:
        """Sorted set indexing the workers' heartbeat keys (name -> last report + TTL)."""
        return f"{self.prefix}:workers"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel on which readers announce cancelled job ids."""
        return f"{self.prefix}:cancels"

    @property
    def worker_health_pattern(self) -> str:
        """Pattern matching every worker's heartbeat key."""
        return f"{self.prefix}:worker:*"

    def conversation(self, conversation_id: str) -> str:
        """Hash with a conversation's settings (mode, title)."""
        return f"{self.prefix}:conv:{{{conversation_id}}}"

    def conversation_turns(self, conversation_id: str) -> str:
        """List of a conversation's finished turns, oldest first."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:turns"

    def conversation_context(self, conversation_id: str) -> str:
        """List of a conversation's context blocks, in the order they were added."""
        return f"{self.prefix}:conv:{{{conversation_id}}}:context"

    @property
    def layout(self) -> str:
        """The key layout version stored in Redis (2: conversation keys carry a hash tag)."""
        return f"{self.prefix}:layout"

    @property
    def legacy_conversation_pattern(self) -> str:
        """Matches the conversation keys of layout 1 (and those of layout 2, told apart by
        their braces)."""
        return f"{self.prefix}:conv:*"

    def pending_choice(self, token: str) -> str:
        """Something a user was asked about (e.g. where a context block goes), until they
        answer (expires)."""
        return f"{self.prefix}:pending:{token}"

    def delivery(self, platform: str, delivery_id: str) -> str:
        """Set once when a platform event is first handled (re-deliveries are dropped)."""
        return f"{self.prefix}:delivery:{platform}:{delivery_id}"

    def edit_budget(self, platform: str, workspace: str) -> str:
        """Hash: the message-edit token bucket shared by every bot process of one workspace."""
        return f"{self.prefix}:editbudget:{{{platform}:{workspace}}}"

    def channel_modes(self, platform: str, workspace: str) -> str:
        """Hash channel id -> default mode of new conversations there (set by an admin)."""
        return f"{self.prefix}:channelmodes:{platform}:{workspace}"

    def alerts(self, name: str) -> str:
        """Hash: count and last time / text of an alert for the admin (e.g. engine offline)."""
        return f"{self.prefix}:alert:{name}"

    # -- games: keys of one workspace share the hash tag ``{platform:workspace}``, so the
    # scoring scripts (which touch a game, its channel's and its workspace's scores) stay on one
    # Redis Cluster slot.
    def _games(self, platform: str, workspace: str) -> str:
        return f"{self.prefix}:games:{{{platform}:{workspace}}}"

    def game(self, platform: str, workspace: str, channel_id: str) -> str:
        """Hash with the game running in one channel (state, open question, winner)."""
        return f"{self._games(platform, workspace)}:game:{channel_id}"

    def game_attempts(self, platform: str, workspace: str, question_id: str) -> str:
        """Hash user id -> wrong answers given to one question."""
        return f"{self._games(platform, workspace)}:attempts:{question_id}"

    def game_found(self, platform: str, workspace: str, question_id: str) -> str:
        """Hash word -> user id of the words found in one list-game round."""
        return f"{self._games(platform, workspace)}:found:{question_id}"

    def game_scores(self, platform: str, workspace: str, game_id: str) -> str:
        """Sorted set user id -> points in one game."""
        return f"{self._games(platform, workspace)}:score:game:{game_id}"

    def channel_scores(self, platform: str, workspace: str, channel_id: str) -> str:
        """Sorted set user id -> all-time points in one channel."""
        return f"{self._games(platform, workspace)}:score:channel:{channel_id}"

    def workspace_scores(self, platform: str, workspace: str) -> str:
        """Sorted set user id -> all-time points in a whole workspace / guild."""
        return f"{self._games(platform, workspace)}:score:all"

    def player_names(self, platform: str, workspace: str) -> str:
        """Hash user id -> the display name last seen, for leaderboards."""
        return f"{self._games(platform, workspace)}:names"

    def game_recent(self, platform: str, workspace: str, channel_id: str) -> str:
        """The last question of a game that just ended (expires), to answer late answers."""
        return f"{self._games(platform, workspace)}:recent:{channel_id}"

    def game_notice(self, platform: str, workspace: str, question_id: str) -> str:
        """Set of user ids already told something about one question (told once only)."""
        return f"{self._games(platform, workspace)}:notice:{question_id}"

    def active_games(self, platform: str) -> str:
        """Set of the channels of one platform with a running game (resumed at start-up)."""
        return f"{self.prefix}:games:active:{platform}"
