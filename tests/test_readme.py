"""The README's two set-up commands are real: CI runs the test command exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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


# -- links, settings and the tree of the documentation -------------------------------------------
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """A Markdown file without its fenced code blocks."""
    return _FENCE.sub("", path.read_text())


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (``## The real model`` -> the-real-model)."""
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(path), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def _relative_links(path: Path) -> list[str]:
    return [
        link
        for link in _LINK.findall(_prose(path))
        if not re.match(r"[a-z]+:", link) and not link.startswith("<")
    ]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_point_to_existing_files_and_headings(doc: Path) -> None:
    broken = []
    for link in _relative_links(doc):
        target, _, anchor = link.partition("#")
        file = (doc.parent / target).resolve() if target else doc
        if not file.exists() or not file.is_relative_to(ROOT):
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{link}: no such heading")
    assert broken == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("See [games](games.md) and [x](https://x.test).\n```\n[a](nowhere)\n```\n")
    assert _relative_links(doc) == ["games.md"]
    assert "the-real-model" in _anchors(ROOT / "README.md")


def _readme_defaults() -> dict[str, str]:
    """``AIROBOROS_*`` variable -> the default the README's settings tables give it."""
    rows = re.findall(
        r"^\| `(AIROBOROS_[A-Z0-9_]+)` \| `([^`]*)` \|", _prose(ROOT / "README.md"), re.M
    )
    return dict(rows)


def _code_default(variable: str) -> object:
    from airoboros_bot.config.settings import Settings

    section, _, field = variable.removeprefix("AIROBOROS_").lower().partition("_")
    model = Settings.model_fields.get(section)
    if model is None or model.annotation is None or not hasattr(model.annotation, "model_fields"):
        return Settings.model_fields[f"{section}_{field}"].get_default(call_default_factory=True)
    return model.annotation.model_fields[field].get_default(call_default_factory=True)


def test_readme_settings_defaults_are_the_codes() -> None:
    defaults = _readme_defaults()
    assert "AIROBOROS_ENGINE_BATCH_WAIT_MS" in defaults
    wrong = {}
    for variable, shown in defaults.items():
        if "$" in shown:  # derived from another setting
            continue
        actual = _code_default(variable)
        if isinstance(actual, Path):
            ok = Path(shown).expanduser() == actual
        elif isinstance(actual, bool):
            ok = shown == str(actual).lower()
        elif isinstance(actual, int | float):
            ok = float(shown) == actual
        elif isinstance(actual, list):
            ok = shown == json.dumps(actual).replace(", ", ",")
        else:
            ok = shown == str(actual)
        if not ok:
            wrong[variable] = (shown, actual)
    assert wrong == {}


def _tree_paths() -> list[str]:
    """The paths named in the tree of docs/architecture.md (two spaces per level)."""
    text = ROOT.joinpath("docs/architecture.md").read_text().split("## The tree")[1]
    block = re.search(r"```\n(.+?)\n```", text, re.S)
    assert block is not None
    paths: list[str] = []
    parents: list[str] = []
    for line in block.group(1).splitlines():
        indent = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents = parents[:indent]
        paths.append("".join(parents) + name)
        if name.endswith("/"):
            parents.append(name)
    return paths


def test_the_architecture_tree_matches_the_code() -> None:
    paths = _tree_paths()
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []
    packages = {
        p.parent.relative_to(ROOT).as_posix() + "/"
        for folder in ("bots", "engine", "conversations", "config")
        for p in (ROOT / folder).rglob("__init__.py")
    }
    assert packages - set(paths) == set(), "every package is in the tree"
