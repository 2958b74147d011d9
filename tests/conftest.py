import copy
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def load_yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture
def tiny_cfg() -> dict:
    return load_yaml("tiny.yaml")


@pytest.fixture
def default_cfg() -> dict:
    return load_yaml("config.yaml")


def small(cfg: dict, **n) -> dict:
    """The same config with fewer images."""
    cfg = copy.deepcopy(cfg)
    cfg["datasets"]["n_images"].update(n)
    return cfg


@pytest.fixture
def venv_env() -> dict:
    """Environment in which `spurlab` and `snakemake` resolve to this interpreter's venv."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def spurlab_exe() -> str:
    exe = Path(sys.executable).parent / "spurlab"
    return str(exe) if exe.exists() else shutil.which("spurlab")
