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


@pytest.fixture(scope="session", autouse=True)
def _code_cache(tmp_path_factory):
    """The import-graph cache of spurlab.io.code in a folder of the test session, not the user's."""
    old = os.environ.get("SPURLAB_CACHE_DIR")
    os.environ["SPURLAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("spurlab-cache"))
    yield
    if old is None:
        os.environ.pop("SPURLAB_CACHE_DIR")
    else:
        os.environ["SPURLAB_CACHE_DIR"] = old


@pytest.fixture
def tiny_cfg() -> dict:
    return load_yaml("tiny.yaml")


@pytest.fixture
def default_cfg() -> dict:
    return load_yaml("config.yaml")


def render_sets(cfg: dict, names, d: Path) -> dict[str, str]:
    """Render the generated image sets `names` of `cfg` into `d`: {name: path}."""
    from spurlab.data.imagesets import write_imageset
    from spurlab.data.sets import build_plan

    sets = {}
    for name in names:
        plan, attrs = build_plan(cfg, name)
        write_imageset(d / f"{name}.h5", plan.n, plan.chunks(), attrs)
        sets[name] = str(d / f"{name}.h5")
    return sets


@pytest.fixture
def toy_model_and_test_set(tiny_cfg, tmp_path):
    """(directory, model, image set): tiny.yaml's test set and an untrained seeded cbr_tiny saved as
    `model/` beside it."""
    import torch

    from spurlab.data.imagesets import ImageSet
    from spurlab.models import build_classifier, save_model

    render_sets(tiny_cfg, ["test"], tmp_path)
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", 4, 32, {"width": 8}).eval()
    save_model(model, tmp_path / "model", {"name": "m"})
    return tmp_path, model, ImageSet(tmp_path / "test.h5")


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


AUTO_ANNOTATION = {"source": "auto", "human_csv": None, "min_spurious_votes": 3, "auto_criterion": "hot",
                   "auto_threshold": 0.5}  # fmt: skip


def salient_stages(d: Path, top_k: int = 3, max_images: int = 10, top_images: int = 2):
    """The Salient ImageNet files of tiny.yaml's test set and an untrained seeded toy model, in `d`:
    test.h5, model/, f.h5 (features), imp.h5, sub.h5 (D(i, j)), ann.parquet (automatic), masks.h5.
    Returns (config, the image set)."""
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan
    from spurlab.discover.auto_annotate import run_annotations
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.discover.subsets import SubsetSettings, run_subsets
    from spurlab.discover.subsets_file import run_consolidated_masks
    from spurlab.features import cache_features
    from spurlab.models import build_classifier, save_model

    cfg = load_yaml("tiny.yaml")
    plan, attrs = build_plan(cfg, "test")
    write_imageset(d / "test.h5", plan.n, plan.chunks(), attrs)
    s = ImageSet(d / "test.h5")
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", len(s.class_names), 32, {"width": 8}).eval()
    save_model(model, d / "model", {"name": "m", "class_names": s.class_names})
    cache_features(model, "m", model_checkpoint_sha256(d / "model"), s, d / "f.h5", torch.device("cpu"), progress=False)
    run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("label", top_k))
    settings = SubsetSettings(fraction=0.5, min_images=2, max_images=max_images, top_images=top_images, attack="paper")
    run_subsets(d / "model", d / "test.h5", d / "f.h5", d / "imp.h5", d / "sub.h5", settings, "cpu", False)
    run_annotations(d / "sub.h5", d / "ann.parquet", AUTO_ANNOTATION)
    run_consolidated_masks(d / "sub.h5", d / "ann.parquet", d / "masks.h5")
    return cfg, s
