"""Adebayo et al.'s spurious score and model conditions (sec. 2.1; docs/methods.md#post-hoc-explanation-measures).

Spurious score of a model for signal c and class j: over inputs *without* the signal that the model
does not predict as j, the fraction it predicts as j once the signal is added (SCF applied to the
same image). The contamination test sets are row-for-row twins (`contam_clean_test` and
`contam_<c>_test`), so adding the signal is reading the twin row. A model is *spurious* when its
score exceeds `posthoc.thresholds.spurious` (0.85) for the aligned class and any signal, *normal*
when every score (all classes, all signals) is below `posthoc.thresholds.normal` (0.1), otherwise
*neither*. (Not Neuhaus et al.'s spurious score: that one is `spurlab.measure.spurious_score`.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import contamination_signals, posthoc_models
from ..data.contaminate import check_twins
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io.tables import write_table
from ..stats import bootstrap_ci

# knobs that strengthen (or weaken) a model's reliance on a signal, named in the conditions table
KNOBS = ("contamination.signals.<signal> (size / color / sigma: signal strength)", "contamination.n_images.train",
         "posthoc.train.epochs")  # fmt: skip


def spurious_score(pred_clean: np.ndarray, pred_signal: np.ndarray, cls: int) -> float:
    """docs/methods.md#post-hoc-explanation-measures: among rows with pred_clean != cls, the fraction with pred_signal == cls (NaN if none)."""
    pred_clean, pred_signal = np.asarray(pred_clean), np.asarray(pred_signal)
    if pred_clean.shape != pred_signal.shape:
        raise SpurlabError(
            f"spurious score: {len(pred_clean)} clean predictions but {len(pred_signal)} with the signal"
        )
    base = pred_clean != cls
    return float((pred_signal[base] == cls).mean()) if base.any() else float("nan")


def spurious_scores(pred_clean: np.ndarray, pred_signal: np.ndarray, n_classes: int) -> np.ndarray:
    """The score for every class j = 0 .. n_classes - 1."""
    return np.array([spurious_score(pred_clean, pred_signal, j) for j in range(n_classes)])


def max_score_ci(pred_clean: np.ndarray, preds: list[np.ndarray], classes, seed: int, key: str) -> list | None:
    """The bootstrap interval of the highest spurious score over `classes` and the signals whose
    predictions are `preds` (one class and signal: that score), the test images (twin rows, with
    their clean and signal predictions) resampled (docs/methods.md#bootstrap-intervals)."""
    rows = np.stack([np.asarray(pred_clean), *map(np.asarray, preds)], axis=1)

    def stat(r):
        v = [spurious_score(r[:, 0], r[:, q], j) for q in range(1, r.shape[1]) for j in classes]
        return float(np.nanmax(v)) if np.isfinite(v).any() else float("nan")

    return bootstrap_ci([rows], stat, seed, key)


def condition(aligned_scores: dict[str, float], all_scores: list[float], thresholds: dict) -> str:
    """'spurious' if any signal's aligned-class score > thresholds['spurious'], 'normal' if every
    score < thresholds['normal'], else 'neither' (Adebayo et al., sec. 2.1)."""
    if any(s > thresholds["spurious"] for s in aligned_scores.values() if np.isfinite(s)):
        return "spurious"
    finite = [s for s in all_scores if np.isfinite(s)]
    if finite and max(finite) < thresholds["normal"]:
        return "normal"
    return "neither"


def expected_condition(model: str) -> str:
    return "normal" if model == "normal" else "spurious"


def run_scores(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], out: str | Path) -> pd.DataFrame:
    """Table of scores (model, signal, class, score, aligned) plus one `condition` row per model
    (signal '*', score: the highest of the model's scores); written to `out` (.parquet + .csv).
    `score_ci_low` / `score_ci_high`: the bootstrap interval (`max_score_ci`, seed posthoc.seed)
    of the aligned class's scores and of each condition row's highest score (NaN on the others)."""
    from ..models import load_model, predict

    p = cfg["posthoc"]
    seed = int(p["seed"])
    for m in posthoc_models(cfg):
        if m not in model_dirs:
            raise SpurlabError(f"posthoc scores: model {m} not given (--models/--model-dirs)")
    need = ["contam_clean_test"] + [f"contam_{s}_test" for s in contamination_signals(cfg)]
    for n in need:
        if n not in sets:
            raise SpurlabError(f"posthoc scores: image set {n} not given (--set-names/--imagesets)")
    opened = {n: open_imageset(sets[n]) for n in need}
    try:
        clean = opened["contam_clean_test"]
        names = clean.class_names
        aligned = names.index(cfg["contamination"]["aligned_class"])
        for n in need[1:]:
            check_twins(clean, opened[n])
        images = {n: s.images() for n, s in opened.items()}
        shas = {n: s.sha256 for n, s in opened.items()}
    finally:
        for s in opened.values():
            s.close()
    rows, cond_rows = [], []
    for m in posthoc_models(cfg):
        model, _ = load_model(model_dirs[m])
        pc = predict(model, images["contam_clean_test"])
        aligned_scores, all_scores, preds = {}, [], {}
        for s in contamination_signals(cfg):
            preds[s] = predict(model, images[f"contam_{s}_test"])
            sc = spurious_scores(pc, preds[s], len(names))
            ci = max_score_ci(pc, [preds[s]], [aligned], seed, f"score-{m}-{s}")
            for j, v in enumerate(sc):
                low, high = ci if j == aligned and ci else (np.nan, np.nan)
                rows.append({"model": m, "signal": s, "class": names[j], "aligned": j == aligned, "score": float(v),
                             "score_ci_low": low, "score_ci_high": high})  # fmt: skip
            aligned_scores[s] = float(sc[aligned])
            all_scores += sc.tolist()
        got = condition(aligned_scores, all_scores, p["thresholds"])
        want = expected_condition(m)
        ci = max_score_ci(pc, list(preds.values()), range(len(names)), seed, f"max-score-{m}") or [np.nan, np.nan]
        cond_rows.append({"model": m, "condition": got, "expected": want, "meets": got == want,
                          "max_aligned_score": max(aligned_scores.values()), "max_score": float(np.nanmax(all_scores)),
                          "score_ci_low": ci[0], "score_ci_high": ci[1],
                          "knobs": "" if got == want else "; ".join(KNOBS)})  # fmt: skip
    df = pd.DataFrame(rows)
    cond = pd.DataFrame(cond_rows)
    df = pd.concat([df, cond.rename(columns={"max_score": "score"}).assign(signal="*", **{"class": "*", "aligned": False})],
                   ignore_index=True)  # fmt: skip
    provenance = {"models": {m: model_checkpoint_sha256(model_dirs[m]) for m in posthoc_models(cfg)}, "imagesets": shas,
                  "thresholds": p["thresholds"], "aligned_class": cfg["contamination"]["aligned_class"],
                  "seed": seed}  # fmt: skip
    write_table(df, out, provenance)
    return df
