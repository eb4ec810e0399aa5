"""The README's two set-up commands are real: CI runs the test command exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Two commands on a fresh machine")[1]
    return re.findall(r"```bash\n(.+?)\n```", section.split("\n## ")[0])


def test_readme_has_a_run_command_and_a_test_command() -> None:
    run, test = _commands()
    assert run.endswith("airoboros-bot chat")
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    _, test = _commands()
    ci = ROOT.joinpath(".ci/run").read_text().splitlines()
    assert test in ci


def test_the_console_script_named_in_the_readme_exists() -> None:
    pyproject = ROOT.joinpath("pyproject.toml").read_text()
    assert 'airoboros-bot = "airoboros_bot.bots.cli:main"' in pyproject
