"""The `bam` target's headline numbers (results/bam/summary.json) and figure (Yang & Kim 2019,
Figs. 2, 4, 6, 8, 10): per method MCS f_o vs f_s with its random-region baseline, the k-series
MCS against k = 1.0 and its Pearson rho with the accuracy drop, IDR (with two random baselines:
regions outside the object, and the same regions overlapping it; the mean over methods of the
first, `idr_random_baseline_mean`), IIR at t; TCAV's MCS; the verification accuracies and the
k-series accuracy drops.

Every input table's provenance is checked against the models and image sets it claims: the
tables must come from the same checkpoints (hashes) as the verification table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import kseries_codes
from ..errors import SpurlabError
from ..io import write_json
from ..io.figures import save_figure
from ..io.tables import read_table, table_provenance
from ..stats import bootstrap_ci
from .bam_attributions import part_rng
from .bam_metrics import idr, iir, mcs, pearson, trial_sd
from .bam_verification import accuracy_drops, verification_record


def _g(df: pd.DataFrame, model: str, set_name: str, region: str, how: tuple[str, str]) -> pd.Series:
    """Region means g_c of one model on one set and region, for how = (method, normaliser)."""
    method, normaliser = how
    sel = df[(df["model"] == model) & (df["set"] == set_name) & (df["method"] == method)
             & (df["normaliser"] == normaliser) & (df["region"] == region)]  # fmt: skip
    return sel.set_index("row")["g"]


def _r(x, digits: int = 4):
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else round(float(x), digits)


def _check_models(tables: dict[str, str], models: dict[str, str]) -> None:
    """Each table's provenance must name the same checkpoint hashes as the verification table."""
    for path in tables.values():
        for m, sha in table_provenance(path).get("models", {}).items():
            if m in models and models[m] != sha:
                raise SpurlabError(f"{path}: made from model {m} {sha[:12]}..., but the verification table used "
                                   f"{models[m][:12]}...; rebuild it")  # fmt: skip


def _mcs_entries(e: dict, con: pd.DataFrame, how: tuple[str, str], trial: int, rng, seed: int = 0) -> None:
    """MCS f_o vs f_s on X_os (object regions, and the random-region baseline), with trial SDs."""
    for region, key in (("object", "mcs"), ("random", "mcs_random_baseline")):
        go, gs = _g(con, "f_o", "bam_os_test", region, how), _g(con, "f_s", "bam_os_test", region, how)
        go, gs = go.align(gs, join="inner")
        e[key] = _r(mcs(go.to_numpy(), gs.to_numpy()))
        e[f"{key}_sd"] = _r(trial_sd(mcs, (go.to_numpy(), gs.to_numpy()), trial, rng))
        e[f"{key}_ci"] = bootstrap_ci([go.to_numpy(), gs.to_numpy()], mcs, seed, f"{key}-{how[0]}")
    e["mcs_n"] = int(len(go))


def idr_pairs(con: pd.DataFrame, how: tuple[str, str], region: str) -> pd.DataFrame:
    """The pairs IDR is computed on, one row per image (index: the image's row): f_s's g_c on
    `region` with the object (`g_cf`, X_os) and without it (`g_no`, X_0s), on the images f_s
    classifies correctly without it."""
    ok0 = con[(con["model"] == "f_s") & (con["set"] == "bam_0s_test")].groupby("row")["correct"].first()
    g_cf = _g(con, "f_s", "bam_os_test", region, how)
    g_no = _g(con, "f_s", "bam_0s_test", region, how)
    g_cf, g_no = g_cf.align(g_no, join="inner")
    keep = ok0.reindex(g_cf.index).fillna(False).to_numpy(bool)
    return pd.DataFrame({"g_cf": g_cf.to_numpy()[keep], "g_no": g_no.to_numpy()[keep]}, index=g_cf.index[keep])


def _idr_entries(e: dict, con: pd.DataFrame, how: tuple[str, str], trial: int, rng, seed: int = 0) -> pd.DataFrame:
    """IDR: f_s with the object (X_os) vs without it (X_0s), pairs f_s classifies correctly both
    times; the baseline's random regions exclude the object: overlapping ones mostly measure it.
    Returns the baseline's pairs (`idr_pairs`), for the mean over methods (`idr_mean_ci`)."""
    out = {}
    for region, key in (
        ("object", "idr"),
        ("random_outside", "idr_random_baseline"),
        ("random", "idr_random_overlapping"),
    ):
        out[key] = pairs = idr_pairs(con, how, region)
        a, c = pairs["g_cf"].to_numpy(), pairs["g_no"].to_numpy()
        e[key] = _r(idr(a, c))
        e[f"{key}_sd"] = _r(trial_sd(idr, (a, c), trial, rng))
        e[f"{key}_ci"] = bootstrap_ci([a, c], idr, seed, f"{key}-{how[0]}")
    e["idr_n"] = int(len(pairs))
    return out["idr_random_baseline"]


def idr_mean_ci(pairs: dict[str, pd.DataFrame], seed: int, key: str) -> list | None:
    """The bootstrap interval of the mean over methods of IDR (each method's `idr_pairs`): the
    images are resampled, and one resample serves every method (an image keeps its pairs of all
    methods; one a method lacks counts for the others only), so the interval is over images, as the
    per-method ones, not over the handful of methods."""
    pairs = {m: p for m, p in pairs.items() if len(p)}
    if not pairs:
        return None
    rows = sorted(set().union(*(p.index for p in pairs.values())))
    a = np.column_stack([p["g_cf"].reindex(rows).to_numpy(float) for p in pairs.values()])
    c = np.column_stack([p["g_no"].reindex(rows).to_numpy(float) for p in pairs.values()])

    def mean_idr(a, c):  # idr leaves out the rows where a method has no pair (NaN)
        return float(np.mean([idr(a[:, j], c[:, j]) for j in range(a.shape[1])]))

    return bootstrap_ci([a, c], mean_idr, seed, key)


def idr_random_mean(per_method: dict, pairs: dict[str, pd.DataFrame], seed: int) -> dict:
    """`idr_random_baseline_mean`: the mean over methods of their random-region IDR (the methods
    that have one; BAM's check that random regions give about 50%), and its interval over images
    (`idr_mean_ci`)."""
    have = [m for m, e in per_method.items() if e.get("idr_random_baseline") is not None]
    mean = sum(per_method[m]["idr_random_baseline"] for m in have) / len(have) if have else None
    ci = idr_mean_ci({m: pairs[m] for m in have}, seed, "idr-random-baseline-mean") if have else None
    return {"idr_random_baseline_mean": mean, "idr_random_baseline_mean_ci": ci}


def _iir_entries(e: dict, iir_df: pd.DataFrame, how: tuple[str, str], trial: int, rng, t: float,
                 seed: int = 0) -> None:  # fmt: skip
    """IIR at threshold t: f_s on X_0s against X_0s + delta, object regions."""
    gx, gxd = _g(iir_df, "f_s", "bam_0s_test", "object", how), _g(iir_df, "f_s", "bam_0s_test+delta", "object", how)
    gx, gxd = gx.align(gxd, join="inner")
    e["iir"] = _r(iir(gx.to_numpy(), gxd.to_numpy(), t))
    e["iir_sd"] = _r(trial_sd(lambda a, c: iir(a, c, t), (gx.to_numpy(), gxd.to_numpy()), trial, rng))
    e["iir_ci"] = bootstrap_ci([gx.to_numpy(), gxd.to_numpy()], lambda a, c: iir(a, c, t), seed, f"iir-{how[0]}")
    e["iir_n"] = int(len(gx))


def _k_series(ks: dict[str, pd.DataFrame], codes: list[str], how: tuple[str, str]) -> tuple[dict, list[dict]]:
    """k-series: G_c(f_k) - G_c(f_1.0) on the same rows, both correct; {k: mcs} and figure rows."""
    ref = ks["k100"]
    series, rows = {}, []
    for c in codes:
        gk = _g(ks[c], f"f_{c}", f"bam_{c}_test", "object", how)
        g1 = _g(ref, "f_k100", "bam_k100_test", "object", how)
        okk = ks[c].groupby("row")["correct"].first()
        ok1 = ref.groupby("row")["correct"].first()
        gk, g1 = gk.align(g1, join="inner")
        keep = (okk.reindex(gk.index).fillna(False) & ok1.reindex(gk.index).fillna(False)).to_numpy(bool)
        series[int(c[1:]) / 100] = mcs(gk.to_numpy()[keep], g1.to_numpy()[keep])
        rows.append({"method": how[0], "k": int(c[1:]) / 100, "mcs": series[int(c[1:]) / 100], "n": int(keep.sum())})
    return series, rows


def tcav_runs(tc: pd.DataFrame, model: str, column: str, kept: bool) -> np.ndarray:
    """(R, L) per-run TCAV scores of a model (`column`: concept_scores or random_scores), one column
    per layer: the layers its combined score keeps (`kept`), or every layer."""
    import json

    rows = tc[(tc["model"] == model) & (tc["layer"] != "combined")]
    if kept:
        layers = json.loads(tc[(tc["model"] == model) & (tc["layer"] == "combined")]["concept_scores"].iloc[0])
        rows = rows[rows["layer"].isin(layers)]
    runs = max((len(json.loads(v)) for v in tc.loc[tc["model"] == model, "random_scores"]), default=0)
    return np.array([json.loads(v) for v in rows[column]], float).reshape(len(rows), runs).T


def tcav_mcs_ci(tc: pd.DataFrame, column: str, kept: bool, seed: int, key: str) -> list | None:
    """The bootstrap interval of TCAV's MCS (f_o's combined score minus f_s's), the runs (concept
    CAVs, each against its random set) resampled with their scores in every layer; the layers kept
    stay those of the t-tests (`combine_layers`; none kept: the score is 0)."""
    o, s = tcav_runs(tc, "f_o", column, kept), tcav_runs(tc, "f_s", column, kept)
    if len(o) != len(s):
        return None

    def mcs_of(a, b):
        return (a.mean() if a.size else 0.0) - (b.mean() if b.size else 0.0)

    return bootstrap_ci([o, s], mcs_of, seed, key)


def rho_ci(x, y, seed: int, key: str) -> list | None:
    """The bootstrap interval of Pearson's rho over the k-series: the k values (with their MCS and
    accuracy drop) resampled; the resamples where rho is undefined (one distinct k) left out."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    return bootstrap_ci([x, y], lambda a, b: np.nan if (r := pearson(a, b)) is None else r, seed, key,
                        drop_undefined=True)  # fmt: skip


def _tcav_entries(tc: pd.DataFrame, codes: list[str], k_values: list[float], drops: dict, drops_all: dict,
                  seed: int = 0) -> dict:  # fmt: skip
    """TCAV's MCS (f_o vs f_s), its random baseline (with their intervals over the runs), its
    k-series and their rho with the drops."""
    comb = tc[tc["layer"] == "combined"].set_index("model")
    tcav_series = {k: float(comb.loc[f"f_{c}", "score"] - comb.loc["f_k100", "score"]) for k, c in zip(k_values, codes)}
    return {
        "tcav_mcs": _r(comb.loc["f_o", "score"] - comb.loc["f_s", "score"]),
        "tcav_mcs_ci": tcav_mcs_ci(tc, "concept_scores", True, seed, "tcav-mcs"),
        "tcav_mcs_random_baseline": _r(comb.loc["f_o", "random_score"] - comb.loc["f_s", "random_score"]),
        "tcav_mcs_random_baseline_ci": tcav_mcs_ci(tc, "random_scores", False, seed, "tcav-mcs-random"),
        "tcav_scores": {m: _r(v) for m, v in comb["score"].items()},
        "tcav_mcs_k_series": {f"{k:g}": _r(v) for k, v in tcav_series.items()},
        "tcav_rho_k_series": _r(pearson([tcav_series[k] for k in k_values], [drops[k] for k in k_values])),
        "tcav_rho_k_series_cf_scenes": _r(
            pearson([tcav_series[k] for k in k_values], [drops_all[k] for k in k_values])
        ),
    }


def run_bam_summary(cfg: dict, verification: str, contrast: str, kseries: dict[str, str], iir_table: str, tcav: str,
                    out: str | Path, figure: str | Path) -> dict:  # fmt: skip
    b = cfg["bam"]["benchmark"]
    methods, norm, trial = list(b["methods"]), b["normaliser"], int(b["trial_size"])
    codes = kseries_codes(cfg)
    if set(kseries) != set(codes):
        raise SpurlabError(f"bam summary: k-series tables for {sorted(kseries)}, config defines {codes}")
    models = table_provenance(verification)["models"]
    _check_models({"contrast": contrast, "iir": iir_table, "tcav": tcav, **kseries}, models)
    ver = read_table(verification)
    con = read_table(contrast)
    iir_df = read_table(iir_table)
    ks = {c: read_table(p) for c, p in kseries.items()}
    tc = read_table(tcav)
    drops = accuracy_drops(ver, "first_scene")
    drops_all = accuracy_drops(ver, "cf_scenes")
    k_values = [int(c[1:]) / 100 for c in codes]
    t = float(b["iir"]["threshold"])
    per_method: dict = {}
    series_rows, random_pairs = [], {}
    for method in methods:
        e: dict = {}
        rng = part_rng(b["seed"], f"trials-{method}")
        how = (method, norm)
        _mcs_entries(e, con, how, trial, rng, seed=int(b["seed"]))
        random_pairs[method] = _idr_entries(e, con, how, trial, rng, seed=int(b["seed"]))
        _iir_entries(e, iir_df, how, trial, rng, t=t, seed=int(b["seed"]))
        series, rows = _k_series(ks, codes, how)
        series_rows += rows
        e["mcs_k_series"] = {f"{k:g}": _r(v) for k, v in series.items()}
        e["rho_k_series"] = _r(pearson([series[k] for k in k_values], [drops[k] for k in k_values]))
        e["rho_k_series_ci"] = rho_ci([series[k] for k in k_values], [drops[k] for k in k_values], int(b["seed"]),
                                      f"rho-{method}")  # fmt: skip
        # the drop over every scene class carrying the object: more images than the first scene's
        e["rho_k_series_cf_scenes"] = _r(pearson([series[k] for k in k_values], [drops_all[k] for k in k_values]))
        per_method[method] = e
    summary = {
        "methods": per_method,
        **idr_random_mean(per_method, random_pairs, int(b["seed"])),
        **_tcav_entries(tc, codes, k_values, drops, drops_all, seed=int(b["seed"])),
        "verification": verification_record(ver),
        "k_series_accuracy_drop": {f"{k:g}": _r(v) for k, v in drops.items()},
        "k_series_accuracy_drop_cf_scenes": {f"{k:g}": _r(v) for k, v in drops_all.items()},
        "normaliser": norm,
        "iir_threshold": t,
        "trial_size": trial,
        "delta": _delta_stats(iir_df),
        "ranking_mcs": sorted(
            per_method, key=lambda m: -(per_method[m]["mcs"] if per_method[m]["mcs"] is not None else -1e9)
        ),
    }
    summary["gradcam_mcs_exceeds_gradient"] = bool((per_method.get("gradcam", {}).get("mcs") or -1e9)
                                                  > (per_method.get("gradient", {}).get("mcs") or 1e9))  # fmt: skip
    summary["tcav_mcs_exceeds_gradient"] = bool((summary["tcav_mcs"] if summary["tcav_mcs"] is not None else -1e9)
                                               > (per_method.get("gradient", {}).get("mcs") or 1e9))  # fmt: skip
    write_json(out, summary)
    bam_figure(summary, pd.DataFrame(series_rows), k_values, drops, figure)
    return summary


def _delta_stats(df: pd.DataFrame) -> dict:
    if "output_change" not in df.columns or not len(df):
        return {}
    d = df[df["set"] == "bam_0s_test+delta"].groupby("row").first()
    return {
        "n": int(len(d)),
        "output_change_median": _r(d["output_change"].median()),
        "output_change_start_median": _r(d["output_change_start"].median()),
        "same_prediction": _r(d["same_prediction"].mean()),
        "outside_mask_max": _r(d["outside_mask_max"].max(), 6),
    }


def bam_figure(summary: dict, series: pd.DataFrame, k_values, drops, path, svg=None) -> None:
    """Left: MCS f_o vs f_s per method with the random-region baseline and trial SDs (paper Fig. 4).
    Right: k-series MCS per method and the accuracy drop on removing the common object (Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(summary["methods"])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
    x = np.arange(len(methods) + 1)
    vals = [summary["methods"][m]["mcs"] or 0 for m in methods] + [summary["tcav_mcs"] or 0]
    base = [summary["methods"][m]["mcs_random_baseline"] or 0 for m in methods] + [
        summary["tcav_mcs_random_baseline"] or 0
    ]
    sds = [summary["methods"][m]["mcs_sd"] or 0 for m in methods] + [0]
    a1.bar(x - 0.2, vals, 0.4, yerr=sds, label="object regions", color="tab:blue")
    a1.bar(x + 0.2, base, 0.4, label="random regions (baseline)", color="tab:orange")
    a1.set_xticks(x, methods + ["tcav"], rotation=40, ha="right")
    a1.axhline(0, color="k", lw=0.5)
    a1.set_ylabel("MCS  f_o vs f_s")
    a1.set_title("Model contrast score (higher is better)")
    a1.legend(fontsize=8)
    for m in methods:
        s = series[series["method"] == m].sort_values("k")
        a2.plot(s["k"], s["mcs"], marker="o", label=f"{m} (rho {summary['methods'][m]['rho_k_series']})")
    tk = summary["tcav_mcs_k_series"]
    a2.plot(
        k_values,
        [tk[f"{k:g}"] for k in k_values],
        ls=":",
        marker="s",
        color="tab:blue",
        label=f"tcav (rho {summary['tcav_rho_k_series']})",
    )
    a2.plot(k_values, [drops[k] for k in k_values], ls="--", color="k", label="accuracy drop without CF")
    a2.set_xlabel("commonality k")
    a2.set_ylabel("MCS vs k = 1.0  /  accuracy drop")
    a2.set_title("k-series")
    a2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, path, svg)  # svg: the report's copy


__all__ = ["run_bam_summary", "bam_figure"]
