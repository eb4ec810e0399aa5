"""The Slack app on a Redis Cluster: asks, thread conversations, context threads, the Stop
button (cancel over pub/sub), rate limits (a Lua script) and modes (tests borrowed from
tests/bots/test_slack_app.py)."""

from __future__ import annotations

from tests.bots import conftest as bots_fixtures
from tests.bots import test_slack_app
from tests.scale_out.borrow import borrow

borrow(globals(), bots_fixtures)
borrow(globals(), test_slack_app)
