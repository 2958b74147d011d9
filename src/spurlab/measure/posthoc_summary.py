"""results/posthoc/summary.json and the paper's Tables 1-3 (Adebayo et al. 2022; docs/methods.md#post-hoc-explanation-measures).

- Table 1 (feature attributions): rows K-SSD, K-SSD (SEM), CCM, ..., FAM-GT (SEM); one column per
  signal and method (`<signal>/<method>`), as the paper's Table 1 has one block per task.
- Table 2 (concept activation, TCAV) and Table 3 (training-point ranking, TracIn ICM): rows K-SSD,
  CCM, FAM; per signal the KS test's reject flag (the paper's check mark) and p-value.

The summary holds `spurious_score` (model -> signal -> score for the aligned class, with
`<signal>_ci`), `spurious_score_max` (model -> the highest score over classes and signals, with its
interval) and the scores for every class, `conditions` (model -> normal | spurious | neither),
`attribution` (signal -> method -> kssd | ccm | fam | famgt -> {mean, sem, n, mean_ci}; intervals:
docs/methods.md#bootstrap-intervals), `tcav_ks` and `icm_ks` (signal -> metric ->
{reject, p_value, statistic}), the TCAV and ICM means behind them, `findings` (the paper's claims
checked on this benchmark) and the study analysis of the simulated responses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import contamination_signals, posthoc_models
from ..errors import SpurlabError
from ..io import write_json
from ..io.tables import read_table, table_provenance, write_table
from ..stats import mean_ci
from .attribution_similarity import MEASURES

LABELS = {"kssd": "K-SSD", "ccm": "CCM", "fam": "FAM", "famgt": "FAM-GT"}


def mean_sem(values, seed: int | None = None, key: str = "") -> dict:
    """{mean, sem, n} of the finite `values`; with a `seed`, also `mean_ci`, the bootstrap interval
    of the mean over them (the images; docs/methods.md#bootstrap-intervals)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    out = {"mean": float(v.mean()) if len(v) else float("nan"), "sem": sem, "n": int(len(v))}
    if seed is not None:
        out["mean_ci"] = mean_ci(v, seed, key)
    return out


def _with_ci(score: float, low: float, high: float) -> tuple[float, list | None]:
    """A score table's number and its interval columns (None where NaN)."""
    return float(score), [float(low), float(high)] if np.isfinite(low) and np.isfinite(high) else None


def _scores(per: pd.DataFrame, cond: pd.DataFrame, models: list[str], sigs: list[str]) -> dict:
    """`spurious_score` (model -> signal -> aligned-class score, `<signal>_ci` its interval) and
    `spurious_score_max` (model -> {max, max_ci}: the highest score over classes and signals)."""
    if "score_ci_low" not in per:  # a scores table without intervals
        per, cond = (
            per.assign(score_ci_low=np.nan, score_ci_high=np.nan),
            cond.assign(score_ci_low=np.nan, score_ci_high=np.nan),
        )
    out, top = {}, {}
    for m in models:
        out[m] = {}
        for s in sigs:
            r = per[(per.model == m) & (per.signal == s) & per.aligned].iloc[0]
            out[m][s], out[m][f"{s}_ci"] = _with_ci(r.score, r.score_ci_low, r.score_ci_high)
        r = cond.loc[m]
        v, ci = _with_ci(r.score, r.score_ci_low, r.score_ci_high)
        top[m] = {"max": v, "max_ci": ci}
    return {"spurious_score": out, "spurious_score_max": top}


def table1(attribution: dict) -> pd.DataFrame:
    cols = {f"{s}/{m}": v for s, by in attribution.items() for m, v in by.items()}
    rows = []
    for k in MEASURES:
        rows.append({"metric": LABELS[k], **{c: v[k]["mean"] for c, v in cols.items()}})
        rows.append({"metric": f"{LABELS[k]} (SEM)", **{c: v[k]["sem"] for c, v in cols.items()}})
    return pd.DataFrame(rows)


def ks_table(ks: dict) -> pd.DataFrame:
    rows = []
    for k in ("kssd", "ccm", "fam"):
        row = {"metric": LABELS[k]}
        for s, by in ks.items():
            row[f"{s} reject"] = by[k]["reject"]
            row[f"{s} p"] = by[k]["p_value"]
        rows.append(row)
    return pd.DataFrame(rows)


def _study_record(study_analysis: str | Path) -> dict:
    """The simulated study's planted effect and, per group and condition, its test against control."""
    study = json.loads(Path(study_analysis).read_text())
    planted = study.get("planted", {})
    rec = {}
    for c in study["conditions"]:
        row = c["methods"].get(planted.get("method"), {})
        rec[f"{c['group']}/{c['condition']}"] = {"diff_vs_control": row.get("diff_vs_control"), "p_diff": row.get("p_diff"),
                                                 "reject": row.get("reject_diff"), "anova_p": c["anova"]["p_value"]}  # fmt: skip
    return {"planted": planted, "by_condition": rec}


def run_summary(cfg: dict, scores: str | Path, attributions: dict[str, str], tcav: str | Path, influence: str | Path,
                study_analysis: str | Path, out: str | Path, tables_dir: str | Path) -> dict:  # fmt: skip
    from .influence import ks_tables as icm_ks_tables
    from .tcav_tests import ks_tables as tcav_ks_tables

    p = cfg["posthoc"]
    seed = int(p["seed"])  # of the bootstrap intervals
    sigs = contamination_signals(cfg)
    if sorted(attributions) != sorted(sigs):
        raise SpurlabError(
            f"posthoc summary: attribution tables for {sorted(attributions)}, the config has signals {sigs}"
        )
    sc = read_table(scores)
    models_sha = table_provenance(scores)["models"]
    for path in [tcav, influence, *attributions.values()]:
        for m, sha in table_provenance(path)["models"].items():
            if models_sha.get(m) != sha:
                raise SpurlabError(f"{path}: made from another checkpoint of model {m} than {scores}")
    per = sc[sc.signal != "*"]
    cond = sc[sc.signal == "*"].set_index("model")
    summary: dict = {
        "aligned_class": cfg["contamination"]["aligned_class"],
        "thresholds": p["thresholds"],
        **_scores(per, cond, posthoc_models(cfg), sigs),
        "spurious_score_by_class": {
            m: {s: dict(zip(g["class"], g.score.astype(float))) for s, g in per[per.model == m].groupby("signal")}
            for m in posthoc_models(cfg)
        },  # fmt: skip
        "conditions": {m: cond.loc[m, "condition"] for m in posthoc_models(cfg)},
        "conditions_met": {m: bool(cond.loc[m, "meets"]) for m in posthoc_models(cfg)},
    }
    unmet = [m for m, ok in summary["conditions_met"].items() if not ok]
    if unmet:
        summary["knobs"] = {"models": unmet, "adjust": cond.loc[unmet[0], "knobs"]}
    attribution = {}
    for s in sigs:
        df = read_table(attributions[s])
        attribution[s] = {m: {k: mean_sem(g[k], seed, f"{s}-{m}-{k}") for k in MEASURES}
                          for m, g in df.groupby("method", sort=False)}  # fmt: skip
    summary["attribution"] = attribution
    tc, inf = read_table(tcav), read_table(influence)
    alpha = float(p["ks_alpha"])
    summary["tcav_ks"] = tcav_ks_tables(tc, sigs, alpha)
    summary["icm_ks"] = icm_ks_tables(inf, sigs, alpha)
    summary["tcav_scores"] = {m: {f"{c} x_{i}": float(g.score.mean()) for (c, i), g in tc[tc.model == m].groupby(["concept", "inputs"])}
                              for m in posthoc_models(cfg)}  # fmt: skip
    summary["tcav_random_score"] = {m: float(tc[tc.model == m].random_score.mean()) for m in posthoc_models(cfg)}
    summary["icm"] = {m: {f"{s} x_{i}": mean_sem(g.icm) for (s, i), g in inf[inf.model == m].groupby(["signal", "inputs"])}
                      for m in posthoc_models(cfg)}  # fmt: skip
    summary["aligned_fraction"] = {m: {f"{s} x_{i}": float(g.aligned_fraction.mean()) for (s, i), g in inf[inf.model == m].groupby(["signal", "inputs"])}
                                   for m in posthoc_models(cfg)}  # fmt: skip
    visible = [s for s in sigs if cfg["contamination"]["signals"][s]["type"] != "blur"]
    blur = [s for s in sigs if cfg["contamination"]["signals"][s]["type"] == "blur"]
    methods = list(p["methods"])
    findings = {
        "fam_above_ccm": {
            s: {m: attribution[s][m]["fam"]["mean"] > attribution[s][m]["ccm"]["mean"] for m in methods}
            for s in visible
        },
    }
    if blur:
        b = blur[0]
        findings["kssd_visible_above_blur"] = {s: {m: attribution[s][m]["kssd"]["mean"] > attribution[b][m]["kssd"]["mean"] for m in methods}
                                               for s in visible}  # fmt: skip
    summary["findings"] = findings
    summary["study_simulated"] = _study_record(study_analysis)
    tables_dir = Path(tables_dir)
    prov = {"scores": str(scores), "models": models_sha, "ks_alpha": alpha}
    write_table(table1(attribution), tables_dir / "table1_attributions.parquet", prov)
    write_table(ks_table(summary["tcav_ks"]), tables_dir / "table2_tcav_ks.parquet", prov)
    write_table(ks_table(summary["icm_ks"]), tables_dir / "table3_influence_ks.parquet", prov)
    write_json(out, summary)
    return summary
