"""Finding the CUDA libraries CTranslate2 loads at run time, so a GPU install just works.

The ctranslate2 wheel does not bundle cuBLAS: on its first GPU call it ``dlopen``s
``libcublas.so.12``, which the system's loader finds only on ``LD_LIBRARY_PATH`` or in a system
CUDA 12 install. ``pip install 'airoboros-bot[gpu]'`` installs NVIDIA's own wheel,
``nvidia-cublas-cu12``, into site-packages (``nvidia/cublas/lib/``), where no loader looks; so
before a model is loaded on a GPU, `load_cublas` loads those files by path. A library already
loaded under its soname is what a later ``dlopen("libcublas.so.12")`` returns, so CTranslate2
then uses it, without the user setting ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable
from pathlib import Path

from airoboros_bot.engine.errors import ModelError

CUBLAS = ("libcublasLt.so.12", "libcublas.so.12")
"""The files CTranslate2 4.x needs on CUDA, in load order (cuBLAS uses cuBLASLt)."""
PIP_CUBLAS_DIR = Path("nvidia", "cublas", "lib")
"""Where the ``nvidia-cublas-cu12`` wheel puts them, below a site-packages directory."""
GPU_EXTRA_HINT = (
    "pip install 'airoboros-bot[gpu]' (NVIDIA's cuBLAS 12 wheel, nvidia-cublas-cu12), or put a "
    "CUDA 12 lib64 directory on LD_LIBRARY_PATH"
)

_loaded: list[ctypes.CDLL] = []  # kept referenced for the life of the process


def find_pip_cublas(search_path: Iterable[str | Path] | None = None) -> Path | None:
    """The first ``nvidia/cublas/lib`` directory holding every `CUBLAS` file, looking below each
    entry of `search_path` (default: ``sys.path``, which holds every site-packages directory and
    ``PYTHONPATH``); None if there is none."""
    for entry in sys.path if search_path is None else search_path:
        if not entry:
            continue
        candidate = Path(entry) / PIP_CUBLAS_DIR
        if all((candidate / name).is_file() for name in CUBLAS):
            return candidate
    return None


def load_cublas(search_path: Iterable[str | Path] | None = None) -> str:
    """Make cuBLAS 12 loadable for CTranslate2; return where it comes from.

    The pip wheel's copy (see `find_pip_cublas`) is loaded by path; without one, the system's
    loader must find ``libcublas.so.12`` itself (``LD_LIBRARY_PATH``, ldconfig). Raises
    `ModelError` with one line naming the fix when neither works.
    """
    if not sys.platform.startswith("linux"):
        return "the system (not Linux: CTranslate2's own search)"
    found = find_pip_cublas(search_path)
    names = [str(found / name) for name in CUBLAS] if found else list(CUBLAS)
    try:
        for name in names:
            _loaded.append(ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL))
    except OSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "not found"
        raise ModelError(
            f"CUDA needs cuBLAS 12 ({CUBLAS[1]}), which could not be loaded ({reason}): "
            f"{GPU_EXTRA_HINT}"
        ) from None
    return str(found) if found else "the system's library path"


def gpu_memory_mib(index: int = 0) -> float | None:
    """Total memory of GPU `index` from the CUDA driver (``libcuda``), MiB; None without one."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device = ctypes.c_int()
    total = ctypes.c_size_t()
    if (
        cuda.cuInit(0) != 0
        or cuda.cuDeviceGet(ctypes.byref(device), index) != 0
        or cuda.cuDeviceTotalMem_v2(ctypes.byref(total), device) != 0
    ):
        return None
    return total.value / 2**20
