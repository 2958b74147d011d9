"""The BAM and post hoc stages on tiny sets, shared by their modules' tests (test_bam_*.py,
test_interventions_bam.py; test_signal_flip_score.py, test_attribution_similarity.py,
test_tcav_tests.py, test_influence.py, test_explanation_study.py, test_posthoc_summary.py,
test_interventions_posthoc.py): the sets and models are made once per session, each table once,
by the first test that needs it, in process (no Snakemake)."""

import copy

import pytest
import torch

from spurlab.config import (
    bam_attribution_parts,
    bam_model_sets,
    bam_models,
    contamination_signals,
    posthoc_model_sets,
    posthoc_models,
)
from spurlab.data.imagesets import ImageSet
from spurlab.measure.attribution_similarity import run_signal
from spurlab.measure.bam_attributions import run_part
from spurlab.measure.bam_tcav import TCAV_SETS, run_tcav
from spurlab.measure.bam_verification import run_verification
from spurlab.measure.explanation_study import build_study
from spurlab.measure.influence import run_influence
from spurlab.measure.signal_flip_score import run_scores
from spurlab.measure.tcav_tests import run_tcav as run_posthoc_tcav
from spurlab.models import build_classifier, save_model
from spurlab.train import train_model
from tests.conftest import load_yaml, render_sets


@pytest.fixture(scope="session")
def bam_stage(tmp_path_factory):
    """(cfg, directory, sets, model dirs): the BAM sets and seeded untrained models."""
    d = tmp_path_factory.mktemp("bam")
    cfg = copy.deepcopy(load_yaml("tiny.yaml"))
    b = cfg["bam"]["benchmark"]
    b.update(methods=["gradient", "smoothgrad", "gradcam"], max_images=6, trial_size=3,
             attribution=dict(b["attribution"], smoothgrad_samples=2, batch_size=8))  # fmt: skip
    b["iir"].update(steps=3)
    b["tcav"].update(concept_images=6, random_sets=2, layers=["blocks.4"])
    names = {s for m in bam_models(cfg) for s in bam_model_sets(m)[:2]} | {"bam_0s_test", "bam_og_test", *TCAV_SETS}
    sets = render_sets(cfg, sorted(names), d)
    dirs = {}
    for i, m in enumerate(bam_models(cfg)):
        with ImageSet(sets[bam_model_sets(m)[0]]) as s:
            scenes = bam_model_sets(m)[2] or m.startswith("f_k")
            n = len(s.attrs["scene_class_names"]) if scenes else len(s.class_names)
        torch.manual_seed(i)
        save_model(build_classifier("cbr_tiny", n, 32, {"width": 4}).eval(), d / m,
                   {"name": m, "label_column": bam_model_sets(m)[2]})  # fmt: skip
        dirs[m] = str(d / m)
    return cfg, d, sets, dirs


@pytest.fixture(scope="session")
def bam_verification(bam_stage):
    cfg, d, sets, dirs = bam_stage
    return run_verification(cfg, dirs, sets, d / "verification.parquet")


@pytest.fixture(scope="session")
def bam_parts(bam_stage):
    """{part: table path} of every attribution part."""
    cfg, d, sets, dirs = bam_stage
    out = {}
    for part in bam_attribution_parts(cfg):
        run_part(cfg, part, dirs, sets, d / f"{part}.parquet", progress=False)
        out[part] = d / f"{part}.parquet"
    return out


@pytest.fixture(scope="session")
def bam_tcav(bam_stage):
    cfg, d, sets, dirs = bam_stage
    return run_tcav(cfg, dirs, sets, d / "tcav.parquet", d / "cache", progress=False)


@pytest.fixture(scope="session")
def posthoc_stage(tmp_path_factory):
    """(cfg, directory, sets, model dirs): the contamination sets and the posthoc models, trained
    one epoch by `spurlab.train.train_model` (their checkpoints kept for TracIn)."""
    d = tmp_path_factory.mktemp("posthoc")
    cfg = copy.deepcopy(load_yaml("tiny.yaml"))
    p = cfg["posthoc"]
    p.update(n_images=4, panel_images=1, train={"epochs": 1})
    p["attribution"].update(smoothgrad_samples=2, ig_steps=2, batch_size=8)
    p["tcav"].update(concept_images=4, random_sets=2, shapes=["disk"], scenes=["grass"], colours=[0])
    p["influence"].update(test_images=4, top_k=3)
    p["study"].update(participants_per_group=3, stimulus_images=1)
    names = {posthoc_model_sets(cfg, m)[0] for m in posthoc_models(cfg)} | {"contam_clean_test"}
    names |= {f"contam_{s}_test" for s in contamination_signals(cfg)}
    sets = render_sets(cfg, sorted(names), d)
    dirs = {}
    for m in posthoc_models(cfg):
        tr, va = posthoc_model_sets(cfg, m)
        train_model(cfg, m, sets[tr], sets[va], d / "models" / m, threads=1, progress=False)
        dirs[m] = str(d / "models" / m)
    return cfg, d, sets, dirs


@pytest.fixture(scope="session")
def posthoc_scores(posthoc_stage):
    cfg, d, sets, dirs = posthoc_stage
    return run_scores(cfg, dirs, sets, d / "scores.parquet")


@pytest.fixture(scope="session")
def posthoc_attributions(posthoc_stage):
    """{signal: table path}; each signal's panels beside them (panel_<signal>.png / .svg)."""
    cfg, d, sets, dirs = posthoc_stage
    out = {}
    for s in contamination_signals(cfg):
        run_signal(cfg, s, dirs, sets, d / f"attr_{s}.parquet", d / f"panel_{s}.png", threads=1, progress=False,
                   svg=d / f"panel_{s}.svg")  # fmt: skip
        out[s] = str(d / f"attr_{s}.parquet")
    return out


@pytest.fixture(scope="session")
def posthoc_tcav(posthoc_stage):
    cfg, d, sets, dirs = posthoc_stage
    return run_posthoc_tcav(cfg, dirs, sets, d / "tcav.parquet", d / "cache", threads=1, progress=False)


@pytest.fixture(scope="session")
def posthoc_influence(posthoc_stage):
    cfg, d, sets, dirs = posthoc_stage
    return run_influence(cfg, dirs, sets, d / "influence.parquet", threads=1, progress=False)


@pytest.fixture(scope="session")
def posthoc_study(posthoc_stage, posthoc_tcav, posthoc_influence):
    """The study kit's directory."""
    cfg, d, sets, dirs = posthoc_stage
    build_study(cfg, dirs, sets, d / "tcav.parquet", d / "influence.parquet", d / "study")
    return d / "study"
