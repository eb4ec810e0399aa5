"""The job queue on a Redis Cluster: batching, cancels (pub/sub), queue positions, deadlines,
and real worker processes killed mid-answer (tests borrowed from tests/engine)."""

from __future__ import annotations

from tests.engine import conftest as engine_fixtures
from tests.engine import test_faults, test_worker
from tests.scale_out.borrow import borrow

borrow(globals(), engine_fixtures)
borrow(globals(), test_worker)
borrow(
    globals(),
    test_faults,
    only=(
        "test_killed_workers_never_lose_an_answer",
        "test_a_job_that_keeps_failing_is_dead_lettered",
    ),
)
