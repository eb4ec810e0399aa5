"""Build a model directory whole or not at all: a staging sibling, a rename, a lock file.

Readers never see half a directory: everything is written into a hidden temporary sibling and
renamed into place at the end. `build_once` also holds a lock file (`filelock`) beside the
target, so processes (or threads) racing to build the same directory build it once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def lock_path(target: Path) -> Path:
    """The lock file of `target`: `.NAME.lock` beside it."""
    return target.parent / f".{target.name}.lock"


@contextmanager
def staging_dir(target: Path, purpose: str = "build") -> Iterator[Path]:
    """A new empty hidden directory beside `target` (same file system), removed on exit."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{purpose}-", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(built: Path, target: Path, *, replace: bool) -> None:
    """Rename the finished directory `built` to `target`.

    An existing `target` is replaced only with `replace` (else `FileExistsError`): it is moved
    aside first and put back if the rename fails, then deleted.
    """
    if not target.exists():
        os.rename(built, target)
        return
    if not replace:
        raise FileExistsError(target)
    stale = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, stale)
    try:
        os.rename(built, target)
    except OSError:
        os.rename(stale, target)
        raise
    shutil.rmtree(stale, ignore_errors=True)


def build_once(
    target: Path, build: Callable[[Path], object], *, is_complete: Callable[[Path], bool]
) -> bool:
    """Make `target` complete: build it with ``build(staging_dir)`` unless `is_complete` says so.

    Runs under `target`'s lock file, checking again once the lock is held, so racing builders
    build once; an incomplete or outdated `target` is replaced. Returns whether it was built.
    """
    target = Path(target)
    if is_complete(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path(target)):
        if is_complete(target):  # built by another process meanwhile
            return False
        with staging_dir(target) as staging:
            build(staging)
            move_into_place(staging, target, replace=True)
    return True
