"""Group robustness on cached features: DFR, JTT and the mitigation table (docs/methods.md#group-robustness-and-last-layer-retraining).

Per audited model, five heads over the same frozen penultimate features, each scored by its mean
accuracy and spurious gap on the test set and by its worst-group and mean-group accuracy on the
group-balanced counterfactual twins (groups: (class, cue on/off), `spurlab.measure.groups`):

- ``erm``: the model's own head, as trained (its cached logits);
- ``dfr``: Deep Feature Reweighting (Kirichenko et al. 2023, DFR^Val_Tr): a new linear head fit by
  L1 logistic regression (liblinear, one-vs-rest, as the reference code) on standardised features
  of group-balanced subsamples of the validation set. C is chosen from `DFRSettings.C` by the
  worst-group accuracy on one half of the validation set of heads fit on a balanced subsample of
  the other half (averaged over `tune_splits` seeded splits); the final head averages the weights
  of `retrains` heads fit with that C on balanced subsamples of the whole validation set;
- ``jtt``: Just Train Twice (Liu et al. 2021) on cached features: the training images the ERM head
  misclassifies get weight lambda_up, the others 1, and a new head (L2 logistic regression on
  standardised features) is fit on the weighted training set; lambda_up is chosen from
  `JTTSettings.lambda_up` by validation worst-group accuracy, as the paper tunes it. Deviation:
  the paper retrains the whole network, we retrain the head only;
- ``low_spuriosity``: Moayeri et al.'s low-spuriosity head tuning, re-run with the head-tuning
  stage's functions, rows and seeds (every trial), and checked against that stage's table;
- ``spufix``: Neuhaus et al.'s SpuFix, as stage `npca_spufix` applies it.

Every random choice is drawn from generators seeded by (seed, purpose, index); liblinear gets the
seed too, so the same inputs and settings give the same bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, table_provenance, write_table
from ..measure.groups import (
    GROUP_COLUMNS,
    counterfactual_cue_on,
    group_accuracy,
    group_ids,
    own_cue_flags,
    worst_group,
    worst_group_accuracy,
)
from ..measure.spuriosity import check_set_ids, gap_cis, read_rankings, scores_for_set, spurious_gaps, trial_gap_cis
from .spufix import model_spufix

METHODS = ("erm", "dfr", "jtt", "low_spuriosity", "spufix")
DFR_C = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # Kirichenko et al.'s grid
MAX_ITER = 1000
# What each method needs beyond the class labels of the training set (docs/methods.md#group-robustness-and-last-layer-retraining)
SUPERVISION = {
    "erm": "class labels only",
    "dfr": "group labels of the validation set (balanced subsamples; C chosen by worst-group accuracy)",
    "jtt": "group labels of the validation set (lambda_up chosen by worst-group accuracy)",
    "low_spuriosity": "annotated spurious neural features (spuriosity rankings); no group label",
    "spufix": "annotated harmful neural-PCA components; no group label",
}
TABLE_COLUMNS = ["model", "method", "trial", "labels_needed", "selected", "acc", "gap", "acc_high", "acc_low",
                 "worst_group_acc", "worst_group", "mean_group_acc", "n_groups",
                 "acc_ci_low", "acc_ci_high", "gap_ci_low", "gap_ci_high",
                 "acc_trials_ci_low", "acc_trials_ci_high", "gap_trials_ci_low", "gap_trials_ci_high"]  # fmt: skip


@dataclass
class DFRSettings:
    C: tuple = DFR_C
    tune_splits: int = 5
    retrains: int = 20
    seed: int = 0

    def __post_init__(self):
        self.C = tuple(float(c) for c in self.C)
        if not self.C or min(self.C) <= 0 or self.tune_splits < 1 or self.retrains < 1:
            raise SpurlabError("DFR: C must be a non-empty list of numbers > 0, tune_splits and retrains >= 1")


@dataclass
class JTTSettings:
    lambda_up: tuple = (20.0, 50.0, 100.0)
    C: float = 1.0

    def __post_init__(self):
        self.lambda_up = tuple(float(x) for x in self.lambda_up)
        if not self.lambda_up or min(self.lambda_up) < 1 or self.C <= 0:
            raise SpurlabError("JTT: lambda_up must be a non-empty list of numbers >= 1 and C > 0")


def labels_needed(method: str, jtt: JTTSettings) -> str:
    """'group labels' or 'none' (beyond class labels): JTT needs them only to choose lambda_up."""
    if method == "dfr" or (method == "jtt" and len(jtt.lambda_up) > 1):
        return "group labels"
    return "none"


# ------------------------------------------------------------------------------ linear heads


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per feature; a constant feature gets scale 1."""
    x = np.asarray(x, np.float64)
    sd = x.std(axis=0)
    return x.mean(axis=0), np.where(sd > 0, sd, 1.0)


def raw_head(
    coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A head on standardised features as (W, b) on the raw features: W = coef / scale, b = intercept - W mean."""
    W = np.asarray(coef, np.float64) / scale
    return W, np.asarray(intercept, np.float64) - W @ mean


def head_logits(W: np.ndarray, b: np.ndarray, feats: np.ndarray) -> np.ndarray:
    return np.asarray(feats, np.float64) @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)


def half_split(groups: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of every group (id >= 0) split in two halves, the first taking the odd one: (a, b) sorted."""
    a, b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for g in np.unique(groups[groups >= 0]):
        members = rng.permutation(np.flatnonzero(groups == g))
        k = (len(members) + 1) // 2
        a.append(members[:k])
        b.append(members[k:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def balanced_subsample(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows: as many images of every non-empty group as the smallest group has, drawn without replacement."""
    ids = np.unique(groups[groups >= 0])
    if not len(ids):
        raise SpurlabError("group-balanced subsample: no labelled image")
    members = [np.flatnonzero(groups == g) for g in ids]
    n = min(len(m) for m in members)
    return np.sort(np.concatenate([rng.choice(m, n, replace=False) for m in members]))


def _l1_logistic(C: float, seed: int):
    import sklearn
    from sklearn.linear_model import LogisticRegression

    version = tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())
    l1 = {"l1_ratio": 1.0} if version >= (1, 8) else {"penalty": "l1"}  # `penalty` is deprecated from 1.8
    return LogisticRegression(C=C, solver="liblinear", random_state=seed, max_iter=MAX_ITER, **l1)


def fit_l1_ovr(x: np.ndarray, y: np.ndarray, C: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest L1 logistic regression (liblinear, as DFR's reference code): (coef (K, D), intercept (K,))."""
    coef, intercept = np.zeros((n_classes, x.shape[1])), np.zeros(n_classes)
    for k in range(n_classes):
        target = (y == k).astype(np.int64)
        if not 0 < target.sum() < len(target):
            raise SpurlabError(f"DFR: class {k} has {int(target.sum())} of the {len(target)} images of a group-balanced "
                               "subsample; every class needs images, and other classes too")  # fmt: skip
        clf = _l1_logistic(C, seed).fit(x, target)
        coef[k], intercept[k] = clf.coef_[0], clf.intercept_[0]
    return coef, intercept


def dfr_head(feats: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_classes: int,
             settings: DFRSettings) -> tuple[np.ndarray, np.ndarray, dict]:  # fmt: skip
    """DFR on a validation set with group ids `groups` (see module): (W, b) on raw features and
    {"C", "val_worst_group_by_C", "n_balanced"}."""
    s, labels, groups = settings, np.asarray(labels), np.asarray(groups)
    mean, scale = standardiser(feats)
    x = (np.asarray(feats, np.float64) - mean) / scale
    tuned = {C: [] for C in s.C}
    for split in range(s.tune_splits):
        rng = np.random.default_rng([s.seed, 1, split])
        a, b = half_split(groups, rng)
        if not len(b):
            raise SpurlabError("DFR: every group of the validation set has one image; nothing to choose C on")
        rows = a[balanced_subsample(groups[a], rng)]
        for C in s.C:
            coef, intercept = fit_l1_ovr(x[rows], labels[rows], C, n_classes, s.seed)
            correct = (x[b] @ coef.T + intercept).argmax(1) == labels[b]
            tuned[C].append(worst_group_accuracy(correct, groups[b]))
    means = [float(np.mean(tuned[C])) for C in s.C]
    best = s.C[int(np.argmax(means))]  # ties: the first in the list
    coefs, intercepts = [], []
    for r in range(s.retrains):
        rows = balanced_subsample(groups, np.random.default_rng([s.seed, 2, r]))
        coef, intercept = fit_l1_ovr(x[rows], labels[rows], best, n_classes, s.seed + r)
        coefs.append(coef)
        intercepts.append(intercept)
    W, b = raw_head(np.mean(coefs, axis=0), np.mean(intercepts, axis=0), mean, scale)
    return W, b, {"C": best, "val_worst_group_by_C": dict(zip(map(str, s.C), means)), "n_balanced": len(rows)}


def jtt_weights(erm_correct: np.ndarray, lambda_up: float) -> np.ndarray:
    """JTT's error set upweighted: lambda_up where the ERM head is wrong, 1 where it is right."""
    return np.where(np.asarray(erm_correct, bool), 1.0, float(lambda_up))


def fit_weighted_head(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, C: float, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial L2 logistic head (lbfgs) on standardised features with sample weights, as (W, b) on raw features."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardiser(x)
    clf = LogisticRegression(C=C, max_iter=MAX_ITER).fit(
        (np.asarray(x, np.float64) - mean) / scale, y, sample_weight=weights
    )
    classes = clf.classes_.astype(np.int64)
    if len(classes) != n_classes:
        missing = sorted(set(range(n_classes)) - set(classes.tolist()))
        raise SpurlabError(f"JTT: class {missing[0]} has no training image")
    coef, intercept = np.zeros((n_classes, x.shape[1])), np.zeros(n_classes)
    if n_classes == 2:  # sklearn's binary head: one row, the logit of classes_[1] against classes_[0]
        coef[1], intercept[1] = clf.coef_[0], clf.intercept_[0]
    else:
        coef[classes], intercept[classes] = clf.coef_, clf.intercept_
    return raw_head(coef, intercept, mean, scale)


def jtt_head(train: dict, val: dict, n_classes: int, settings: JTTSettings) -> tuple[np.ndarray, np.ndarray, dict]:
    """JTT on cached features (see module). `train`: features, labels, erm_correct; `val`: features,
    labels, groups. Returns (W, b) and {"lambda_up", "val_worst_group_by_lambda_up", "n_upweighted"}."""
    best, scores = None, {}
    for lam in settings.lambda_up:
        weights = jtt_weights(train["erm_correct"], lam)
        W, b = fit_weighted_head(train["features"], train["labels"], weights, settings.C, n_classes)
        correct = head_logits(W, b, val["features"]).argmax(1) == val["labels"]
        scores[f"{lam:g}"] = worst_group_accuracy(correct, val["groups"])
        if best is None or scores[f"{lam:g}"] > best[0]:  # ties: the first in the list
            best = (scores[f"{lam:g}"], lam, W, b)
    info = {"lambda_up": best[1], "val_worst_group_by_lambda_up": scores,
            "n_upweighted": int((~np.asarray(train["erm_correct"], bool)).sum())}  # fmt: skip
    return best[2], best[3], info


# ------------------------------------------------------------------------------ stage `group_robustness`


def _load(path, model_dir, imageset=None) -> dict:
    """Everything of one feature cache, checked against the model (and image set)."""
    with open_features(path, model_dir=model_dir, imageset=imageset) as fc:
        out = {k: fc[k] for k in ("features", "logits", "preds", "labels", "index")}
        out["class_names"] = fc.class_names
    out["sha256"] = sha256_file(path)
    return out


def load_inputs(model_dir, features: dict, imagesets: dict, rankings_path, sets: dict) -> dict:
    """The model's caches by role (train, val, test, counterfactual, tuning_val), the group ids of
    val and counterfactual, and the spuriosity of train, tuning_val and test (`sets`: role -> set
    name in the rankings table)."""
    cf_set, val_set = ImageSet(imagesets["counterfactual"]), ImageSet(imagesets["val"])
    data = {role: _load(path, model_dir, {"counterfactual": cf_set, "val": val_set}.get(role))
            for role, path in features.items()}  # fmt: skip
    names = data["counterfactual"]["class_names"]
    for role, d in data.items():
        if d["class_names"] != names:
            raise SpurlabError(f"{features[role]}: class names differ from those of {features['counterfactual']}")
    data["counterfactual"]["cue_on"] = counterfactual_cue_on(cf_set)
    val = data["val"]
    val["groups"] = group_ids(val["labels"], own_cue_flags(val_set, val["labels"]))
    rankings = read_rankings(rankings_path)
    for role, set_name in sets.items():
        d = data[role]
        check_set_ids(rankings, set_name, d["index"], features[role])
        d["scores"] = scores_for_set(rankings, set_name, len(d["labels"]))
    return data


def low_spuriosity_heads(head: tuple, train: dict, val: dict, settings, tuning_path) -> list[tuple]:
    """Low-spuriosity head tuning re-run with `spurlab.mitigate.head_tuning`'s rows, seeds and
    early stopping, one head per trial: [(W, b, epochs)]. Each trial's validation accuracy and gap
    must equal those of the head-tuning table `tuning_path` (else the settings or inputs differ)."""
    from .head_tuning import evaluate, tune_head, tuning_rows

    W, b = head
    table = read_table(tuning_path)
    classes = np.unique(train["labels"][~np.isnan(train["scores"])])
    picks = tuning_rows(train["scores"], train["labels"], train["preds"] == train["labels"], settings)
    out = []
    for t in range(settings.trials):
        W2, b2, history = tune_head(W, b, feats=train["features"], labels=train["labels"],
                                    rows=picks[("low_spuriosity", t)], val_feats=val["features"],
                                    val_labels=val["labels"], val_scores=val["scores"], classes=classes,
                                    settings=settings, seed=settings.seed + t)  # fmt: skip
        got = evaluate(W2, b2, feats=val["features"], labels=val["labels"], scores=val["scores"], classes=classes,
                       k_gap=settings.k_gap)  # fmt: skip
        want = table[(table["method"] == "low_spuriosity") & (table["trial"] == t) & (table["split"] == "val")
                     & (table["when"] == "after")]  # fmt: skip
        if len(want) != 1 or any(not np.isclose(got[k], float(want[k].iloc[0]), rtol=0, atol=1e-9, equal_nan=True)
                                  for k in ("acc", "gap")):  # fmt: skip
            raise SpurlabError(f"{tuning_path}: low-spuriosity trial {t} re-run here does not reproduce the table's "
                               "validation accuracy and gap; the head-tuning settings or inputs differ")  # fmt: skip
        out.append((W2, b2, len(history)))
    return out


def check_tuning_table(tuning_path, checkpoint_sha256: str, rankings_path, settings, features: dict) -> None:
    """The head-tuning table must come from this checkpoint, rankings, settings and caches (train, val roles)."""
    prov = table_provenance(tuning_path)
    read_table(tuning_path, expect={"checkpoint_sha256": checkpoint_sha256, "rankings_sha256": sha256_file(rankings_path),
                                    "settings": settings.as_dict()})  # fmt: skip
    for split, role in (("train", "train"), ("val", "tuning_val")):
        if (prov.get("features_sha256") or {}).get(split) != sha256_file(features[role]):
            raise SpurlabError(f"{tuning_path}: provenance 'features_sha256.{split}' is not {features[role]}'s hash; "
                               "rebuild the table from its current inputs")  # fmt: skip


def score(logits_test: np.ndarray, logits_cf: np.ndarray, data: dict, k: int, seed: int = 0,
          key: str = "") -> tuple[dict, pd.DataFrame, np.ndarray]:  # fmt: skip
    """Mean accuracy and spurious gap (mean over ranked classes, k images each end) on the test set,
    with their bootstrap intervals over its images (`measure.spuriosity.gap_cis`); group
    accuracies, worst group and mean group on the counterfactual set; the per-image correctness
    on the test set."""
    test, cf = data["test"], data["counterfactual"]
    y = test["labels"]
    correct = logits_test.argmax(1) == y
    g = spurious_gaps(correct, test["scores"], y, k)
    groups = group_accuracy(logits_cf.argmax(1) == cf["labels"], cf["labels"], cf["cue_on"], cf["class_names"])
    row = {"acc": float(correct[y >= 0].mean()),
           **{c: float(g[c].mean()) if len(g) else float("nan") for c in ("gap", "acc_high", "acc_low")},
           **worst_group(groups)}  # fmt: skip
    cis = gap_cis(correct, test["scores"], y, k, seed, key=key)
    row.update({f"{m}_ci_{side}": cis[f"{src}_ci_{side}"] for m, src in (("acc", "acc"), ("gap", "mean_gap"))
                for side in ("low", "high")})  # fmt: skip
    return row, groups, correct


def method_heads(data: dict, head: tuple, settings: dict, inputs: dict) -> dict:
    """{method: [(logits_fn, selected)]}, one entry per trial; logits_fn(cache dict) -> logits.
    `settings`: dfr, jtt, tuning (TuningSettings); `inputs`: the tuning table and SpuFix's files."""
    n_classes = head[0].shape[0]
    train, val = data["train"], data["val"]
    heads: dict = {"erm": [(lambda d: np.asarray(d["logits"], np.float64), "")]}
    W, b, info = dfr_head(val["features"], val["labels"], val["groups"], n_classes, settings["dfr"])
    heads["dfr"] = [(lambda d, W=W, b=b: head_logits(W, b, d["features"]), f"C={info['C']:g}")]
    jtt_train = {
        "features": train["features"],
        "labels": train["labels"],
        "erm_correct": train["preds"] == train["labels"],
    }
    W, b, info = jtt_head(jtt_train, val, n_classes, settings["jtt"])
    heads["jtt"] = [(lambda d, W=W, b=b: head_logits(W, b, d["features"]),
                     f"lambda_up={info['lambda_up']:g}, {info['n_upweighted']} upweighted")]  # fmt: skip
    tuned = low_spuriosity_heads(head, train, data["tuning_val"], settings["tuning"], inputs["tuning"])
    heads["low_spuriosity"] = [(lambda d, W=W2, b=b2: head_logits(W, b, d["features"]), f"epochs={epochs}")
                               for W2, b2, epochs in tuned]  # fmt: skip
    fix, info = model_spufix(inputs["robust_dir"], inputs["robust_train"], inputs["model_dir"], inputs["model_train"],
                             bases_path=inputs["bases"], harmful_path=inputs["harmful"], pairs_path=inputs["pairs"])  # fmt: skip
    heads["spufix"] = [(lambda d: np.asarray(fix(d["logits"], d["features"]), np.float64),
                        f"{info['components']} components in {info['spurious_classes']} classes")]  # fmt: skip
    return heads


def run_group_robustness(model: str, model_dir, features: dict, imagesets: dict, spuriosity: dict, spufix: dict,
                         settings: dict, out, out_groups) -> dict:  # fmt: skip
    """Stage `group_robustness`: the five heads of one audited model scored (module docstring).

    `features`: role -> this model's cache (train, val, test, counterfactual, tuning_val: the head
    tuning's early-stopping set); `imagesets`: val, counterfactual; `spuriosity`: rankings,
    tuning (this model's head-tuning table), sets (role -> set name for train, tuning_val, test),
    k; `spufix`: robust_dir, robust_train, bases, pairs, harmful; `settings`: dfr (DFRSettings),
    jtt (JTTSettings), tuning (TuningSettings). Writes one row per method and trial (`out`) and
    the group accuracies behind them (`out_groups`), with the same provenance."""
    from ..models.factory import load_model

    head = tuple(t.detach().cpu().numpy().astype(np.float32) for t in load_model(model_dir)[0].head())
    checkpoint = model_checkpoint_sha256(model_dir)
    check_tuning_table(spuriosity["tuning"], checkpoint, spuriosity["rankings"], settings["tuning"], features)
    data = load_inputs(model_dir, features, imagesets, spuriosity["rankings"], spuriosity["sets"])
    inputs = {**spufix, "tuning": spuriosity["tuning"], "model_dir": model_dir, "model_train": features["train"]}
    rows, group_frames = [], []
    test = data["test"]
    for method, trials in method_heads(data, head, settings, inputs).items():
        hits = []
        for t, (logits_fn, selected) in enumerate(trials):
            row, groups, hit = score(logits_fn(test), logits_fn(data["counterfactual"]), data, spuriosity["k"],
                                     seed=settings["dfr"].seed, key=f"{model}-{method}-{t}")  # fmt: skip
            ids = {"model": model, "method": method, "trial": t}
            rows.append({**ids, "labels_needed": labels_needed(method, settings["jtt"]), "selected": selected, **row})
            group_frames.append(groups.assign(**ids))
            hits.append(hit)
        # the mean over trials: images within trials, and trials (measure.spuriosity.trial_gap_cis)
        cis = trial_gap_cis(np.stack(hits), test["scores"], test["labels"], spuriosity["k"], settings["dfr"].seed,
                            key=f"{model}-{method}")  # fmt: skip
        rows[len(rows) - len(hits) :] = [{**r, **cis} for r in rows[len(rows) - len(hits) :]]
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    groups = pd.concat(group_frames, ignore_index=True)[["model", "method", "trial", *GROUP_COLUMNS]]
    provenance = {
        "model": model, "checkpoint_sha256": checkpoint,
        "features_sha256": {role: d["sha256"] for role, d in data.items()},
        "imagesets_sha256": {role: ImageSet(p).sha256 for role, p in imagesets.items()},
        "rankings_sha256": sha256_file(spuriosity["rankings"]), "tuning_sha256": sha256_file(spuriosity["tuning"]),
        "spufix_sha256": {k: sha256_file(spufix[k]) for k in ("robust_train", "bases", "pairs", "harmful")},
        "robust_checkpoint_sha256": model_checkpoint_sha256(spufix["robust_dir"]),
        "settings": {"dfr": asdict(settings["dfr"]), "jtt": asdict(settings["jtt"]),
                     "tuning": settings["tuning"].as_dict(), "sets": spuriosity["sets"], "k": int(spuriosity["k"])},
    }  # fmt: skip
    write_table(table, out, provenance)
    write_table(groups, out_groups, provenance)
    means = table.groupby("method", sort=False)[["acc", "worst_group_acc", "gap"]].mean()
    return {method: row.to_dict() for method, row in means.iterrows()}
