"""results/interventions/summary.json and its figure (docs/methods.md#interventional-checks-of-explanations).

Per family (bam, posthoc): deletion, preservation, agreement and their mean (`interventional`)
per method and for the baselines (`spurlab.measure.interventions.method_scores`), per model the
planted order (`planted_order`) and, for posthoc, the scores per signal and each contaminated
model's cue reliance against the normal model (`cue_reliance`); `planted_order_holds` combines
them (`planted_truth_holds`). Per model of the suite:
the background-swap flip rates (`spurlab.measure.background_swap.summarize_background`).
`ranking_agreement`: Spearman's rho and Kendall's tau between each family's correlational ranking
of methods (BAM: MCS from results/bam/summary.json; posthoc: K-SSD from
results/posthoc/summary.json, the mean over signals) and the interventional one.

The family tables must come from the checkpoints the correlational stage used: their provenance
`models` hashes are checked against the BAM contrast table and the post hoc attribution tables.
The summary's `inputs` records the sha256 of every file it read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SpurlabError
from ..io import sha256_file, write_json
from ..io.tables import read_table, table_provenance
from .background_swap import summarize_background
from .interventions import (
    checked_methods,
    cue_reliance,
    method_scores,
    planted_order,
    planted_truth_holds,
    ranking_agreement,
)
from .interventions_figures import summary_figure

TABLE_COLUMNS = ["family", "setting", "model", "planted", "row", "method", "pred", "pred_no_object", "pred_no_cue",
                 "drop_object", "drop_cue", "flip_object", "flip_cue", "top_part", "deletion", "preservation"]  # fmt: skip
CUE_PARTS = {"bam": "the scene (the whole background): X_0s removes the object, X_og the scene",
             "posthoc": "the contamination signal: the clean twin removes it, a re-render without the object the object"}  # fmt: skip


def _json(path, what: str) -> dict:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise SpurlabError(f"{p}: {what} missing") from None
    except json.JSONDecodeError as e:
        raise SpurlabError(f"{p}: not valid JSON (line {e.lineno})") from None


def _same_models(table, others: list) -> None:
    """Every model hash of `table`'s provenance that another table also names must be the same."""
    mine = table_provenance(table)["models"]
    for other in others:
        for m, sha in table_provenance(other).get("models", {}).items():
            if m in mine and mine[m] != sha:
                raise SpurlabError(f"{table}: made from model {m} {mine[m][:12]}..., but {other} from {sha[:12]}...; "
                                   "rebuild it from the current checkpoints")  # fmt: skip


def _family_table(path, methods: list[str]):
    df = read_table(path, columns=TABLE_COLUMNS)
    made = table_provenance(path).get("methods")
    if made != methods:
        raise SpurlabError(f"{path}: provenance 'methods' is {made}, the config asks for {methods}; rebuild it")
    return df


def _correlational(key: str, bam_summary=None, posthoc_summary=None, methods=()) -> dict:
    """{method: score} of the correlational measure: BAM's MCS or post hoc K-SSD (mean over signals)."""
    if key == "mcs":
        s = _json(bam_summary, "BAM summary")
        per = s.get("methods")
        if not isinstance(per, dict):
            raise SpurlabError(f"{bam_summary}: key 'methods' missing (an older bam-summary wrote it); rebuild it")
        return {m: per[m].get("mcs") for m in methods if m in per}
    s = _json(posthoc_summary, "post hoc summary")
    att = s.get("attribution")
    if not isinstance(att, dict) or not att:
        raise SpurlabError(
            f"{posthoc_summary}: key 'attribution' missing (an older posthoc-summary wrote it); rebuild it"
        )
    out = {}
    for m in methods:
        vals = [att[sig][m]["kssd"]["mean"] for sig in att if m in att[sig]]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        out[m] = float(np.mean(vals)) if vals else None
    return out


def _family(df, tolerance: float, cue: str, seed: int = 0) -> dict:
    """A family's scores; the overall ones and the planted order with bootstrap intervals over images."""
    rec = {"cue": cue, "tie_tolerance": tolerance, **method_scores(df, tolerance, seed),
           "models": planted_order(df, seed)}  # fmt: skip
    rec["by_model"] = {str(m): method_scores(g, tolerance)["methods"] for m, g in df.groupby("model", sort=False)}
    if (df["setting"] != "").any():
        rec["cue_reliance"] = cue_reliance(df, seed)
        rec["by_signal"] = {
            str(s): method_scores(g, tolerance)["methods"] for s, g in df.groupby("setting", sort=False)
        }
    return rec


def run_interventions_summary(cfg: dict, out, figure, svg=None, bam=None, bam_contrast=None, bam_summary=None,
                              posthoc=None, posthoc_attributions=(), posthoc_summary=None, background=None,
                              examples=()) -> dict:  # fmt: skip
    """Write the summary (see the module docstring) and its figure (PNG `figure`, `svg`); a
    family whose table is not given is left out. `examples`: the family jobs' example figures,
    named in the summary."""
    iv = cfg["interventions"]
    tol = float(iv["tie_tolerance"])
    summary: dict = {"families": {}, "ranking_agreement": {}, "seed": iv["seed"]}
    inputs = {}
    for fam, table, others, corr in (
        ("bam", bam, [bam_contrast], "mcs"),
        ("posthoc", posthoc, list(posthoc_attributions), "kssd"),
    ):
        if table is None:
            continue
        if not all(others) or (bam_summary if fam == "bam" else posthoc_summary) is None:
            raise SpurlabError(f"interventions summary: the {fam} table needs the {fam} stage's tables and summary")
        methods = checked_methods(cfg, fam)
        df = _family_table(table, methods)
        _same_models(table, others)
        summary["families"][fam] = _family(df, tol, CUE_PARTS[fam], seed=int(iv["seed"]))
        scores = {m: r["interventional"] for m, r in summary["families"][fam]["methods"].items()}
        correlational = _correlational(corr, bam_summary=bam_summary, posthoc_summary=posthoc_summary, methods=methods)
        summary["ranking_agreement"][fam] = ranking_agreement(correlational, scores, corr, seed=int(iv["seed"]))
        for p in [table, *others, bam_summary if fam == "bam" else posthoc_summary]:
            inputs[str(p)] = sha256_file(p)
    if background is not None:
        bg = read_table(background, columns=["model", "flip", "own_background_cue", "correct", "correct_swapped"])
        summary["background_swap"] = {"swap": "mixed_rand", "models": summarize_background(bg, int(iv["seed"]))}
        inputs[str(background)] = sha256_file(background)
    summary["planted_order_holds"] = planted_truth_holds(summary["families"])
    summary["figures"] = [str(figure)] + ([str(svg)] if svg else []) + [str(e) for e in examples]
    summary["inputs"] = inputs
    write_json(out, summary)
    summary_figure(summary, figure, svg)
    return summary
