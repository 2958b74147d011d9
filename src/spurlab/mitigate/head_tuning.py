"""Low-spuriosity head tuning (Moayeri et al. 2023, sec. 4.3 and appendix F; docs/methods.md#low-spuriosity-head-tuning).

The backbone stays frozen and only the linear head (W, b) is tuned, on cached penultimate
features. Starting from the model's own head, train on the k lowest-spuriosity training images of
every biased class (one with an annotated spurious feature) and stop early once the validation
spurious gap (accuracy on the k_gap highest- minus the k_gap lowest-spuriosity images, averaged
over the biased classes) is below `gap_target`: those images lack the cues the head leans on.
Baselines on the same budget: ``random`` (k random images of the class, sec. 4.3) and
``misclassified`` (the images the model gets wrong, filled up to k with random correct ones,
appendix F). Every method runs `trials` times (seeds seed + t); the table reports each trial,
before and after, on the validation set and on a held-out set.

Defaults (`TuningSettings`, with their sources in docs/methods.md#low-spuriosity-head-tuning): k 100
(paper), SGD lr 0.001 and momentum 0.9 and at most 20 epochs (reference code), batch 64 (ours),
gap_target 0.05 and k_gap 10 (paper), 3 trials (paper), other_classes "random".

Deviation (`other_classes`): the paper tunes on the biased classes' images only, which pushes every
other class's logits down, so most of its accuracy cost is a class-prior shift; by default every
method also sees the same k random images of each unbiased class ("none" is the paper's).
Cross-entropy, shuffled each epoch by a generator seeded per trial; float32 on CPU, so the same
seed gives the same weights bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import write_table
from ..measure.spuriosity import (
    K_GAP,
    check_set_ids,
    gap_cis,
    high_low,
    read_rankings,
    scores_for_set,
    spurious_gaps,
    trial_gap_cis,
)
from ..measure.spuriosity_summary import summarize_tuning

METHODS = ("low_spuriosity", "random", "misclassified")
# Relative (Frobenius) tolerance of cached logits vs features @ W.T + b. Caches made on CUDA run
# under bf16 autocast (spurlab.device), which alone puts them ~2e-3 off; another head is ~1 off.
LOGIT_RTOL = 1e-2
# acc_ci_*, gap_ci_*: the trial's intervals over images; *_trials_ci_*: those of the mean over the
# method's trials (images within trials, and trials), the same on each of its rows of a split and when
TRIALS_CI = ["acc_trials_ci_low", "acc_trials_ci_high", "gap_trials_ci_low", "gap_trials_ci_high"]
COLUMNS = ["model", "method", "trial", "split", "when", "acc", "gap", "acc_high", "acc_low", "epochs", "n_train_rows",
           "acc_ci_low", "acc_ci_high", "gap_ci_low", "gap_ci_high", *TRIALS_CI]  # fmt: skip


@dataclass
class TuningSettings(Settings):
    """Stage `head_tuning` (config `spuriosity.tuning`; k_gap is spuriosity.k): and the rankings'
    sets the tuning data (spuriosity.stats_set), early stopping (gap_set) and the held-out
    scores (heldout_set) come from."""

    SECTION = "spuriosity.tuning"
    KEYS = {"k_gap": "spuriosity.k", "train_set": "spuriosity.stats_set", "val_set": "spuriosity.gap_set",
            "test_set": "spuriosity.heldout_set"}  # fmt: skip
    k: int = 100
    lr: float = 0.001
    momentum: float = 0.9
    max_epochs: int = 20
    batch_size: int = 64
    gap_target: float = 0.05
    k_gap: int = K_GAP
    trials: int = 3
    seed: int = 0
    other_classes: str = "random"
    train_set: str = "train"
    val_set: str = "val"
    test_set: str | None = "test"

    def as_dict(self) -> dict:
        """The tuning settings (the provenance's `settings`; the set names are its `sets`)."""
        return {k: v for k, v in asdict(self).items() if k not in ("train_set", "val_set", "test_set")}

    def __post_init__(self):
        for name in ("k", "batch_size", "k_gap", "trials"):
            if int(getattr(self, name)) < 1:
                raise SpurlabError(f"head tuning: {name} must be >= 1, got {getattr(self, name)}")
        if self.other_classes not in ("random", "none"):
            raise SpurlabError(f"head tuning: other_classes must be random or none, not {self.other_classes!r}")
        if self.max_epochs < 0 or self.lr < 0 or not 0 <= self.momentum <= 1:
            raise SpurlabError("head tuning: max_epochs and lr must be >= 0 and momentum in [0, 1]")


def select_rows(method: str, scores: np.ndarray, labels: np.ndarray, correct: np.ndarray, classes, k: int,
                rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Sorted training rows for `method`: up to k images of each class in `classes` (see module)."""
    if method not in METHODS:
        raise SpurlabError(f"head tuning: unknown method '{method}' (one of {', '.join(METHODS)})")
    out = [np.zeros(0, np.int64)]
    for c in classes:
        members = np.flatnonzero(labels == c)
        if method == "low_spuriosity":
            out.append(high_low(scores, members[~np.isnan(scores[members])], k)[1])
        elif method == "random":
            out.append(rng.choice(members, min(k, len(members)), replace=False))
        else:
            wrong, right = members[~correct[members]], members[correct[members]]
            picked = rng.choice(wrong, min(k, len(wrong)), replace=False)
            out += [picked, rng.choice(right, min(k - len(picked), len(right)), replace=False)]
    return np.sort(np.concatenate(out)).astype(np.int64)


def tuning_rows(scores: np.ndarray, labels: np.ndarray, correct: np.ndarray, s: TuningSettings) -> dict:
    """{(method, trial): sorted training rows}: each method's k images of every biased class (a
    class with spuriosity scores) plus, with other_classes "random", the same k random images of
    every other labelled class for all methods of a trial."""
    classes = np.unique(labels[~np.isnan(scores)])
    others = np.setdiff1d(np.unique(labels[labels >= 0]), classes)
    picks = {}
    for t in range(s.trials):
        extra = (select_rows("random", scores, labels=labels, correct=correct, classes=others, k=s.k,
                             rng=np.random.default_rng([s.seed, t, 1]))
                 if s.other_classes == "random" else np.zeros(0, np.int64))  # fmt: skip
        for m in METHODS:
            rows = select_rows(
                m, scores, labels=labels, correct=correct, classes=classes, k=s.k, rng=np.random.default_rng(s.seed + t)
            )
            picks[(m, t)] = np.union1d(rows, extra)
    return picks


def _correct(W, b, feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    W, b = torch.as_tensor(W, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    x = torch.as_tensor(feats).float()
    return (x @ W.T + b).argmax(1).numpy() == labels


def evaluate(W, b, feats: np.ndarray, labels: np.ndarray, scores: np.ndarray, classes, k_gap: int = K_GAP,
             ci: tuple[int, str] | None = None) -> dict:  # fmt: skip
    """Head (W, b) on a set: acc over all labelled images; gap, acc_high, acc_low means over `classes`
    (the classes with scores); with `ci` = (seed, key) also the bootstrap intervals of acc and gap
    over the set's images (`measure.spuriosity.gap_cis`)."""
    return score_correct(_correct(W, b, feats, labels), labels, scores, classes, k_gap=k_gap, ci=ci)


def score_correct(correct: np.ndarray, labels: np.ndarray, scores: np.ndarray, classes, k_gap: int = K_GAP,
                  ci: tuple[int, str] | None = None) -> dict:  # fmt: skip
    """`evaluate` from the head's per-image correctness on the set."""
    g = spurious_gaps(correct, scores, labels, k_gap)
    g = g[g["class_index"].isin(np.asarray(classes))]
    out = {"acc": float(correct[labels >= 0].mean()), "gap": float(g["gap"].mean()),
           "acc_high": float(g["acc_high"].mean()), "acc_low": float(g["acc_low"].mean())}  # fmt: skip
    if ci is not None:
        cis = gap_cis(correct, scores, labels, k_gap, ci[0], key=ci[1], metrics=("acc", "mean_gap"))
        out.update({f"{m}_ci_{side}": cis[f"{src}_ci_{side}"] for m, src in (("acc", "acc"), ("gap", "mean_gap"))
                    for side in ("low", "high")})  # fmt: skip
    return out


def trials_cis(hits: dict, data: dict, classes, k_gap: int, seed: int) -> dict:
    """{(method, split, when): the TRIALS_CI columns}: `hits` maps (method, split, when) to each
    trial's per-image correctness on the split (`data[split]` = (features, labels, scores)); the
    gap is over `classes`. Before tuning every method has the same head, so one key serves all."""
    out, by_key = {}, {}
    for (method, split, when), per_trial in hits.items():
        _, labels, scores = data[split]
        ranked = np.where(np.isin(labels, classes), scores, np.nan)
        key = f"{split}-before" if when == "before" else f"{split}-{method}-after"
        if key not in by_key:  # the heads before tuning: computed for the first method, the same for all
            by_key[key] = trial_gap_cis(np.stack(per_trial), ranked, labels, k_gap, seed, key=key)
        out[(method, split, when)] = by_key[key]
    return out


def tune_head(W, b, feats, labels, rows, val_feats, val_labels, val_scores, classes, settings: TuningSettings,
              seed: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:  # fmt: skip
    """SGD on cross-entropy of the head over `rows` of (feats, labels); after each epoch the
    validation gap over `classes` is measured and tuning stops once it is below gap_target.
    Returns the new (W, b) as float32 arrays and one history dict per epoch run."""
    if not len(rows):
        raise SpurlabError("head tuning: no training rows selected")
    Wt = torch.nn.Parameter(torch.tensor(np.asarray(W), dtype=torch.float32))
    bt = torch.nn.Parameter(torch.tensor(np.asarray(b), dtype=torch.float32))
    x = torch.as_tensor(np.asarray(feats)[rows]).float()
    y = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.long)
    opt = torch.optim.SGD([Wt, bt], lr=settings.lr, momentum=settings.momentum)
    gen = torch.Generator().manual_seed(int(seed))
    history = []
    for epoch in range(1, settings.max_epochs + 1):
        total = 0.0
        for idx in torch.randperm(len(y), generator=gen).split(settings.batch_size):
            loss = torch.nn.functional.cross_entropy(x[idx] @ Wt.T + bt, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        m = evaluate(Wt.detach(), bt.detach(), val_feats, val_labels, val_scores, classes=classes, k_gap=settings.k_gap)
        history.append({"epoch": epoch, "loss": total / len(y), "val_gap": m["gap"], "val_acc": m["acc"]})
        if m["gap"] < settings.gap_target:
            break
    return Wt.detach().numpy().copy(), bt.detach().numpy().copy(), history


def tuned_rows(model_name: str, head: tuple, train: tuple, picks: dict, data: dict, classes, settings) -> list[dict]:
    """The table's rows: every (method, trial) of `picks` tuned from `head` on `train` (features,
    labels of the sorted union of the picked rows), scored before and after on every split of
    `data` (split -> (features, labels, scores); val stops early), with their intervals."""
    s, (W, b) = settings, head
    union = np.unique(np.concatenate(list(picks.values())))
    val = data["val"]
    correct = {split: _correct(W, b, d[0], d[1]) for split, d in data.items()}
    before = {split: score_correct(correct[split], d[1], d[2], classes, k_gap=s.k_gap, ci=(s.seed, f"{split}-before"))
              for split, d in data.items()}  # fmt: skip
    rows, hits = [], {}
    for (method, t), picked in picks.items():
        W2, b2, history = tune_head(W, b, *train, rows=np.searchsorted(union, picked), val_feats=val[0],
                                    val_labels=val[1], val_scores=val[2], classes=classes, settings=s,
                                    seed=s.seed + t)  # fmt: skip
        for split, d in data.items():
            hit = _correct(W2, b2, d[0], d[1])
            after = score_correct(hit, d[1], d[2], classes, k_gap=s.k_gap, ci=(s.seed, f"{split}-{method}-{t}"))
            hits.setdefault((method, split, "before"), []).append(correct[split])
            hits.setdefault((method, split, "after"), []).append(hit)
            for when, m in (("before", before[split]), ("after", after)):
                rows.append({"model": model_name, "method": method, "trial": t, "split": split, "when": when, **m,
                             "epochs": len(history) if when == "after" else 0, "n_train_rows": len(picked)})  # fmt: skip
    cis = trials_cis(hits, data, classes, s.k_gap, s.seed)
    return [{**r, **cis[(r["method"], r["split"], r["when"])]} for r in rows]


def _check_head(fc, W: np.ndarray, b: np.ndarray, model_dir, n: int = 8) -> None:
    """Fail unless the cache's first rows' logits are features @ W.T + b (to LOGIT_RTOL)."""
    if len(fc) == 0:
        raise SpurlabError(f"{fc.path}: empty feature cache")
    feats = next(fc.blocks("features", n))[1].astype(np.float32)
    logits = next(fc.blocks("logits", n))[1].astype(np.float32)
    if feats.shape[1] != W.shape[1] or logits.shape[1] != W.shape[0]:
        raise SpurlabError(f"{fc.path}: features/logits {feats.shape[1]}/{logits.shape[1]} wide, "
                           f"the head of {model_dir} is {W.shape[0]} x {W.shape[1]}")  # fmt: skip
    err = np.linalg.norm(feats @ W.T + b - logits) / max(float(np.linalg.norm(logits)), 1e-12)
    if err > LOGIT_RTOL:
        raise SpurlabError(f"{fc.path}: cached logits differ from features @ W.T + b of {model_dir}'s head "
                           f"by {err:.1e} (relative); the cache is from another model")  # fmt: skip


def _gather(fc, name: str, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted, unique) of a cache dataset, streamed in blocks (memory len(rows) x D)."""
    parts = [block[rows[(rows >= s) & (rows < s + len(block))] - s] for s, block in fc.blocks(name)]
    return np.concatenate(parts)


def run_head_tuning(model_dir, model_name: str, train_features, val_features, test_features, rankings_path, out,
                    settings: TuningSettings | None = None) -> dict:  # fmt: skip
    """Stage `head_tuning`: every method x trial tuned on `train_features`, scored before and after
    on val (early stopping) and test (held out; `test_features` may be None). The settings'
    train_set, val_set and test_set name the rankings table's sets of the three. Writes the tidy
    table `out` (.parquet + .csv)."""
    from ..models.factory import load_model

    s = settings or TuningSettings()
    sets = (s.train_set, s.val_set, s.test_set)
    model, _ = load_model(model_dir)
    W, b = (t.detach().cpu().numpy().astype(np.float32) for t in model.head())
    rankings = read_rankings(rankings_path)
    paths = {"train": train_features, "val": val_features} | ({"test": test_features} if test_features else {})
    data = {}
    for (split, path), set_name in zip(paths.items(), sets):
        with open_features(path, model_dir=model_dir) as fc:
            _check_head(fc, W, b, model_dir)
            labels = fc["labels"]
            scores = scores_for_set(rankings, set_name, len(labels))
            check_set_ids(rankings, set_name, fc["index"], path)
            if split != "train":
                data[split] = (fc["features"], labels, scores)
                continue
            classes = np.unique(labels[~np.isnan(scores)])
            if not len(classes):
                raise SpurlabError(f"{rankings_path}: no class has a spurious feature; nothing to tune")
            picks = tuning_rows(scores, labels, fc["preds"] == labels, s)
            union = np.unique(np.concatenate(list(picks.values())))
            train = (_gather(fc, "features", union), labels[union])
    rows = tuned_rows(model_name, (W, b), train=train, picks=picks, data=data, classes=classes, settings=s)
    table = pd.DataFrame(rows, columns=COLUMNS)
    provenance = {
        "model": model_name,
        "checkpoint_sha256": model_checkpoint_sha256(model_dir),
        "rankings_sha256": sha256_file(rankings_path),
        "features_sha256": {split: sha256_file(p) for split, p in paths.items()},
        "sets": dict(zip(paths, sets)),
        "settings": s.as_dict(),
    }
    write_table(table, out, provenance)
    return summarize_tuning(table)
