"""Exactly once for readers on a Redis Cluster: worker processes SIGKILLed mid-answer (the test of
tests/engine/test_exactly_once.py): 0 lost, 0 duplicated, 0 garbled.

Here a job's fencing hash, reply stream and cancel key, the reader's wake stream, the job stream
and its submission markers live on different primaries: every fencing script must stay in one
hash slot, and one process's answers (ids ``tag~...``) are read with one ``XREAD``.
"""

from __future__ import annotations

from tests.engine import conftest as engine_fixtures
from tests.engine import test_exactly_once
from tests.scale_out.borrow import borrow

borrow(globals(), engine_fixtures)
borrow(
    globals(),
    test_exactly_once,
    only=(
        "test_workers_killed_mid_answer_lose_double_or_garble_nothing",
        "test_a_worker_that_lost_its_job_cannot_write",
    ),
)
