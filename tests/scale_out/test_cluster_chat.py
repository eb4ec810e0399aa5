"""The chat path, Discord context threads and games on a Redis Cluster (tests borrowed from
tests/bots; the Slack app's are in test_cluster_slack.py, their fixtures share names).

Conversations, games and jobs spread over three primaries: every multi-key command, pipeline
transaction and Lua script must stay in one hash slot, or these tests fail with CROSSSLOT.
"""

from __future__ import annotations

from tests.bots import conftest as bots_fixtures
from tests.bots import (
    test_cli_external_redis,
    test_discord_context,
    test_service,
    test_terminal,
)
from tests.bots.games import conftest as games_fixtures
from tests.bots.games import test_engine as test_games_engine
from tests.bots.games import test_terminal_games
from tests.scale_out.borrow import borrow

borrow(globals(), bots_fixtures)
borrow(globals(), games_fixtures)
borrow(globals(), test_service)
borrow(globals(), test_cli_external_redis)
borrow(
    globals(),
    test_terminal,
    only=(
        "test_questions_commands_and_end_of_input",
        "test_multiline_messages_end_with_an_empty_line",
        "test_context_commands",
    ),
)
borrow(globals(), test_discord_context)
borrow(globals(), test_games_engine)
borrow(globals(), test_terminal_games)
