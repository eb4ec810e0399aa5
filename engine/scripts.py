"""The queue's atomic steps, each one Lua script over the keys of a single Redis Cluster slot.

Redis clients retry a command whose reply was lost (the connection broke after the server ran
it), so every write here is safe to run twice:

- `submit` queues a job unless its submission marker (in the job stream's slot) already names an
  entry; the retry returns that entry id. The marker outlives the job (`SUBMITTED_TTL_S`): a
  retry that arrives after a fast job was answered and acknowledged still queues nothing.
- `begin` makes a delivery the owner of its job (in the job's slot): the attempt counter goes up,
  the owner token is replaced, and the ``start``/``reset`` chunk is written in the same step. A
  retry with the same token changes nothing. A job already answered says so.
- `emit` writes chunks only while the token still owns the job, and only sequence numbers above
  the last one written: a stale worker writes nothing, a retried call adds nothing. It also
  says whether the job's reader asked to stop it, so a flush needs one command per job.
- `ack` removes a job's entry from the queue unless another worker holds it now; a worker sends
  it with its final chunk in one round trip.
- `release` gives a job up on shutdown; `requeue` puts it back at the end of the queue for any
  worker to take at once; `keep_claimed` resets the idle time of the stream entries a worker still
  holds (and only those: another worker's claim is never taken back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from airoboros_bot.engine.redis_connect import RedisClient

SUBMITTED_TTL_S = 3600
"""How long a job's submission marker lasts (far longer than any resent command takes)."""

SUBMIT = """
local current = redis.call('GET', KEYS[2])
if current then return current end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
redis.call('SET', KEYS[2], entry, 'EX', ARGV[2])
return entry
"""

# KEYS: run hash, reply stream. ARGV: token, ttl, max attempts, announce (1/0), worker,
# prompt tokens. Returns {status, attempt}: status is ok, done (already answered) or exhausted.
BEGIN = """
local run = redis.call('HMGET', KEYS[1], 'owner', 'attempt', 'done', 'released')
if run[3] then return {'done', tonumber(run[2] or '0')} end
local attempt
if run[1] == ARGV[1] then
  attempt = tonumber(run[2])
else
  attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'seq', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[4] == '1' and attempt - tonumber(run[4] or '0') <= tonumber(ARGV[3]) then
    local kind = 'start'
    if attempt > 1 then kind = 'reset' end
    local chunk = {kind=kind, attempt=attempt, seq=0, worker=ARGV[5],
                   prompt_tokens=tonumber(ARGV[6])}
    redis.call('XADD', KEYS[2], '*', 'chunk', cjson.encode(chunk))
    redis.call('EXPIRE', KEYS[2], ARGV[2])
  end
end
if attempt - tonumber(run[4] or '0') > tonumber(ARGV[3]) then return {'exhausted', attempt} end
return {'ok', attempt}
"""

# KEYS: run hash, reply stream, cancel key. ARGV: token, ttl, final (1/0), then seq, chunk pairs.
# Returns {last sequence number written (-1 when the token no longer owns the job), 1 if the
# job's reader asked to stop it else 0}.
EMIT = """
local cancelled = redis.call('EXISTS', KEYS[3])
local run = redis.call('HMGET', KEYS[1], 'owner', 'seq', 'done')
if run[1] ~= ARGV[1] then return {-1, cancelled} end
if run[3] and run[3] ~= ARGV[1] then return {-1, cancelled} end
local last = tonumber(run[2] or '0')
for i = 4, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[2], '*', 'chunk', ARGV[i + 1])
    last = seq
  end
end
redis.call('HSET', KEYS[1], 'seq', last)
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'done', ARGV[1])
  redis.call('DEL', KEYS[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {last, cancelled}
"""

# KEYS: run hash. ARGV: token. 1 when given up, 0 when the token did not own the job.
RELEASE = """
local run = redis.call('HMGET', KEYS[1], 'owner', 'done')
if run[1] ~= ARGV[1] or run[2] then return 0 end
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HINCRBY', KEYS[1], 'released', 1)
return 1
"""

# KEYS: job stream, submission marker. ARGV: group, consumer, entry id, job fields, marker ttl.
# Returns the job's new entry id, or false when this consumer no longer holds the entry.
REQUEUE = """
local current = redis.call('GET', KEYS[2])
if current and current ~= ARGV[3] then return current end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return false end
local entry = redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
redis.call('SET', KEYS[2], entry, 'EX', ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return entry
"""

# KEYS: job stream. ARGV: group, consumer, entry ids. Returns the ids still held (re-claimed).
KEEP_CLAIMED = """
local kept = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending > 0 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

# KEYS: job stream. ARGV: group, consumer, entry id. Acknowledges the entry unless another
# consumer holds it now (0); an entry no longer pending is acknowledged already.
ACK = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending > 0 and pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"""


def text(value: bytes | str) -> str:
    """A script's string reply, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueScripts:
    """The scripts, callable on the client they were registered on or queued on a pipeline.

    Direct calls run by SHA and load the script when the server does not know it. Queued calls
    are plain ``EVALSHA`` (a pipeline of registered scripts would first ask the server whether
    it has them, one more round trip per flush); `pipeline` loads the scripts and runs the
    whole pipeline again when a restarted server has forgotten them, which is safe because
    every script is.
    """

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self.submit = redis.register_script(SUBMIT)
        self.begin = redis.register_script(BEGIN)
        self.emit = redis.register_script(EMIT)
        self.release = redis.register_script(RELEASE)
        self.requeue = redis.register_script(REQUEUE)
        self.keep_claimed = redis.register_script(KEEP_CLAIMED)
        self.ack = redis.register_script(ACK)
        self._all: tuple[AsyncScript, ...] = (
            self.submit,
            self.begin,
            self.emit,
            self.release,
            self.requeue,
            self.keep_claimed,
            self.ack,
        )

    @staticmethod
    def queue(
        pipe: Pipeline, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]
    ) -> None:
        """Queue ``script`` on ``pipe``.

        (A plain ``EVALSHA`` command: redis-py's cluster pipeline refuses its ``evalsha()``
        method, but routes the command by its keys, which are all of one slot here.)
        """
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Make the server know every script (after a restart it knows none)."""
        for script in self._all:
            script.sha = await self.redis.script_load(script.script)

    async def pipeline(self, build: Callable[[Pipeline], None]) -> list[Any]:
        """Run the commands ``build`` queues, in one round trip (not a transaction)."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                build(pipe)
                try:
                    return await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
            await self.load()
        raise AssertionError("unreachable")
