"""The GPU install: the `gpu` extra and the compose worker image (parsed; no Docker engine here)."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def _shell_word(word: str, **env: str) -> str:
    """What /bin/sh (as RUN uses it) makes of `word` with `env` set."""
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return subprocess.run(
        ["sh", "-c", f'{assigns}; printf %s "{word}"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_gpu_extra_is_nvidias_cublas_12_wheel() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = project["optional-dependencies"]["gpu"]
    assert any(re.fullmatch(r"nvidia-cublas-cu12\b.*<13", dep) for dep in gpu), gpu


def test_the_image_installs_the_gpu_extra_unless_told_not_to() -> None:
    steps = _dockerfile()
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    assert args["EXTRAS"] == "gpu"
    (install,) = [a for i, a in steps if i == "RUN" and a.startswith("pip install")]
    target = shlex.split(install)[-1]
    assert _shell_word(target, EXTRAS="gpu") == ".[gpu]"
    assert _shell_word(target, EXTRAS="") == "."
    env = " ".join(a for i, a in steps if i == "ENV")
    assert re.search(r"NVIDIA_DRIVER_CAPABILITIES=\S*compute", env), "CUDA needs compute"
    # Every folder the wheel maps into the namespace is copied before `pip install .`.
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    copied = {a.split()[0] for i, a in steps if i == "COPY"}
    assert set(package_dirs.values()) <= copied


def test_compose_builds_the_worker_with_cublas_on_a_reserved_gpu() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    worker = services["worker"]
    assert worker["build"]["args"]["EXTRAS"] == "gpu"
    assert worker["environment"]["AIROBOROS_ENGINE_DEVICE"] == "cuda"
    (gpu,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    for bot in ("discord", "slack"):
        assert services[bot]["build"]["args"]["EXTRAS"] == ""
        assert services[bot]["image"] != worker["image"]
