"""Interventional checks of explanations, shared by the BAM and post hoc families and the
background swap (docs/methods.md#interventional-checks-of-explanations).

An image is split into two parts, the class `object` and the `cue` (a contamination signal; for
BAM the scene, the whole background), and re-rendered from its latents without each of them
(`spurlab.data.interventions`, or BAM's row-aligned X_0s / X_og sets). For a model and an image
with predicted class y (on the original):

- measured: the prediction without the object and without the cue, and the drop of p(y) when
  each part is removed (`drop_object`, `drop_cue`);
- an explanation's claim: its attribution density on each part (the normalised map's mean over
  the part's pixels, BAM's g_c), as a share of the two; its top part is the one with the larger
  share (`none` when both are zero or equal);
- deletion (FunnyBirds' deletion check, Hesse et al. 2023): removing the top part changes y;
- preservation (FunnyBirds' preservation check): keeping only the top part (removing the other)
  keeps y;
- agreement (FunnyBirds' single deletion, for two parts): the top part is the part whose removal
  drops p(y) more, over images where the two drops differ by more than a tolerance.

Baselines from the same measurements: `oracle` (the part whose choice scores best on that image),
`always_object`, `always_cue`. The light functions here are numpy/pandas; `probabilities`,
`method_maps` and `measure_model` load torch and captum inside.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from ..errors import SpurlabError
from ..stats import bootstrap_ci, mean_ci

PARTS = ("object", "cue")
TWINS = ("original", "no_object", "no_cue")
BASELINES = ("oracle", "always_object", "always_cue")


def part_masks(object_mask: np.ndarray, cue_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint part regions: the cue's pixels, and the object's pixels the cue does not cover
    (a tag drawn over the object shows the tag there)."""
    cue = np.asarray(cue_mask).astype(bool)
    return np.asarray(object_mask).astype(bool) & ~cue, cue


def part_shares(maps: np.ndarray, object_mask: np.ndarray, cue_mask: np.ndarray) -> np.ndarray:
    """(N, 2) relative attribution density of each map on (object, cue): the mean of the map over
    each part's pixels (BAM's g_c), divided by the sum of the two means; NaN where a part has no
    pixels or both means are 0. `maps` (N, H, W) are non-negative normalised attributions.

    Means, not sums: the cue of a BAM image (the scene) and of the blur signal is the whole
    background, so summed mass would name it for any diffuse map, by its area alone."""
    obj, cue = part_masks(object_mask, cue_mask)
    m = np.asarray(maps, dtype=np.float64)
    if m.shape != obj.shape:
        raise SpurlabError(f"attribution maps {m.shape} and part masks {obj.shape} differ in shape")
    area = np.stack([obj.sum((1, 2)), cue.sum((1, 2))], axis=1).astype(np.float64)
    mass = np.stack([(m * obj).sum((1, 2)), (m * cue).sum((1, 2))], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        density = np.where(area > 0, mass / np.where(area > 0, area, 1), np.nan)
        total = density.sum(1, keepdims=True)
        return np.where(np.isfinite(total) & (total > 0), density / np.where(total > 0, total, 1), np.nan)


def top_parts(shares: np.ndarray) -> np.ndarray:
    """'object', 'cue' or 'none' (no mass on either, or equal shares) per row of `shares`."""
    s = np.asarray(shares, dtype=np.float64)
    out = np.full(len(s), "none", dtype=object)
    ok = np.isfinite(s).all(1)
    out[ok & (s[:, 0] > s[:, 1])] = "object"
    out[ok & (s[:, 1] > s[:, 0])] = "cue"
    return out


def outcomes(top: np.ndarray, flip_object: np.ndarray, flip_cue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(deletion, preservation) per image for a choice of top part: removing the top part flips the
    prediction; removing the other part does not. A 'none' choice scores neither."""
    top = np.asarray(top, dtype=object)
    fo, fc = np.asarray(flip_object, bool), np.asarray(flip_cue, bool)
    deletion = np.where(top == "object", fo, np.where(top == "cue", fc, False))
    preservation = np.where(top == "object", ~fc, np.where(top == "cue", ~fo, False))
    return deletion.astype(bool), preservation.astype(bool)


def measured(probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per image: the predicted class on the original, the predictions on the twins, p(y) on each
    and the drops. `probs` holds (N, C) class probabilities for each of `TWINS`."""
    missing = [k for k in TWINS if k not in probs]
    if missing:
        raise SpurlabError(f"interventions: no probabilities for the '{missing[0]}' images")
    p0 = np.asarray(probs["original"], dtype=np.float64)
    pred = p0.argmax(1)
    rows = np.arange(len(pred))
    out = {"pred": pred.astype(np.int64), "p": p0[rows, pred]}
    for part in PARTS:
        pk = np.asarray(probs[f"no_{part}"], dtype=np.float64)
        if pk.shape != p0.shape:
            raise SpurlabError(f"interventions: no_{part} probabilities {pk.shape}, originals {p0.shape}")
        out[f"pred_no_{part}"] = pk.argmax(1).astype(np.int64)
        out[f"p_no_{part}"] = pk[rows, pred]
        out[f"drop_{part}"] = out["p"] - out[f"p_no_{part}"]
        out[f"flip_{part}"] = out[f"pred_no_{part}"] != pred
    return pd.DataFrame(out)


def score_table(probs: dict[str, np.ndarray], maps: dict[str, np.ndarray], object_mask: np.ndarray,
                cue_mask: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """One row per method and image: `pos` (index of the image), the measured columns
    (`measured`), the method's part shares, its top part, deletion and preservation."""
    base = measured(probs)
    base.insert(0, "pos", np.arange(len(base), dtype=np.int64))
    frames = []
    for method, m in maps.items():
        shares = part_shares(m, object_mask, cue_mask)
        top = top_parts(shares)
        deletion, preservation = outcomes(top, base["flip_object"].to_numpy(), base["flip_cue"].to_numpy())
        t = base.copy()
        t.insert(1, "method", method)
        t["share_object"], t["share_cue"] = shares[:, 0], shares[:, 1]
        t["top_part"] = top.astype(str)
        t["deletion"], t["preservation"] = deletion, preservation
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else base.iloc[:0]


def larger_drop(df: pd.DataFrame, tolerance: float) -> np.ndarray:
    """The part whose removal drops p(y) more, or 'tie' within `tolerance`."""
    d = (df["drop_object"] - df["drop_cue"]).to_numpy()
    return np.where(d > tolerance, "object", np.where(d < -tolerance, "cue", "tie")).astype(object)


def _rate(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return round(float(x.mean()), 4) if len(x) else None


def _scores(top: np.ndarray, df: pd.DataFrame, tolerance: float, seed: int | None = None, key: str = "") -> dict:
    """Deletion, preservation, agreement (and with `seed` their bootstrap intervals over images)."""
    deletion, preservation = outcomes(top, df["flip_object"].to_numpy(), df["flip_cue"].to_numpy())
    larger = larger_drop(df, tolerance)
    decided = larger != "tie"
    rec = {"deletion": _rate(deletion), "preservation": _rate(preservation),
           "agreement": _rate(top[decided] == larger[decided]), "agreement_n": int(decided.sum()), "n": int(len(df))}  # fmt: skip
    if seed is not None:
        for name, x in (("deletion", deletion), ("preservation", preservation),
                        ("agreement", top[decided] == larger[decided])):  # fmt: skip
            rec[f"{name}_ci"] = mean_ci(np.asarray(x, float), seed, f"{name}-{key}")
    both = [rec["deletion"], rec["preservation"]]
    rec["interventional"] = None if None in both else round(float(np.mean(both)), 4)
    if seed is not None:  # an image's (deletion + preservation) / 2: the rows resampled with both outcomes
        both_rows = (np.asarray(deletion, float) + np.asarray(preservation, float)) / 2
        rec["interventional_ci"] = mean_ci(both_rows, seed, f"interventional-{key}")
    return rec


def oracle_parts(df: pd.DataFrame) -> np.ndarray:
    """Per image, the top part that scores best (deletion + preservation; ties: the larger drop)."""
    fo, fc = df["flip_object"].to_numpy(bool), df["flip_cue"].to_numpy(bool)
    as_object = fo.astype(int) + (~fc).astype(int)
    as_cue = fc.astype(int) + (~fo).astype(int)
    by_drop = np.where(df["drop_object"].to_numpy() >= df["drop_cue"].to_numpy(), "object", "cue")
    return np.where(as_object > as_cue, "object", np.where(as_cue > as_object, "cue", by_drop)).astype(object)


def method_scores(df: pd.DataFrame, tolerance: float, seed: int | None = None) -> dict:
    """{'methods': {method: scores}, 'baselines': {oracle | always_object | always_cue: scores}}
    over every row of a family table (all models, settings and images); with `seed`, each score's
    bootstrap interval over the rows (docs/methods.md#bootstrap-intervals)."""
    methods = {m: _scores(g["top_part"].to_numpy(object), g, tolerance, seed, m)
               for m, g in df.groupby("method", sort=False)}  # fmt: skip
    first = df[df["method"] == df["method"].iloc[0]] if len(df) else df
    baselines = {
        "oracle": _scores(oracle_parts(first), first, tolerance, seed, "oracle"),
        "always_object": _scores(np.full(len(first), "object", object), first, tolerance, seed, "always_object"),
        "always_cue": _scores(np.full(len(first), "cue", object), first, tolerance, seed, "always_cue"),
    }
    return {"methods": methods, "baselines": baselines}


def planted_order(df: pd.DataFrame, seed: int | None = None) -> dict:
    """Per model: how often removing each part flips the prediction, the mean drops, the part the
    model was built to rely on (`planted`), whether removing it flips more often than removing
    the other part (`holds`), and the accuracy on the originals (where labels are given; a
    spurious model's on contaminated images is low by design)."""
    out = {}
    for model, g in df.groupby("model", sort=False):
        g = g[g["method"] == g["method"].iloc[0]]
        planted = str(g["planted"].iloc[0])
        other = "cue" if planted == "object" else "object"
        rec = {"planted": planted, "n": int(len(g))}
        if "correct" in g:
            rec["accuracy"] = _rate(g["correct"])
        for part in PARTS:
            rec[f"flip_remove_{part}"] = _rate(g[f"flip_{part}"])
            rec[f"drop_remove_{part}"] = _rate(g[f"drop_{part}"])
            if seed is not None:
                rec[f"flip_remove_{part}_ci"] = mean_ci(g[f"flip_{part}"].to_numpy(float), seed, f"flip-{model}-{part}")
        rec["holds"] = bool(rec[f"flip_remove_{planted}"] > rec[f"flip_remove_{other}"])
        out[str(model)] = rec
    return out


def cue_reliance(df: pd.DataFrame, seed: int = 0) -> dict:
    """Per setting (contamination signal) that has a model trained with the cue and one trained
    without it (planted `cue` and `object`), the same intervention on the same images: how often
    removing the cue flips each model's prediction, and whether it flips the cue-trained model's
    more (`holds`). Adebayo et al.'s contaminated model is built to lose its prediction when the
    signal is removed, the normal model is not; how much it relies on the cue against the object
    is what it learned (its spurious score), which `planted_order` reports beside this. Both rates
    carry their bootstrap interval over the model's rows (`<rate>_ci`)."""
    out = {}
    for setting, g in df[df["setting"] != ""].groupby("setting", sort=False):
        g = g[g["method"] == g["method"].iloc[0]]
        by_part = {str(p): h for p, h in g.groupby("planted", sort=False)}
        if set(by_part) != set(PARTS):
            continue
        trained, reference = by_part["cue"], by_part["object"]
        rec = {"model": str(trained["model"].iloc[0]), "reference": str(reference["model"].iloc[0]),
               "n": int(len(trained)), "flip_remove_cue": _rate(trained["flip_cue"]),
               "reference_flip_remove_cue": _rate(reference["flip_cue"])}  # fmt: skip
        for key, rows in (("flip_remove_cue", trained), ("reference_flip_remove_cue", reference)):
            rec[f"{key}_ci"] = mean_ci(rows["flip_cue"].to_numpy(float), seed, f"{key}-{setting}")
        rec["holds"] = bool(rec["flip_remove_cue"] > rec["reference_flip_remove_cue"])
        out[str(setting)] = rec
    return out


def planted_truth_holds(families: dict) -> bool:
    """The planted truth of every family: a model built on the cue that has a reference model
    trained without it is judged by `cue_reliance`, every other model by `planted_order`."""
    holds = []
    for f in families.values():
        judged = {r["model"]: r["holds"] for r in (f.get("cue_reliance") or {}).values()}
        holds += [judged.get(m, r["holds"]) for m, r in f["models"].items()]
    return bool(holds) and all(holds)


def ranking_agreement(correlational: dict[str, float], interventional: dict[str, float], measure: str,
                      seed: int = 0) -> dict:  # fmt: skip
    """Spearman's rho and Kendall's tau (scipy.stats) between two scores of the same methods;
    None where undefined (fewer than 3 methods, or a constant score). `<key>_ci`: the bootstrap
    interval over the methods (each with both its scores), the resamples where the coefficient is
    undefined (a constant score) left out (docs/methods.md#bootstrap-intervals)."""
    from scipy.stats import kendalltau, spearmanr

    def coefficient(fn):
        return lambda x, y: float(fn(x, y).statistic) if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")

    methods = [m for m in interventional if correlational.get(m) is not None and interventional[m] is not None]
    a = np.array([correlational[m] for m in methods], dtype=np.float64)
    b = np.array([interventional[m] for m in methods], dtype=np.float64)
    rec = {"correlational": measure, "methods": methods, "n": len(methods),
           "correlational_scores": {m: round(float(v), 4) for m, v in zip(methods, a)},
           "interventional_scores": {m: round(float(v), 4) for m, v in zip(methods, b)},
           "correlational_ranking": [methods[i] for i in np.argsort(-a, kind="stable")],
           "interventional_ranking": [methods[i] for i in np.argsort(-b, kind="stable")]}  # fmt: skip
    defined = len(methods) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0
    for key, fn in (("spearman", spearmanr), ("kendall", kendalltau)):
        res = fn(a, b) if defined else None
        rec[key] = None if res is None else round(float(res.statistic), 4)
        rec[f"{key}_p"] = None if res is None else round(float(res.pvalue), 4)
        rec[f"{key}_ci"] = (
            bootstrap_ci([a, b], coefficient(fn), seed, f"{key}-{measure}", drop_undefined=True) if defined else None
        )
    return rec


def probabilities(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax class probabilities (N, C) of uint8 (N, H, W, 3) images, float64 (CPU, eval mode)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).permute(0, 3, 1, 2).float() / 255.0
            out.append(torch.softmax(model(x).double(), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def method_maps(model, images: np.ndarray, targets: np.ndarray, methods, settings, normaliser: str,
                seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """{method: (N, H, W) maps in [0, 1]} explaining `targets`, normalised by `normaliser`."""
    from ..attribution import AttributionModel, attribute_batched, normalise

    am = AttributionModel(model)
    out: dict[str, list] = {m: [] for m in methods}
    for _, raw in attribute_batched(am, images, targets, methods, settings, seed=seed):
        for m, r in raw.items():
            out[m].append(normalise(r, normaliser).numpy())
    size = images.shape[1:3]
    return {m: np.concatenate(v) if v else np.zeros((0,) + tuple(size), np.float32) for m, v in out.items()}


def measure_model(model, twins: dict[str, np.ndarray], methods, settings, normaliser: str,
                  seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:  # fmt: skip
    """(`score_table`, maps) of one model on `twins` ('original', 'no_object', 'no_cue' images and
    the 'object' and 'cue' masks): every method explains the model's prediction on the original."""
    probs = {k: probabilities(model, twins[k]) for k in TWINS}
    pred = probs["original"].argmax(1)
    maps = method_maps(model, twins["original"], pred, methods, settings, normaliser=normaliser, seed=seed)
    return score_table(probs, maps, twins["object"], twins["cue"]), maps


def label_rows(t: pd.DataFrame, rows: np.ndarray, labels: np.ndarray, **ids) -> pd.DataFrame:
    """A `score_table` with its images' row numbers and labels, `correct`, and the id columns
    `ids` (family, setting, model, planted) first; `pos` dropped."""
    pos = t["pos"].to_numpy()
    t = t.drop(columns="pos")
    for i, (key, value) in enumerate(ids.items()):
        t.insert(i, key, value)
    t.insert(len(ids), "row", np.asarray(rows, dtype=np.int64)[pos])
    t.insert(len(ids) + 1, "label", np.asarray(labels, dtype=np.int64)[pos])
    t["correct"] = t["pred"].to_numpy() == t["label"].to_numpy()
    return t


def checked_methods(cfg: dict, family: str) -> list[str]:
    """The methods a family checks: `interventions.methods.<family>`, or (null) its stage's methods
    (`bam.benchmark.methods`, `posthoc.methods`)."""
    chosen = (cfg["interventions"].get("methods") or {}).get(family)
    if chosen:
        return list(chosen)
    if family == "bam":
        return list(cfg["bam"]["benchmark"]["methods"])
    if family == "posthoc":
        return list(cfg["posthoc"]["methods"])
    raise SpurlabError(f"interventions: no family '{family}' (bam, posthoc)")


def sample_rows(seed: int, n_rows: int, n: int, family: str) -> np.ndarray:
    """A seeded sample of min(n, n_rows) rows, sorted; one stream per family."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(f"interventions-{family}".encode())]))
    return np.sort(rng.permutation(n_rows)[: min(int(n), n_rows)]).astype(np.int64)
