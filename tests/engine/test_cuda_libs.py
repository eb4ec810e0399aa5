"""Finding cuBLAS 12 for CTranslate2 on a GPU (engine/cuda_libs.py), tested without a GPU."""

from __future__ import annotations

import _json
import ctypes
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airoboros_bot.engine.cuda_libs import CUBLAS, PIP_CUBLAS_DIR, find_pip_cublas, load_cublas
from airoboros_bot.engine.errors import ModelError
from airoboros_bot.engine.generator import Generator


def _system_has_cublas12() -> bool:
    try:
        ctypes.CDLL(CUBLAS[1])
    except OSError:
        return False
    return True


def _site(root: Path, files: tuple[str, ...] = CUBLAS, make=None) -> Path:
    """A site-packages tree as pip lays out nvidia-cublas-cu12."""
    lib = root / PIP_CUBLAS_DIR
    lib.mkdir(parents=True)
    for name in files:
        (make or (lambda p: p.write_bytes(b"\x7fELF")))(lib / name)
    return root


def test_the_pip_wheels_directory_is_found_below_any_search_path_entry(tmp_path: Path) -> None:
    incomplete = _site(tmp_path / "a", files=CUBLAS[1:])  # cuBLASLt missing: not usable
    empty = tmp_path / "b"
    empty.mkdir()
    good = _site(tmp_path / "c")
    later = _site(tmp_path / "d")
    assert find_pip_cublas(["", str(incomplete), empty, good, later]) == good / PIP_CUBLAS_DIR
    assert find_pip_cublas([incomplete, empty]) is None
    assert find_pip_cublas([]) is None


def test_the_pip_copy_is_loaded_by_path_before_any_system_copy(tmp_path: Path) -> None:
    # Real shared objects stand in for cuBLAS (any .so loads by path); in a child process, so
    # this one keeps its libraries as they are.
    site = _site(tmp_path / "site-packages", make=lambda p: shutil.copy(_json.__file__, p))
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.append({str(site)!r})
        from airoboros_bot.engine.cuda_libs import load_cublas
        print(load_cublas())
        maps = open("/proc/self/maps").read()
        print(all(f"{{sys.argv[1]}}/{{n}}" in maps for n in {CUBLAS!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(site / PIP_CUBLAS_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(site / PIP_CUBLAS_DIR), "True"]


@pytest.mark.skipif(_system_has_cublas12(), reason="this machine has cuBLAS 12")
def test_missing_cublas_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_cublas([tmp_path])
    message = str(info.value)
    assert "\n" not in message
    assert "libcublas.so.12" in message and "pip install 'airoboros-bot[gpu]'" in message


@pytest.mark.skipif(_system_has_cublas12(), reason="this machine has cuBLAS 12")
def test_a_model_on_cuda_without_cublas_fails_before_loading(demo_model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"cuBLAS 12 .*airoboros-bot\[gpu\]"):
        Generator(demo_model_dir, device="cuda")
