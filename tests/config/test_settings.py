"""Coupled settings are checked together at start, with one line naming every variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airoboros_bot.config.settings import EngineSettings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"AIROBOROS_ENGINE_CLAIM_IDLE_MS": "1000"},  # the default heartbeat is 2 s
            ("AIROBOROS_ENGINE_CLAIM_IDLE_MS", "AIROBOROS_ENGINE_HEARTBEAT_S"),
        ),
        (
            {"AIROBOROS_ENGINE_HEARTBEAT_S": "11", "AIROBOROS_ENGINE_HEALTH_TTL_S": "30"},
            ("AIROBOROS_ENGINE_CLAIM_IDLE_MS", "AIROBOROS_ENGINE_HEARTBEAT_S"),
        ),
        (
            {"AIROBOROS_ENGINE_HEALTH_TTL_S": "3"},
            ("AIROBOROS_ENGINE_HEALTH_TTL_S", "AIROBOROS_ENGINE_HEARTBEAT_S"),
        ),
        (
            {"AIROBOROS_ENGINE_BATCH_WAIT_MS": "80"},
            ("AIROBOROS_ENGINE_BATCH_WAIT_MAX_MS", "AIROBOROS_ENGINE_BATCH_WAIT_MS"),
        ),
        (
            {"AIROBOROS_ENGINE_FIRST_CHUNK_TIMEOUT_S": "20"},
            ("AIROBOROS_ENGINE_FIRST_CHUNK_TIMEOUT_S", "AIROBOROS_ENGINE_CLAIM_IDLE_MS"),
        ),
    ],
)
def test_coupled_settings_that_would_fail_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: tuple[str, ...]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    assert not message.startswith("Value error")


def test_a_claim_timeout_of_a_few_heartbeats_is_accepted() -> None:
    settings = EngineSettings(claim_idle_ms=1200, heartbeat_s=0.3)
    assert settings.claim_idle_ms == 1200


def test_the_worker_refuses_to_start_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIROBOROS_")}
    env.update(AIROBOROS_ENGINE_CLAIM_IDLE_MS="1000", AIROBOROS_ENGINE_HEARTBEAT_S="2")
    result = subprocess.run(
        [sys.executable, "-m", "airoboros_bot", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("airoboros-bot: AIROBOROS_ENGINE_CLAIM_IDLE_MS (1000) must be")
