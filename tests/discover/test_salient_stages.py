"""The Salient ImageNet stages end to end on a tiny set and an untrained toy model: files,
hashes, the D(i, j) selection rule, human and automatic annotation, noise tables, summary."""

import csv
import json
import shutil

import numpy as np
import pytest

from spurlab.data.feature_cache import model_checkpoint_sha256, open_features
from spurlab.discover.annotate import CSV_COLUMNS, run_annotation_tasks
from spurlab.discover.auto_annotate import run_annotations
from spurlab.discover.importance import read_importance
from spurlab.discover.subsets_file import SalientSubsets
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.measure.noise import NoiseSettings, run_noise
from spurlab.measure.salient_summary import SalientSummarySettings, run_salient_summary
from tests.conftest import AUTO_ANNOTATION, salient_stages

AUTO = AUTO_ANNOTATION


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("salient")
    cfg, s = salient_stages(tmp)
    return tmp, cfg, s


def test_object_margin_grows_only_the_annotators_object_region(stages, tmp_path):
    """salient.annotation.auto_object_margin (feature-map cells) grows the object region that
    `hot_object_near` is measured on, by cells of the model's map in pixels (recorded); every other
    statistic, the truth's included, stays on the masks themselves."""
    from spurlab.discover.subsets import SubsetSettings, run_subsets
    from spurlab.discover.subsets_file import STAT_COLUMNS

    tmp, _, _ = stages
    settings = SubsetSettings(
        fraction=0.5, min_images=2, max_images=10, top_images=2, attack="paper", object_margin=0.25
    )
    run_subsets(
        tmp / "model", tmp / "test.h5", tmp / "f.h5", tmp / "imp.h5", tmp_path / "sub.h5", settings, "cpu", False
    )
    with SalientSubsets(tmp / "sub.h5") as exact, SalientSubsets(tmp_path / "sub.h5") as grown:
        a, b = exact.pair_table(require=STAT_COLUMNS), grown.pair_table(require=STAT_COLUMNS)
        assert (
            exact.attrs["object_margin_px"] == 0 and grown.attrs["object_margin_px"] == 4
        )  # a quarter of a cell: 32 px, 2x2 map
    np.testing.assert_array_equal(a["hot_object_near"], a["hot_object"])
    assert (b["hot_object_near"] >= b["hot_object"]).all() and (b["hot_object_near"] > b["hot_object"]).any()
    same = [c for c in STAT_COLUMNS if c != "hot_object_near"]
    np.testing.assert_array_equal(a[same].to_numpy(), b[same].to_numpy())


def test_importance_file_and_table(stages):
    tmp, _, s = stages
    imp = read_importance(tmp / "imp.h5", model_checkpoint_sha256(tmp / "model"))
    assert imp["top"].shape == (len(s.class_names), 3)
    table = read_table(tmp / "imp.parquet")
    assert list(table["rank"][:3]) == [1, 2, 3] and (tmp / "imp.csv").exists()
    with pytest.raises(SpurlabError, match="another checkpoint"):
        read_importance(tmp / "imp.h5", "0" * 64)


def test_subsets_hold_the_top_images_by_activation(stages):
    tmp, _, s = stages
    with SalientSubsets(tmp / "sub.h5") as sub, open_features(tmp / "f.h5") as fc:
        phi, labels = fc["features"], fc["labels"]
        pairs = sub.pair_table()
        imp = read_importance(tmp / "imp.h5")
        assert len(pairs) == imp["top"].size and sorted(set(pairs["rank"])) == [1, 2, 3]
        for p, row in pairs.iterrows():
            i, j = int(row["class"]), int(row["feature"])
            assert imp["top"][i, row["rank"] - 1] == j
            rows = np.flatnonzero(labels == i)
            n = min(len(rows), max(2, min(10, round(0.5 * len(rows)))))
            m = sub.members(p)
            assert len(m["row"]) == n
            assert set(m["row"]) == set(rows[np.argsort(-phi[rows, j], kind="stable")[:n]])
            np.testing.assert_allclose(m["activation"], phi[m["row"], j], rtol=1e-6)
            peaks = m["nam"].reshape(n, -1).max(1)
            assert np.all((np.abs(peaks - 1) < 1e-6) | (peaks == 0))
            assert 0 < row["area_object"] < 1 and 0 <= row["mass_object"] <= 1
            assert sub.attacks(p).shape == (2, 32, 32, 3)
        assert sub.attrs["imageset_sha256"] == s.sha256
        assert sub.planted_cues["disk"] == ["water_bg"]


def test_auto_annotations_table_and_provenance(stages):
    tmp, *_ = stages
    from spurlab.io import sha256_file

    ann = read_table(tmp / "ann.parquet", expect={"subsets_sha256": sha256_file(tmp / "sub.h5")})
    assert set(ann["label"]) <= {"core", "spurious"} and (ann["source"] == "auto").all()
    with pytest.raises(SpurlabError, match="provenance 'subsets_sha256'"):
        read_table(tmp / "ann.parquet", expect={"subsets_sha256": "f" * 64})


def test_human_annotations_from_mturk_csv(stages, tmp_path):
    tmp, _, s = stages
    with SalientSubsets(tmp / "sub.h5") as sub:
        pairs = sub.pair_table()
    answers = tmp_path / "answers.csv"
    with open(answers, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for _, row in pairs.iterrows():
            spurious = row["rank"] == 1  # the workers call every rank-1 feature background
            for worker in range(5):
                answer = "background" if spurious and worker < 4 else "main_object"
                w.writerow([worker, "", row["class"], row["feature"], row["rank"], answer, 4, "why"])
    human = dict(AUTO, source="human", human_csv=str(answers))
    run_annotations(tmp / "sub.h5", tmp_path / "ann.parquet", human, human_csv=answers)
    ann = read_table(tmp_path / "ann.parquet")
    assert (ann.loc[ann["feature_rank"] == 1, "label"] == "spurious").all()
    assert (ann.loc[ann["feature_rank"] == 1, "kind"] == "background").all()
    assert (ann.loc[ann["feature_rank"] > 1, "label"] == "core").all()
    with pytest.raises(SpurlabError, match="human_csv: required"):
        run_annotations(tmp / "sub.h5", tmp_path / "x.parquet", human, human_csv=None)
    assert not (tmp_path / "x.parquet").exists()


def test_task_pages(stages, tmp_path):
    tmp, *_ = stages
    n = run_annotation_tasks(tmp / "sub.h5", tmp / "test.h5", tmp_path / "tasks")
    manifest = (tmp_path / "tasks" / "manifest.csv").read_text().splitlines()
    assert len(manifest) == n + 1 and len(list((tmp_path / "tasks").glob("class*_feature*.html"))) == n


def test_noise_and_summary(stages, tmp_path):
    tmp, cfg, s = stages
    cfg = dict(cfg, salient=dict(cfg["salient"], annotation=AUTO), models={"m": {"arch": "cbr_tiny"}})
    run_noise(tmp / "model", "m", tmp / "test.h5", tmp / "sub.h5", tmp / "ann.parquet", tmp / "masks.h5", tmp_path / "m.parquet",
              NoiseSettings(0, (0, 0.5), (0.3, 0.6)), "cpu", progress=False)  # fmt: skip
    t = read_table(tmp_path / "m.parquet")
    assert set(t["measure"]) <= {"feature", "core_acc", "spurious_acc"}
    assert set(t.loc[t["measure"] == "feature", "sigma"]) == {0, 0.3, 0.5, 0.6}
    assert t["acc"].between(0, 1).all()
    # same seed, same numbers
    run_noise(tmp / "model", "m", tmp / "test.h5", tmp / "sub.h5", tmp / "ann.parquet", tmp / "masks.h5", tmp_path / "m2.parquet",
              NoiseSettings(0, (0, 0.5), (0.3, 0.6)), "cpu", progress=False)  # fmt: skip
    assert read_table(tmp_path / "m2.parquet").equals(t)
    args = (tmp / "test.h5", tmp / "sub.h5", tmp / "ann.parquet", [tmp_path / "m.parquet"], tmp_path / "summary.json",
            tmp_path / "noise.png", tmp_path / "grid.png")  # fmt: skip
    # the planted truth is measured on the discovery model's features of this very image set
    other = tmp_path / "other_model"
    shutil.copytree(tmp / "model", other)
    with open(other / "model.safetensors", "ab") as f:
        f.write(b"\0")  # another checkpoint
    with pytest.raises(SpurlabError, match="checkpoint"):
        run_salient_summary(*args, tmp / "f.h5", other, SalientSummarySettings.from_config(cfg))
    assert not (tmp_path / "summary.json").exists()
    summary = run_salient_summary(*args, tmp / "f.h5", tmp / "model", SalientSummarySettings.from_config(cfg))
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["n_pairs"] == summary["n_pairs"] == len(read_table(tmp / "ann.parquet"))
    for key in ("auto_annotator_precision", "auto_annotator_recall", "planted_cues_recovered",
                "auto_annotator_precision_presence_only", "auto_annotator_recall_presence_only"):  # fmt: skip
        assert on_disk[key] is None or 0 <= on_disk[key] <= 1 or np.isnan(on_disk[key])
    for key in ("auto_annotator_precision", "auto_annotator_recall", "planted_cues_recovered"):
        v, ci = on_disk[key], on_disk[f"{key}_ci"]
        assert ci is None or ci[0] <= v <= ci[1], (key, v, ci)
    auto = on_disk["auto_annotator"]
    assert auto["n_truly_spurious"] == auto["n_cue_present"] + auto["n_cue_switched_off"]
    assert (
        auto["true_positives"]
        >= auto["precision_presence_only"] * (auto["true_positives"] + auto["false_positives"]) - 1e-9
    )
    assert "m" in on_disk["noise"] and (tmp_path / "noise.png").stat().st_size > 1000
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_headline_sigma_is_the_configured_one(stages, tmp_path):
    """salient.noise.headline_sigma picks the sigma of the headline numbers (default 0.25, the
    paper's); one the tables lack falls back to the smallest swept sigma above 0."""
    tmp, cfg, _ = stages
    noise = tmp_path / "n.parquet"
    run_noise(tmp / "model", "m", tmp / "test.h5", tmp / "sub.h5", tmp / "ann.parquet", tmp / "masks.h5", noise,
              NoiseSettings(0, (0, 0.25, 0.5), ()), "cpu", progress=False)  # fmt: skip
    got = {}
    for headline in (None, 0.5, 1.0):
        noise_cfg = dict(cfg["salient"]["noise"], **({} if headline is None else {"headline_sigma": headline}))
        settings = SalientSummarySettings.from_config(
            dict(cfg, salient=dict(cfg["salient"], annotation=AUTO, noise=noise_cfg))
        )
        out = tmp_path / f"summary_{headline}.json"
        got[headline] = run_salient_summary(tmp / "test.h5", tmp / "sub.h5", tmp / "ann.parquet", [noise], out,
                                            tmp_path / "noise.png", tmp_path / "grid.png", tmp / "f.h5", tmp / "model",
                                            settings)["headline_sigma"]  # fmt: skip
    assert got == {None: 0.25, 0.5: 0.5, 1.0: 0.25}


def test_noise_refuses_annotations_of_other_subsets(stages, tmp_path):
    tmp, *_ = stages
    other = tmp_path / "sub.h5"
    other.write_bytes((tmp / "sub.h5").read_bytes() + b"\0")  # any change to the subsets file
    with pytest.raises(SpurlabError, match="subsets_sha256"):
        run_noise(tmp / "model", "m", tmp / "test.h5", other, tmp / "ann.parquet", tmp / "masks.h5", tmp_path / "n.parquet",
                  progress=False)  # fmt: skip
    assert not (tmp_path / "n.parquet").exists()


def test_subsets_file_without_a_statistic_is_refused(stages, tmp_path):
    import h5py

    tmp, *_ = stages
    stale = tmp_path / "sub.h5"
    stale.write_bytes((tmp / "sub.h5").read_bytes())
    with h5py.File(stale, "a") as f:
        del f["pairs/cue_share"]  # as written before the planted truth needed it
    with pytest.raises(SpurlabError, match=r"sub\.h5: dataset pairs/cue_share missing"):
        run_annotations(
            stale, tmp_path / "ann.parquet", {"source": "auto", "auto_criterion": "hot", "auto_threshold": 0.5}
        )
    assert not (tmp_path / "ann.parquet").exists()
    with SalientSubsets(stale) as sub, SalientSubsets(tmp / "sub.h5") as fresh:  # readers needing no statistics
        assert len(sub.pair_table()) == len(fresh.pair_table())


def test_consolidated_masks_file_is_eq2_of_the_annotated_features(stages):
    from spurlab.discover.subsets_file import ConsolidatedMasks
    from spurlab.io import sha256_file

    tmp, *_ = stages
    ann = read_table(tmp / "ann.parquet")
    label_of = {(r.class_index, r.feature_index): r.label for r in ann.itertuples()}
    with (
        SalientSubsets(tmp / "sub.h5") as sub,
        ConsolidatedMasks(tmp / "masks.h5", sha256_file(tmp / "sub.h5"), sha256_file(tmp / "ann.parquet")) as masks,
    ):
        pairs = sub.pair_table()
        for i in sorted(set(pairs["class"])):
            for kind in ("spurious", "core"):
                want = {}
                for p in pairs.index[pairs["class"] == i]:
                    if label_of[(i, pairs.loc[p, "feature"])] != kind:
                        continue
                    m = sub.members(p)
                    for r, nam in zip(m["row"], m["nam"]):
                        want[r] = np.maximum(want.get(r, nam), nam)
                rows, got = masks.get(kind, i)
                assert sorted(want) == list(rows)
                for r, g in zip(rows, got):
                    np.testing.assert_allclose(g, want[r], atol=1 / 255)
    with pytest.raises(SpurlabError, match="other annotations"):
        ConsolidatedMasks(tmp / "masks.h5", sha256_file(tmp / "sub.h5"), "0" * 64)
