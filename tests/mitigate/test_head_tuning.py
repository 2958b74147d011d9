"""Low-spuriosity head tuning (docs/methods.md#low-spuriosity-head-tuning): selection oracles, invariants and a synthetic bias."""

import json
from dataclasses import replace

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from spurlab.data.feature_cache import FORMAT, column_sha256, model_checkpoint_sha256
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table, table_provenance, write_table
from spurlab.measure.spuriosity_summary import summarize_tuning
from spurlab.mitigate.head_tuning import (
    METHODS,
    TRIALS_CI,
    TuningSettings,
    evaluate,
    run_head_tuning,
    select_rows,
    tune_head,
    tuning_rows,
)
from spurlab.models import build_classifier, save_model

CLASSES = np.array([0, 1])
# A head that leans on the spurious cue (feature 1) far more than on the core signal (feature 0).
W0 = np.array([[-0.5, -2.0], [0.5, 2.0]], np.float32)
B0 = np.zeros(2, np.float32)
FAST = TuningSettings(k=50, lr=0.05, max_epochs=20, batch_size=32, gap_target=0.05)


def problem(n: int, seed: int, minority: float = 0.1):
    """2 classes of n images: feature 0 = core signal, feature 1 = the class's cue, present (+1
    towards the class) in 90% of its images and reversed in the rest; spuriosity = the cue's
    value towards the image's own class. Returns (features, labels, spuriosity)."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n)
    sign = 2 * y - 1
    cue = np.where(rng.random(2 * n) < 1 - minority, 1.0, -1.0)
    x = np.stack([sign + rng.normal(0, 1, 2 * n), sign * cue + rng.normal(0, 0.1, 2 * n)], 1).astype(np.float32)
    return x, y, sign * x[:, 1].astype(np.float64)


@pytest.fixture(scope="module")
def data():
    return problem(500, 0), problem(200, 1)


def _selection_toy():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], [40, 30, 20])
    scores = rng.normal(size=len(labels))
    scores[labels == 2] = np.nan  # class 2 is not biased
    correct = rng.random(len(labels)) < 0.8
    return scores, labels, correct


def test_low_spuriosity_selects_exactly_the_k_lowest_per_class():
    scores, labels, correct = _selection_toy()
    rows = select_rows("low_spuriosity", scores, labels, correct, [0, 1], 7, np.random.default_rng(0))
    assert len(rows) == 14 and set(labels[rows]) == {0, 1}
    for c in (0, 1):
        members = np.flatnonzero(labels == c)
        lowest = members[np.argsort(scores[members])[:7]]
        assert set(rows[labels[rows] == c]) == set(lowest)


def test_random_selects_k_distinct_rows_within_each_class():
    scores, labels, correct = _selection_toy()
    rows = select_rows("random", scores, labels, correct, [0, 1], 7, np.random.default_rng(0))
    assert len(np.unique(rows)) == 14
    assert (np.bincount(labels[rows], minlength=3) == [7, 7, 0]).all()
    other = select_rows("random", scores, labels, correct, [0, 1], 7, np.random.default_rng(1))
    assert not np.array_equal(rows, other)
    big = select_rows("random", scores, labels, correct, [1], 100, np.random.default_rng(0))
    np.testing.assert_array_equal(big, np.flatnonzero(labels == 1))  # capped at the class size


def test_misclassified_takes_all_errors_then_fills_and_caps_at_k():
    scores, labels, correct = _selection_toy()
    wrong0 = np.flatnonzero((labels == 0) & ~correct)
    assert 0 < len(wrong0) < 15
    rows = select_rows("misclassified", scores, labels, correct, [0], 15, np.random.default_rng(0))
    assert len(rows) == 15 and (labels[rows] == 0).all() and len(np.unique(rows)) == 15
    assert set(wrong0) <= set(rows)  # every error, the rest correctly classified
    assert correct[rows].sum() == 15 - len(wrong0)
    few = select_rows("misclassified", scores, labels, correct, [0], 3, np.random.default_rng(0))
    assert len(few) == 3 and not correct[few].any()  # more errors than k: k of them
    with pytest.raises(SpurlabError, match="unknown method"):
        select_rows("worst", scores, labels, correct, [0], 3, np.random.default_rng(0))


def test_lr_zero_changes_nothing(data):
    (x, y, s), val = data
    rows = select_rows("low_spuriosity", s, y, np.ones(len(y), bool), CLASSES, 50, np.random.default_rng(0))
    W2, b2, hist = tune_head(W0, B0, x, y, rows, *val, CLASSES, replace(FAST, lr=0.0, max_epochs=3), seed=0)
    assert W2.tobytes() == W0.tobytes() and b2.tobytes() == B0.tobytes() and len(hist) == 3
    assert evaluate(W2, b2, *val, CLASSES) == evaluate(W0, B0, *val, CLASSES)


def test_same_seed_same_weights_other_seed_differs(data):
    (x, y, s), val = data
    rows = select_rows("random", s, y, np.ones(len(y), bool), CLASSES, 50, np.random.default_rng(0))
    st = replace(FAST, gap_target=-1.0, max_epochs=3)
    a = tune_head(W0, B0, x, y, rows, *val, CLASSES, st, seed=5)
    b = tune_head(W0, B0, x, y, rows, *val, CLASSES, st, seed=5)
    c = tune_head(W0, B0, x, y, rows, *val, CLASSES, st, seed=6)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
    assert a[0].tobytes() != c[0].tobytes()


def test_low_spuriosity_tuning_closes_the_gap_random_does_not(data):
    (x, y, s), val = data
    before = evaluate(W0, B0, *val, CLASSES)
    assert before["gap"] > 0.8 and before["acc_low"] < 0.2  # the head fails wherever the cue is reversed
    correct = (x @ W0.T + B0).argmax(1) == y
    after = {}
    for method in ("low_spuriosity", "random"):
        rows = select_rows(method, s, y, correct, CLASSES, FAST.k, np.random.default_rng(0))
        W2, b2, _ = tune_head(W0, B0, x, y, rows, *val, CLASSES, FAST, seed=0)
        after[method] = evaluate(W2, b2, *val, CLASSES)
    assert after["low_spuriosity"]["gap"] < 0.05 and after["low_spuriosity"]["acc_low"] > 0.6
    assert after["random"]["gap"] > after["low_spuriosity"]["gap"] + 0.3


def test_early_stopping_ends_at_the_first_epoch_below_target(data):
    (x, y, s), val = data
    rows = select_rows("low_spuriosity", s, y, np.ones(len(y), bool), CLASSES, 50, np.random.default_rng(0))
    slow = replace(FAST, lr=0.01, max_epochs=50)
    _, _, hist = tune_head(W0, B0, x, y, rows, *val, CLASSES, slow, seed=0)
    gaps = [h["val_gap"] for h in hist]
    assert 1 < len(hist) < 50 and [h["epoch"] for h in hist] == list(range(1, len(hist) + 1))
    assert gaps[-1] < 0.05 and min(gaps[:-1]) >= 0.05
    _, _, full = tune_head(W0, B0, x, y, rows, *val, CLASSES, replace(slow, gap_target=-2), seed=0)
    assert len(full) == 50 and full[: len(hist)] == hist  # without a reachable target it runs to the cap


# -- the stage, on hand-made feature caches of a real (tiny) model directory -----------------------


def _write_cache(path, model_dir, x, y, W, b, prefix):
    feats = np.concatenate([x, np.random.default_rng(9).normal(size=(len(x), W.shape[1] - 2))], 1).astype(np.float32)
    logits = feats @ W.T + b
    with h5py.File(path, "w") as f:
        f["features"], f["logits"], f["preds"], f["labels"] = feats, logits, logits.argmax(1), y.astype(np.int64)
        f["index"] = ids = np.array([f"{prefix}-{i:07d}".encode() for i in range(len(y))], dtype="S32")
        f.attrs.update(format=FORMAT, model="m", arch="cbr_tiny", checkpoint_sha256=model_checkpoint_sha256(model_dir),
                       imageset=prefix, imageset_sha256="x", class_names=json.dumps(["a", "b"]), n_rows=len(y),
                       num_features=W.shape[1], num_classes=2, feature_dtype="float32", code_version="0",
                       labels_sha256=column_sha256(y), index_sha256=column_sha256(ids))  # fmt: skip


@pytest.fixture
def stage(tmp_path, data):
    model = build_classifier("cbr_tiny", 2, 16, {"width": 4})
    W = np.zeros((2, model.num_features), np.float32)
    W[:, :2] = W0
    with torch.no_grad():
        model.net.fc.weight.copy_(torch.from_numpy(W))
        model.net.fc.bias.zero_()
    save_model(model, tmp_path / "model", {"name": "m"})
    sets = {"train": data[0], "val": data[1], "test": problem(200, 2)}
    frames = []
    for name, (x, y, s) in sets.items():
        _write_cache(tmp_path / f"{name}.h5", tmp_path / "model", x, y, W, B0, name)
        ids = [f"{name}-{i:07d}" for i in range(len(y))]
        frames.append(pd.DataFrame({"set": name, "row": np.arange(len(y)), "id": ids, "class_index": y,
                                    "class_name": np.array(["a", "b"])[y], "spuriosity": s, "rank": 0,
                                    "cue_present": np.nan}))  # fmt: skip
    write_table(pd.concat(frames, ignore_index=True), tmp_path / "rankings.parquet", {"annotations_sha256": "x"})
    return tmp_path, W


def test_stage_writes_a_tidy_table_with_provenance(stage):
    tmp, _ = stage
    st = replace(FAST, trials=2)
    summary = run_head_tuning(tmp / "model", "m", tmp / "train.h5", tmp / "val.h5", tmp / "test.h5",
                              tmp / "rankings.parquet", tmp / "out.parquet", st)  # fmt: skip
    table = read_table(tmp / "out.parquet")
    assert len(table) == len(METHODS) * 2 * 2 * 2  # method x trial x split x when
    assert set(table["split"]) == {"val", "test"} and (table["n_train_rows"] == 100).all()
    before = table[table["when"] == "before"]
    assert before.groupby("split")["gap"].nunique().eq(1).all() and (before["epochs"] == 0).all()
    assert set(summary) == set(METHODS)
    low, rnd = summary["low_spuriosity"], summary["random"]
    assert low["gap_before"] > 0.8 and low["gap_after"] < 0.05 and low["gap_after"] < rnd["gap_after"] - 0.3
    assert low["test_gap_after"] < 0.3 and len(low["gap_after_trials"]) == 2
    prov = table_provenance(tmp / "out.parquet")
    assert prov["checkpoint_sha256"] == model_checkpoint_sha256(tmp / "model")
    assert set(prov["features_sha256"]) == {"train", "val", "test"} and prov["settings"]["trials"] == 2
    assert (tmp / "out.csv").is_file()


def test_stage_intervals_resample_the_images_within_the_trials(stage):
    tmp, _ = stage
    st = replace(FAST, trials=2)
    args = (tmp / "model", "m", tmp / "train.h5", tmp / "val.h5", tmp / "test.h5", tmp / "rankings.parquet")
    run_head_tuning(*args[:5], args[5], tmp / "a.parquet", st)
    run_head_tuning(*args[:5], args[5], tmp / "b.parquet", st)
    table = read_table(tmp / "a.parquet")
    assert table.equals(read_table(tmp / "b.parquet"))  # same seed, same numbers
    # the interval of a mean over trials is the same on each of its trials' rows
    assert (table.groupby(["method", "split", "when"])[TRIALS_CI].nunique() == 1).all().all()
    s = summarize_tuning(table)
    for method, e in s.items():
        for c in ("gap", "acc"):
            for w in ("before", "after"):
                low, high = e[f"{c}_{w}_ci"]
                assert low <= e[f"{c}_{w}"] + 1e-9 and e[f"{c}_{w}"] <= high + 1e-9, (method, c, w)
        # before tuning the two trials are the same head: the interval still has width (the images)
        assert e["acc_before_ci"][1] - e["acc_before_ci"][0] > 0.01  # (the gap before is 1 on every image pair)
    before = table[table["when"] == "before"].groupby("split")[TRIALS_CI].nunique()
    assert (before == 1).all().all()  # one head before tuning: one interval for every method


def test_stage_rejects_a_cache_from_another_head(stage, data):
    tmp, W = stage
    x, y, _ = data[1]
    _write_cache(tmp / "val.h5", tmp / "model", x, y, -W, B0, "val")  # logits of another head, same hash
    with pytest.raises(SpurlabError, match="another model"):
        run_head_tuning(tmp / "model", "m", tmp / "train.h5", tmp / "val.h5", None, tmp / "rankings.parquet",
                        tmp / "out.parquet", FAST)  # fmt: skip


def test_unbiased_classes_get_the_same_random_rows_for_every_method():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], 50)
    scores = np.where(labels == 2, np.nan, rng.normal(size=150))  # class 2 has no spurious feature
    correct = rng.random(150) > 0.3
    picks = tuning_rows(scores, labels, correct, replace(FAST, k=10, trials=2))
    extra = {t: set(np.flatnonzero(labels == 2)) & set(picks[("random", t)]) for t in (0, 1)}
    for (_method, t), rows in picks.items():
        assert (labels[rows] == 2).sum() == 10 and set(rows[labels[rows] == 2]) == extra[t]
        assert (labels[rows] == 0).sum() == 10 and (labels[rows] == 1).sum() == 10
    paper = tuning_rows(scores, labels, correct, replace(FAST, k=10, trials=1, other_classes="none"))
    assert all((labels[rows] != 2).all() for rows in paper.values())
