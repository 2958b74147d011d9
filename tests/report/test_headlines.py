"""results/summary.md prints every headline with its 95% bootstrap interval (docs/methods.md#bootstrap-intervals).

`headline_problems(text)` is the check; tests/test_workflow.py runs it on the tiny workflow's
summary.md, the tests here on a summary written from synthetic stage summaries.
"""

import json
import re

from spurlab.report.summary_md import summary_markdown

NUM = r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?%?"
INTERVAL = re.compile(rf"({NUM}) \[({NUM}), ({NUM})\]")

# table header -> the columns whose every cell is a headline with an interval
HEADLINE_COLUMNS = {
    ("model", "acc", "acc low", "acc high", "mean gap", "eff. robustness"): ("acc", "acc low", "acc high", "mean gap"),
    ("model", "method", "gap before", "gap after", "acc before", "acc after"): (
        "gap before", "gap after", "acc before", "acc after"),
    ("method", "MCS", "MCS random", "IDR", "IDR random", "IIR", "rho k-series"): (
        "MCS", "MCS random", "IDR", "IDR random", "IIR", "rho k-series"),
    ("model", "drop, noise on core", "drop, noise on spurious", "spurious > core"): (
        "drop, noise on core", "drop, noise on spurious"),
    ("model", "spurious AUC before", "after", "acc before", "acc after"): (
        "spurious AUC before", "after", "acc before", "acc after"),
    ("signal", "method", "K-SSD", "CCM", "FAM", "FAM-GT"): ("K-SSD", "CCM", "FAM", "FAM-GT"),
    ("model", "method", "worst-group acc", "vs DFR", "mean acc", "spurious gap", "labels needed", "worst group"): (
        "worst-group acc", "mean acc", "spurious gap"),
    ("method", "deletion", "preservation", "agreement", "interventional"): (
        "deletion", "preservation", "agreement", "interventional"),
    ("model", "flip rate", "own background cue", "other images", "accuracy drop"): (
        "flip rate", "own background cue", "other images", "accuracy drop"),
}  # fmt: skip
# acceptance points (a phrase of the point) -> (intervals its measured cell holds, per model entry ('; ') or in all)
ACCEPTANCE = {"mean counterfactual gap on cue classes": (1, False), "mean counterfactual gap on control classes": (1, False),
              "mean spuriosity AUC": (1, False), "Grad-CAM and TCAV MCS": (3, False),
              "DFR raises": (2, True), "removing the part": (2, True), "noise on spurious regions costs": (2, True)}  # fmt: skip
# bullet (a phrase of it) -> the intervals it holds
BULLETS = {"Spuriosity AUC against planted cues": 1, "Retrieval precision": 1, "Mean gap correlation between models": 1,
           "Gap vs counterfactual correlation": 1, "TCAV MCS": 2, ": Spearman": 2, "Head test accuracy": 1}  # fmt: skip


def _headline_columns(header: tuple) -> tuple:
    """The headline columns of a table: HEADLINE_COLUMNS's, or the posthoc spurious-score table's
    (one column per signal, then the highest score)."""
    if header[0] == "model" and header[-2:] == ("max, any class", "condition"):
        return header[1:-1]
    return HEADLINE_COLUMNS.get(header, ())


def _number(s: str) -> float:
    return float(s[:-1]) / 100 if s.endswith("%") else float(s)


def _tables(lines: list[str]):
    """(header, rows) of every markdown table, cells stripped."""
    for i in range(len(lines) - 1):
        if lines[i].startswith("| ") and lines[i + 1].startswith("|---"):
            cells = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
            rows = []
            for line in lines[i + 2 :]:
                if not line.startswith("| "):
                    break
                rows.append(cells(line))
            yield tuple(cells(lines[i])), rows


def headline_problems(text: str) -> list[str]:
    """What is wrong with summary.md's headlines: a headline cell, bullet or acceptance value
    without its interval, or an interval that does not hold its value (low <= value <= high)."""
    lines, bad, seen = text.splitlines(), [], 0
    for m in INTERVAL.finditer(text):
        value, low, high = map(_number, m.groups())
        if not low - 1e-3 <= value <= high + 1e-3:
            bad.append(f"interval does not hold its value: {m.group(0)}")
    for header, rows in _tables(lines):
        if header == ("stage", "point", "measured", "verdict"):
            for _, point, measured, _ in rows:
                want, per_entry = next((v for phrase, v in ACCEPTANCE.items() if phrase in point), (0, False))
                need = want * (len(measured.split("; ")) if per_entry else 1)
                if measured != "n/a" and len(INTERVAL.findall(measured)) < need:
                    bad.append(f"acceptance '{point}': {measured}")
                seen += bool(want)
        for col in _headline_columns(header):
            j = header.index(col)
            for r in rows:
                seen += 1
                if r[j] != "n/a" and not INTERVAL.fullmatch(r[j]):
                    bad.append(f"table {header[:3]}..., column '{col}', row {r[0]}: {r[j]!r}")
    for phrase, want in BULLETS.items():
        for line in (x for x in lines if x.startswith("- ") and phrase in x):
            seen += 1
            if len(INTERVAL.findall(line)) < want - line.count("n/a"):  # a number that is n/a has none
                bad.append(f"bullet without an interval: {line[:80]}")
    return bad if seen else ["no headline found"]


SUMMARIES = {
    "models": {"cue_class_mean_gap": 0.4, "cue_class_mean_gap_ci": [0.3, 0.5], "control_class_mean_gap": 0.01,
               "control_class_mean_gap_ci": [-0.02, 0.04]},
    "spuriosity": {"spuriosity_auc_mean": 0.95, "spuriosity_auc_mean_ci": [0.9, 0.99],
                   "models": {"m": {"acc": 0.9, "acc_ci": [0.8, 0.95], "acc_low": 0.7, "acc_low_ci": [0.6, 0.8],
                                    "acc_high": 0.95, "acc_high_ci": [0.9, 1.0], "mean_gap": 0.25,
                                    "mean_gap_ci": [0.1, 0.4]}}},
}  # fmt: skip


def test_a_summary_with_every_interval_passes_and_each_missing_one_is_named():
    assert headline_problems(summary_markdown(SUMMARIES)) == []
    for stage, key in (("spuriosity", "spuriosity_auc_mean_ci"), ("models", "cue_class_mean_gap_ci")):
        s = {k: dict(v) for k, v in SUMMARIES.items()}
        del s[stage][key]
        problems = headline_problems(summary_markdown(s))
        assert problems and all("acceptance" in p or "bullet" in p for p in problems), problems
    s = {k: dict(v) for k, v in SUMMARIES.items()}
    s["spuriosity"]["models"] = {"m": {**SUMMARIES["spuriosity"]["models"]["m"], "acc_ci": None}}
    assert headline_problems(summary_markdown(s)) == [
        "table ('model', 'acc', 'acc low')..., column 'acc', row m: '0.9'"
    ]
    s["spuriosity"]["models"]["m"]["acc_ci"] = [0.91, 0.95]  # does not hold 0.9
    assert headline_problems(summary_markdown(s)) == ["interval does not hold its value: 0.9 [0.91, 0.95]"]
    assert headline_problems("# nothing\n") == ["no headline found"]


def _est(v: float) -> dict:
    return {"mean": v, "sem": 0.01, "n": 9, "mean_ci": [v - 0.05, v + 0.05]}


MORE = {
    "salient": {"headline_sigma": 0.25, "drake": {"m": {"0.25": {
        "drop_core_noise": 0.1, "drop_core_noise_ci": [0.05, 0.15], "drop_spurious_noise": 0.4,
        "drop_spurious_noise_ci": [0.3, 0.5], "spurious_exceeds_core": True}}}},
    "spuriosity": {"gap_correlation_mean": 0.6, "gap_correlation_mean_ci": [0.2, 0.8], "gap_vs_counterfactual_r_mean": 0.7,
                   "gap_vs_counterfactual_r_mean_ci": [0.4, 0.9], "audited_models": ["m"]},
    "npca": {"models": {"m": {"retrieved_auc_before": 0.6, "retrieved_auc_before_ci": [0.5, 0.7],
                              "retrieved_auc_after": 0.8, "retrieved_auc_after_ci": [0.7, 0.9], "acc_before": 0.9,
                              "acc_before_ci": [0.85, 0.95], "acc_after": 0.89, "acc_after_ci": [0.84, 0.94]}}},
    "bam": {"tcav_mcs": 0.3, "tcav_mcs_ci": [0.2, 0.4], "tcav_mcs_random_baseline": 0.0,
            "tcav_mcs_random_baseline_ci": [-0.1, 0.1],
            "methods": {"gradcam": {"mcs": 0.5, "mcs_ci": [0.4, 0.6], "mcs_random_baseline": 0.1,
                                    "mcs_random_baseline_ci": [0.0, 0.2], "idr": 0.9, "idr_ci": [0.8, 1.0],
                                    "idr_random_baseline": 0.5, "idr_random_baseline_ci": [0.4, 0.6], "iir": 0.7,
                                    "iir_ci": [0.6, 0.8], "rho_k_series": 0.9, "rho_k_series_ci": [0.5, 1.0]},
                        "gradient": {"mcs": 0.2, "mcs_ci": [0.1, 0.3]}}},
    "posthoc": {"conditions": {"m": "spurious"}, "spurious_score": {"m": {"tag": 0.9, "tag_ci": [0.85, 0.95]}},
                "spurious_score_max": {"m": {"max": 0.9, "max_ci": [0.85, 0.95]}},
                "attribution": {"tag": {"gradient": {k: _est(0.2) for k in ("kssd", "ccm", "fam", "famgt")}}}},
    "lightweight": {"head_test_acc": 0.95, "head_test_acc_ci": [0.9, 0.99]},
    "interventions": {"ranking_agreement": {"bam": {"spearman": 0.8, "spearman_ci": [0.2, 1.0], "kendall": 0.6,
                                                    "kendall_ci": [0.1, 1.0], "n": 5,
                                                    "interventional_ranking": ["gradcam", "gradient"]}}},
}  # fmt: skip


def test_every_stage_headline_with_its_interval_passes_and_each_missing_one_is_named():
    assert headline_problems(summary_markdown(MORE)) == []
    cases = {("salient", "drake", "m", "0.25", "drop_core_noise_ci"): "drop, noise on core",
             ("npca", "models", "m", "acc_after_ci"): "acc after",
             ("bam", "methods", "gradcam", "rho_k_series_ci"): "rho k-series",
             ("posthoc", "spurious_score", "m", "tag_ci"): "'tag'",
             ("posthoc", "spurious_score_max", "m", "max_ci"): "max, any class",
             ("posthoc", "attribution", "tag", "gradient", "fam", "mean_ci"): "'FAM'",
             ("bam", "tcav_mcs_random_baseline_ci"): "TCAV MCS", ("lightweight", "head_test_acc_ci"): "Head test",
             ("spuriosity", "gap_correlation_mean_ci"): "Mean gap correlation",
             ("interventions", "ranking_agreement", "bam", "kendall_ci"): "Spearman"}  # fmt: skip
    for path, named in cases.items():
        s = json.loads(json.dumps(MORE))
        node = s
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
        problems = headline_problems(summary_markdown(s))  # the line, and the acceptance cell that quotes it
        assert any(named in p for p in problems), (path, problems)
        assert all(named in p or p.startswith("acceptance") for p in problems), (path, problems)
