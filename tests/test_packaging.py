"""The built wheel installs one import namespace, ``airoboros_bot``, and nothing generic.

The wheel is built from this checkout and installed (not editable) into a fresh virtual
environment. Its dependencies come from this test run's environment through a path entry, which
does not process that environment's ``.pth`` files, so the editable install of the checkout is not
visible there: only what the wheel installed is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("bots", "engine", "conversations", "config")
BUILD_OUTPUTS = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout without build outputs: setuptools would
    otherwise pack what a stale ``build/lib`` still holds (modules since removed)."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "airoboros-bot"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*BUILD_OUTPUTS))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        check=True, cwd=source, timeout=300,
    )  # fmt: skip
    (found,) = out.glob("airoboros_bot-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel pip-installed; returns its site-packages."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)  # ensurepip: offline
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    deps = [entry for entry in sys.path if entry.endswith("site-packages")]
    (site / "deps.pth").write_text("\n".join(deps) + "\n")
    return site


def _sources(folder: str) -> set[str]:
    return {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*.py")}


def test_wheel_holds_every_module_under_the_namespace_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"airoboros_bot"}
    for folder in FOLDERS:
        packed = {
            n.removeprefix(f"airoboros_bot/{folder}/")
            for n in names
            if n.startswith(f"airoboros_bot/{folder}/") and n.endswith(".py")
        }
        assert packed == _sources(folder), f"{folder}/ and the wheel differ"
    assert "airoboros_bot/bots/games/data/words.txt" in names


def test_installed_wheel_runs_and_puts_nothing_generic_at_top_level(
    installed: Path, tmp_path: Path
) -> None:
    for folder in FOLDERS:
        assert not (installed / folder).exists(), f"a top-level `{folder}` was installed"
    python = installed.parents[2] / "bin" / "python"
    probe = (
        "import importlib.util, airoboros_bot\n"
        f"print([m for m in {FOLDERS!r} if importlib.util.find_spec(m)])\n"
        "print(airoboros_bot.__file__)\n"
    )
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert out[1].startswith(str(installed)), "the package came from the checkout, not the wheel"
    cli = subprocess.run(
        [str(installed.parents[2] / "bin" / "airoboros-bot"), "--help"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "chat" in cli.stdout and "worker" in cli.stdout
    games = subprocess.run(
        [str(python), "-c", "from airoboros_bot.bots.games.words import default_words; "
         "print(len(default_words()))"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert games.returncode == 0, games.stderr
    assert int(games.stdout) > 1000
