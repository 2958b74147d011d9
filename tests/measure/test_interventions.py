"""Interventional checks of explanations (spurlab.measure.interventions) on hand-built models whose
reliance is known: one reads only the cue's pixels, one only the object's. Removing the relied-on
part must flip the prediction (the planted order), the real gradient must score deletion and
preservation 1, an explanation pointing at the other part must score worse, and the same seed must
give the same bytes."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from spurlab.attribution import AttributionSettings
from spurlab.errors import SpurlabError
from spurlab.io.code import code_provenance
from spurlab.io.tables import write_table
from spurlab.measure.interventions import (
    cue_reliance,
    label_rows,
    measure_model,
    method_scores,
    part_shares,
    planted_order,
    planted_truth_holds,
    probabilities,
    ranking_agreement,
    sample_rows,
    score_table,
    top_parts,
)
from spurlab.measure.interventions_figures import summary_figure
from spurlab.measure.interventions_summary import run_interventions_summary
from spurlab.models.factory import Classifier
from spurlab.stats import mean_ci

SIZE, N = 16, 12
CUE = (slice(0, 4), slice(0, 4))  # the cue: a bright patch in the top-left corner


class RegionNet(nn.Module):
    """Two classes from one scalar feature: the mean brightness of the cue patch (`reads="cue"`)
    or the amount of dark pixels anywhere (`reads="object"`: the object is the only dark thing)."""

    num_features = 1

    def __init__(self, reads: str):
        super().__init__()
        self.reads = reads
        self.fc = nn.Linear(1, 2)
        k, t = (20.0, 0.7) if reads == "cue" else (20.0, 0.1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-k], [k]]))
            self.fc.bias.copy_(torch.tensor([k * t, -k * t]))
        region = torch.zeros(1, 1, SIZE, SIZE)
        region[..., CUE[0], CUE[1]] = 1.0 / 16
        self.register_buffer("region", region)

    def forward_features(self, x):
        grey = x.mean(1, keepdim=True)
        if self.reads == "cue":
            return grey * self.region
        return torch.relu(0.3 - grey) * (1.0 / 9)

    def forward_head(self, fm, pre_logits=False):
        phi = fm.sum((2, 3))
        return phi if pre_logits else self.fc(phi)

    def get_classifier(self):
        return self.fc


def region_model(reads: str) -> Classifier:
    return Classifier(
        RegionNet(reads), arch=f"region_{reads}", input_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
    ).eval()


def twins(seed: int = 0) -> dict:
    """Gray images with a dark 6x6 object somewhere below the cue and a bright cue patch, and the
    same images without the object and without the cue."""
    rng = np.random.default_rng(seed)
    bg = 0.5 + rng.uniform(-0.03, 0.03, (N, SIZE, SIZE, 1))
    obj = np.zeros((N, SIZE, SIZE), bool)
    for i in range(N):
        y, x = rng.integers(5, SIZE - 6, 2)
        obj[i, y : y + 6, x : x + 6] = True
    cue = np.zeros_like(obj)
    cue[:, CUE[0], CUE[1]] = True
    full = np.where(obj[..., None], 0.1, bg)
    full = np.where(cue[..., None], 0.95, full)
    to8 = lambda a: np.rint(np.repeat(a, 3, axis=-1) * 255).astype(np.uint8)  # noqa: E731
    return {"original": to8(full), "no_object": to8(np.where(cue[..., None], 0.95, bg)),
            "no_cue": to8(np.where(obj[..., None], 0.1, bg)), "object": obj, "cue": cue}  # fmt: skip


SETTINGS = AttributionSettings(smoothgrad_samples=4, ig_steps=4, batch_size=8)


def family_table(methods=("gradient",), wrong: bool = False) -> pd.DataFrame:
    """Both models on the same twins; with `wrong`, a method 'wrong' whose map is the other part's mask."""
    tw = twins()
    frames = []
    for reads, planted in (("object", "object"), ("cue", "cue")):
        t, maps = measure_model(region_model(reads), tw, list(methods), SETTINGS, "adebayo", seed=0)
        if wrong:
            other = tw["cue"] if reads == "object" else tw["object"]
            probs = {k: probabilities(region_model(reads), tw[k]) for k in ("original", "no_object", "no_cue")}
            t = pd.concat(
                [t, score_table(probs, {"wrong": other.astype(float)}, tw["object"], tw["cue"])], ignore_index=True
            )
        labels = np.ones(N, np.int64)
        frames.append(
            label_rows(t, np.arange(N), labels, family="test", setting="", model=f"reads_{reads}", planted=planted)
        )
    return pd.concat(frames, ignore_index=True)


def test_removing_the_part_a_model_reads_flips_it_and_the_other_part_does_not():
    order = planted_order(family_table())
    assert order["reads_cue"]["flip_remove_cue"] == 1.0 and order["reads_cue"]["flip_remove_object"] == 0.0
    assert order["reads_object"]["flip_remove_object"] == 1.0 and order["reads_object"]["flip_remove_cue"] == 0.0
    assert order["reads_cue"]["planted"] == "cue" and all(r["holds"] for r in order.values())


def contamination_table(flips: dict) -> pd.DataFrame:
    """Per-image rows of a posthoc-like family: {(setting, model, planted): (flips by removing
    the object, flips by removing the cue)}, two methods per image."""
    rows = []
    for (setting, model, planted), (flip_object, flip_cue) in flips.items():
        for i, (fo, fc) in enumerate(zip(flip_object, flip_cue)):
            for method in ("gradient", "smoothgrad"):
                rows.append({"family": "posthoc", "setting": setting, "model": model, "planted": planted, "row": i,
                             "method": method, "flip_object": fo, "flip_cue": fc, "drop_object": 0.5 * fo,
                             "drop_cue": 0.5 * fc})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_contaminated_model_is_judged_against_the_normal_model_on_its_signal():
    # weak: removing its cue flips 1 of 4 (more than the normal model's 0), the object 3 of 4
    df = contamination_table({
        ("weak", "normal", "object"): ([1, 1, 1, 1], [0, 0, 0, 0]),
        ("weak", "spurious_weak", "cue"): ([1, 1, 1, 0], [1, 0, 0, 0]),
        ("strong", "normal", "object"): ([1, 1, 1, 0], [1, 0, 0, 0]),
        ("strong", "spurious_strong", "cue"): ([0, 0, 0, 0], [1, 1, 1, 0]),
    })  # fmt: skip
    reliance = cue_reliance(df)
    assert reliance["weak"] == {"model": "spurious_weak", "reference": "normal", "n": 4, "flip_remove_cue": 0.25,
                                "reference_flip_remove_cue": 0.0, "holds": True,
                                # over the model's 4 rows: one flip of four, and none (docs/methods.md#bootstrap-intervals)
                                "flip_remove_cue_ci": mean_ci([1.0, 0.0, 0.0, 0.0], 0, "flip_remove_cue-weak"),
                                "reference_flip_remove_cue_ci": [0.0, 0.0]}  # fmt: skip
    low, high = reliance["weak"]["flip_remove_cue_ci"]
    assert low <= 0.25 <= high and high <= 1
    assert reliance["strong"]["flip_remove_cue"] == 0.75 and reliance["strong"]["reference_flip_remove_cue"] == 0.25
    order = planted_order(df)
    assert not order["spurious_weak"]["holds"] and order["spurious_strong"]["holds"] and order["normal"]["holds"]
    family = {"models": order, "cue_reliance": reliance}
    assert planted_truth_holds({"posthoc": family})  # spurious_weak is judged by its cue reliance
    reliance["weak"]["holds"] = False
    assert not planted_truth_holds({"posthoc": family})
    assert not planted_truth_holds({"posthoc": {"models": order}})  # without a reference: its own order


def test_gradient_scores_deletion_and_preservation_one_and_the_wrong_region_scores_worse():
    df = family_table(("gradient", "smoothgrad"), wrong=True)
    scores = method_scores(df, tolerance=0.05)
    grad, wrong = scores["methods"]["gradient"], scores["methods"]["wrong"]
    assert grad["deletion"] == 1.0 and grad["preservation"] == 1.0 and grad["agreement"] == 1.0
    assert wrong["deletion"] == 0.0 and wrong["preservation"] == 0.0 and wrong["agreement"] == 0.0
    assert grad["interventional"] > scores["methods"]["smoothgrad"]["interventional"] - 1e-9 > wrong["interventional"]
    base = scores["baselines"]
    assert base["oracle"]["interventional"] == 1.0
    # one model per part: a constant choice is right for half the images
    assert base["always_object"]["deletion"] == 0.5 and base["always_cue"]["preservation"] == 0.5
    # the gradient puts its mass on the part the model reads
    g = df[df["method"] == "gradient"]
    assert (g.loc[g["model"] == "reads_cue", "top_part"] == "cue").all()
    assert (g.loc[g["model"] == "reads_object", "share_object"] > 0.99).all()


def test_maps_without_mass_claim_nothing_and_score_nothing():
    shares = part_shares(np.zeros((2, 4, 4)), np.ones((2, 4, 4), bool), np.zeros((2, 4, 4), bool))
    assert np.isnan(shares).all() and list(top_parts(shares)) == ["none", "none"]
    probs = {
        "original": np.array([[0.9, 0.1]] * 2),
        "no_object": np.array([[0.1, 0.9]] * 2),
        "no_cue": np.array([[0.9, 0.1]] * 2),
    }
    t = score_table(probs, {"blank": np.zeros((2, 4, 4))}, np.ones((2, 4, 4), bool), np.zeros((2, 4, 4), bool))
    assert not t["deletion"].any() and not t["preservation"].any()
    with pytest.raises(SpurlabError, match="differ in shape"):
        part_shares(np.zeros((2, 4, 4)), np.ones((2, 5, 5), bool), np.zeros((2, 5, 5), bool))


def test_same_seed_same_table_bytes(tmp_path):
    paths = []
    for i in range(2):
        df = family_table(("gradient", "smoothgrad"))
        path = tmp_path / f"t{i}.parquet"
        write_table(df, path, {"seed": 0})
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].with_suffix(".csv").read_bytes() == paths[1].with_suffix(".csv").read_bytes()
    assert list(sample_rows(3, 100, 5, "bam")) == list(sample_rows(3, 100, 5, "bam"))
    assert list(sample_rows(3, 100, 5, "bam")) != list(sample_rows(3, 100, 5, "posthoc"))


def test_ranking_agreement():
    same = ranking_agreement({"a": 0.1, "b": 0.5, "c": 0.9}, {"a": 0.2, "b": 0.3, "c": 0.8}, "mcs")
    assert same["spearman"] == 1.0 and same["kendall"] == 1.0 and same["interventional_ranking"] == ["c", "b", "a"]
    rev = ranking_agreement({"a": 0.1, "b": 0.5, "c": 0.9}, {"a": 0.8, "b": 0.3, "c": 0.2}, "mcs")
    assert rev["spearman"] == -1.0 and rev["kendall"] == -1.0
    few = ranking_agreement({"a": 0.1, "b": 0.5}, {"a": 0.2, "b": 0.3}, "mcs")
    assert few["spearman"] is None and few["n"] == 2


def test_summary_ranks_methods_and_refuses_tables_from_other_checkpoints(tmp_path):
    df = family_table(("gradient", "smoothgrad"), wrong=True)
    df = df[df["method"] != "wrong"].assign(family="bam")
    cfg = {
        "interventions": {
            "seed": 0,
            "tie_tolerance": 0.05,
            "methods": {"bam": ["gradient", "smoothgrad"], "posthoc": None},
        }
    }
    table, contrast = tmp_path / "bam.parquet", tmp_path / "contrast.parquet"
    write_table(df, table, {"models": {"reads_object": "a1", "reads_cue": "b1"}, "methods": ["gradient", "smoothgrad"]})
    write_table(pd.DataFrame({"x": [1]}), contrast, {"models": {"reads_object": "a1", "reads_cue": "b1"}})
    bam_summary = tmp_path / "bam_summary.json"
    bam_summary.write_text(json.dumps({"methods": {"gradient": {"mcs": 0.4}, "smoothgrad": {"mcs": 0.1}}}))
    out, fig = tmp_path / "summary.json", tmp_path / "fig.png"
    s = run_interventions_summary(cfg, out, fig, bam=table, bam_contrast=contrast, bam_summary=bam_summary)
    saved = json.loads(out.read_text())
    assert saved.keys() - s.keys() == set(code_provenance())  # write_json names the code that wrote it
    assert {k: saved[k] for k in s} == json.loads(json.dumps(s))
    assert s["planted_order_holds"] and s["families"]["bam"]["methods"]["gradient"]["deletion"] == 1.0
    r = s["ranking_agreement"]["bam"]
    assert r["correlational_scores"] == {"gradient": 0.4, "smoothgrad": 0.1} and r["spearman"] is None  # 2 methods
    assert fig.stat().st_size > 10_000 and str(fig) in s["figures"] and str(table) in s["inputs"]
    summary_figure(s, tmp_path / "again.png")  # the figure is drawn from the summary alone
    assert (tmp_path / "again.png").read_bytes() == fig.read_bytes()
    write_table(pd.DataFrame({"x": [1]}), contrast, {"models": {"reads_object": "other"}})
    with pytest.raises(SpurlabError, match="made from model reads_object"):
        run_interventions_summary(cfg, out, fig, bam=table, bam_contrast=contrast, bam_summary=bam_summary)
    cfg["interventions"]["methods"]["bam"] = ["gradient"]
    with pytest.raises(SpurlabError, match="provenance 'methods'"):
        run_interventions_summary(cfg, out, fig, bam=table, bam_contrast=contrast, bam_summary=bam_summary)


def test_ranking_agreement_intervals_resample_the_methods():
    corr = {m: v for m, v in zip("abcdefgh", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))}
    inter = {m: v for m, v in zip("abcdefgh", (0.15, 0.1, 0.35, 0.3, 0.6, 0.5, 0.9, 0.7))}
    rec = ranking_agreement(corr, inter, "mcs", seed=0)
    for key in ("spearman", "kendall"):
        low, high = rec[f"{key}_ci"]
        assert -1 <= low <= rec[key] <= high <= 1
    assert rec == ranking_agreement(corr, inter, "mcs", seed=0)
    few = ranking_agreement({"a": 0.1, "b": 0.5}, {"a": 0.2, "b": 0.3}, "mcs")
    assert few["spearman_ci"] is None and few["kendall_ci"] is None


def test_interventional_score_interval_resamples_images_with_both_outcomes():
    df = family_table(("gradient", "smoothgrad"), wrong=True)
    scores = method_scores(df, tolerance=0.05, seed=0)
    for method, rec in scores["methods"].items():
        low, high = rec["interventional_ci"]
        assert low - 1e-9 <= rec["interventional"] <= high + 1e-9, method
    # every image scores 1 for the gradient and 0 for the wrong region: nothing to vary
    assert scores["methods"]["gradient"]["interventional_ci"] == [1.0, 1.0]
    assert scores["methods"]["wrong"]["interventional_ci"] == [0.0, 0.0]
    assert method_scores(df, tolerance=0.05)["methods"]["gradient"].get("interventional_ci") is None  # no seed
