"""results/summary.md: each paper's headline numbers and the planted-truth scores, one sentence each.

Every stage contributes a section; a stage without a writer here (a new one) gets
its top-level numbers listed, so adding a stage to the report's summary list is enough.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import SpurlabError
from ..io import atomic_path
from ..stats import CI_SUFFIX
from .acceptance import acceptance_points


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:.{digits}g}" if isinstance(x, float) else str(x)
    return str(x)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _v(s: dict, key: str, fmt=_f) -> str:
    """A headline number as `value [low, high]`, with its 95% bootstrap interval `<key>_ci`
    (docs/methods.md#bootstrap-intervals), or the value alone where the summary has none."""
    v, ci = s.get(key), s.get(f"{key}{CI_SUFFIX}")
    return f"{fmt(v)} [{fmt(ci[0])}, {fmt(ci[1])}]" if v is not None and ci else fmt(v)


def _kind(s: dict, key: str, kind: str, fmt=_f) -> str:
    """`_v` of one kind's entry of a per-kind number ({kind: value}, intervals {kind: [low, high]}
    under `<key>_ci`)."""
    ci = (s.get(f"{key}{CI_SUFFIX}") or {}).get(kind)
    return _v({kind: (s.get(key) or {}).get(kind), f"{kind}{CI_SUFFIX}": ci}, kind, fmt)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return out + [""]


def _salient(s: dict) -> list[str]:
    sig = s.get("headline_sigma")
    out = ["## Salient ImageNet (Singla & Feizi 2022)", "",
           f"- **{s.get('n_spurious')} of {s.get('n_pairs')} class-feature pairs annotated spurious**, in "
           f"{s.get('n_classes_with_spurious')} classes: that many of the top neural features a class relies on "
           "fire on something other than the object.",
           f"- **Planted cues recovered: {_v(s, 'planted_cues_recovered', _pct)}**: the share of planted "
           "(class, cue) pairs for which some top feature was annotated spurious and localises the cue.",
           f"- **Automatic annotator precision {_v(s, 'auto_annotator_precision')}, recall "
           f"{_v(s, 'auto_annotator_recall')}** against the planted truth (a feature that shows a planted cue, or "
           "one that a planted background cue switches off): recall 1 means no truly spurious feature was missed; "
           f"counting only features that show a cue, precision is {_f(s.get('auto_annotator_precision_presence_only'))}.",
           ""]  # fmt: skip
    cov = s.get("coverage")
    if cov:
        out.insert(
            3,
            f"- **Human answers cover {cov['answered_and_exported']} of {cov['exported']} exported pairs**: "
            f"{s.get('n_unannotated')} unannotated, {s.get('n_undecided')} without a majority; answers to "
            f"{cov['answered_not_exported']} pairs that were not exported were not used.",
        )
    rows = []
    for m, by_sigma in (s.get("drake") or {}).items():
        e = by_sigma.get(str(sig)) or by_sigma.get(f"{sig:g}" if isinstance(sig, float) else str(sig)) or {}
        if e:
            rows.append([m, _v(e, "drop_core_noise"), _v(e, "drop_spurious_noise"), e.get("spurious_exceeds_core")])
    if rows:
        out += [
            f"Accuracy drop at noise sigma {sig} (eqs. 3-4, classes with both core and spurious features): "
            "noise on spurious regions vs noise on core regions. A larger drop under spurious-region noise "
            "means the model leans on the spurious feature more than on the object.",
            "",
        ]
        out += _table(["model", "drop, noise on core", "drop, noise on spurious", "spurious > core"], rows)
    onset = [[m, f"{e['sigma']:g}", _v(e, "drop_core_noise"), _v(e, "drop_spurious_noise"), e.get("spurious_exceeds_core")]
             for m, e in (s.get("drake_onset") or {}).items() if e]  # fmt: skip
    if onset:
        out += ["The same comparison where noise starts to cost each model accuracy (its onset sigma: the smallest "
                "at which either drop's interval lies above 0); at larger sigmas a model that noise breaks loses "
                "every image under either noise, and the comparison then reflects the regions' areas.", ""]  # fmt: skip
        out += _table(
            ["model", "onset sigma", "drop, noise on core", "drop, noise on spurious", "spurious > core"], onset
        )
    return out


def _spuriosity(s: dict) -> list[str]:
    out = ["## Spuriosity Rankings (Moayeri et al. 2023)", "",
           f"- **Mean gap correlation between models {_v(s, 'gap_correlation_mean')}**: models trained "
           "differently still find the same classes' low-spuriosity images hard when this is high "
           "(interval over the classes).",
           f"- **Spuriosity AUC against planted cues {_v(s, 'spuriosity_auc_mean')}**: how well the "
           "ranking puts images carrying the planted cue above those without it (0.5 is chance).",
           f"- **Gap vs counterfactual correlation {_v(s, 'gap_vs_counterfactual_r_mean')}** (mean over "
           "models, interval over the classes): whether the measured class gaps track the true counterfactual "
           "reliance on the cue.",
           ""]  # fmt: skip
    rows = [[m, *(_v(e, k) for k in ("acc", "acc_low", "acc_high", "mean_gap", "effective_robustness"))]
            for m, e in (s.get("models") or {}).items()]  # fmt: skip
    if rows:
        out += [
            f"Per model on the {s.get('gap_set')} set (k = {s.get('k')} images per end): accuracy on the "
            "lowest- and highest-spuriosity images; the gap is their difference, effective robustness "
            "the distance above the suite's fitted line.",
            "",
        ]
        out += _table(["model", "acc", "acc low", "acc high", "mean gap", "eff. robustness"], rows)
    rows = []
    for m, methods in (s.get("tuning") or {}).items():
        for method, e in methods.items():
            rows.append([m, method, *(_v(e, k) for k in ("gap_before", "gap_after", "acc_before", "acc_after"))])
    if rows:
        out += [
            "Head tuning (sec. 6): low-spuriosity tuning should close the gap more than the random and "
            "misclassified baselines at a similar accuracy.",
            "",
        ]
        out += _table(["model", "method", "gap before", "gap after", "acc before", "acc after"], rows)
    return out


def _npca(s: dict) -> list[str]:
    harm = s.get("harmfulness") or {}
    out = ["## Spurious ImageNet (Neuhaus et al. 2023)", "",
           f"- **{s.get('n_components_spurious')} of {s.get('n_components_annotated')} neural PCA components "
           "annotated spurious**: components whose NPFV and top-image Grad-CAM sit off the object.",
           f"- **Planted cues recovered: NPCA {_kind(s, 'planted_cues_recovered', 'npca', _pct)}, top-5 neurons "
           f"{_kind(s, 'planted_cues_recovered', 'neurons_top5', _pct)}, top-10 neurons "
           f"{_kind(s, 'planted_cues_recovered', 'neurons_top10', _pct)}**: components "
           "find planted cues at least as often as single neurons do.",
           f"- **Annotator precision: NPCA {_kind(s, 'annotator_precision', 'npca')}, neurons "
           f"{_kind(s, 'annotator_precision', 'neurons_top5')}** "
           "against the planted truth (a planted cue shown, or switched off by a planted background cue).",
           f"- **{harm.get('n_components_harmful')} of {harm.get('n_components_checked')} spurious components harmful** "
           f"(precision {_f(harm.get('harmful_precision'))} against the planted truth): validated on held-out images, "
           "the component alone drives a majority of its top out-of-class images into the class; SpuFix removes these.",
           f"- **Retrieval precision {_v(s, 'retrieval_precision')}** over {s.get('retrieved_images')} "
           "retrieved images: the share of images found by a harmful component's alpha that carry the cue "
           "without the object.",
           ""]  # fmt: skip
    rows = [[m, *(_v(e, k) for k in ("retrieved_auc_before", "retrieved_auc_after", "acc_before", "acc_after"))]
            for m, e in (s.get("models") or {}).items()]  # fmt: skip
    if rows:
        out += [
            "SpuFix (eq. 11): spurious score (ROC-AUC separating class-k test images from retrieved images "
            "with k's cue but no k object by the probability of k; 1 means not fooled by the cue) and test accuracy before and after removing the spurious "
            "components.",
            "",
        ]
        out += _table(["model", "spurious AUC before", "after", "acc before", "acc after"], rows)
    return out + _spufix_reach(s)


def _spufix_reach(s: dict) -> list[str]:
    """Per model and repaired class: where SpuFix acts (the npca summary's `spufix_reach`)."""
    rows = [[m, c, r.get("transfer_corr"), f"{_pct(r.get('corrected_pos'))} ({_f(r.get('correction_pos'))})",
             f"{_pct(r.get('corrected_neg'))} ({_f(r.get('correction_neg'))})"]
            for m, e in (s.get("models") or {}).items() for c, r in (e.get("spufix_reach") or {}).items()]  # fmt: skip
    if not rows:
        return []
    return [
        "SpuFix's reach on the classes it repairs: the share of the class's test images and of its cue-only "
        "images whose class logit SpuFix lowers (mean drop in logits), and the correlation of the model's "
        "transferred contribution with the robust model's alpha on the class's training images (1 for the "
        "robust model itself). A share near 0 on the cue-only images means SpuFix cannot raise that class's "
        "spurious score, however well the transfer fits the training images.",
        "",
        *_table(["model", "class", "training correlation", "test images lowered", "cue-only images lowered"], rows),
    ]


def _bam(s: dict) -> list[str]:
    methods = s.get("methods") or {}
    out = ["## BAM (Yang & Kim 2019)", "",
           f"- **TCAV MCS {_v(s, 'tcav_mcs')}** (random-concept baseline {_v(s, 'tcav_mcs_random_baseline')}; "
           "intervals over the CAV runs): how much more the object concept matters to f_o than to f_s by TCAV.",
           f"- **Best attribution by MCS: {(s.get('ranking_mcs') or ['n/a'])[0]}**: the method whose object-region "
           "attribution differs most between the object and the scene model.",
           ""]  # fmt: skip
    rows = [[m, *(_v(e, k) for k in ("mcs", "mcs_random_baseline", "idr", "idr_random_baseline", "iir", "rho_k_series"))]
            for m, e in methods.items()]  # fmt: skip
    if rows:
        out += [
            "Per method: MCS (f_o vs f_s on object regions, with the random-region baseline), IDR (share of "
            "images where f_s attributes the object's region less than the scene it covers; its baseline, "
            "random regions outside the object, should be about 50%), IIR (share where an output-preserving "
            "input change leaves attributions unchanged) and rho (MCS vs accuracy drop over the k-series; its "
            "interval over the k values). "
            "Higher is better for all.",
            "",
        ]
        out += _table(["method", "MCS", "MCS random", "IDR", "IDR random", "IIR", "rho k-series"], rows)
    return out


def _posthoc(s: dict) -> list[str]:
    th = s.get("thresholds") or {}
    cond = s.get("conditions") or {}
    findings = s.get("findings") or {}
    out = ["## Post hoc explanations vs unknown spurious signals (Adebayo et al. 2022)", "",
           f"- **Model conditions: {', '.join(f'{m} {c}' for m, c in cond.items()) or 'n/a'}**: a spurious model "
           f"predicts the aligned class `{s.get('aligned_class')}` for more than {_f(th.get('spurious'))} of inputs once "
           f"its signal is added, a normal model for less than {_f(th.get('normal'))} for every class and signal.",
           ""]  # fmt: skip
    rows = []
    top = s.get("spurious_score_max") or {}
    signals = [k for k in next(iter((s.get("spurious_score") or {}).values()), {}) if not k.endswith(CI_SUFFIX)]
    for m, sig in (s.get("spurious_score") or {}).items():
        rows.append([m, *(_v(sig, k) for k in signals), _v(top.get(m) or {}, "max"), cond.get(m, "n/a")])
    if rows:
        out += [
            "Spurious score (docs/methods.md#post-hoc-explanation-measures) for the aligned class per signal, and the highest over every class and "
            "signal (intervals over the test images).",
            "",
        ]
        out += _table(["model", *signals, "max, any class", "condition"], rows)
    rows = [[sig, m, *(_v(e[k], "mean") for k in ("kssd", "ccm", "fam", "famgt"))]
            for sig, methods in (s.get("attribution") or {}).items() for m, e in methods.items()]  # fmt: skip
    if rows:
        out += [
            "Table 1, feature attributions (SSIM of normalised maps, mean over the images [95% interval]): K-SSD, the spurious model's "
            "map on spurious inputs vs the signal's mask (higher: the known signal shows); CCM, the two models' "
            "maps on clean inputs (high: no cause for concern without the signal); FAM, the two models' maps on "
            "spurious inputs (high: the normal model would raise a false alarm); FAM-GT, the normal model's map "
            "vs the mask.",
            "",
        ]
        out += _table(["signal", "method", "K-SSD", "CCM", "FAM", "FAM-GT"], rows)
    vis, fam = findings.get("kssd_visible_above_blur") or {}, findings.get("fam_above_ccm") or {}
    for name, claim, got in (("K-SSD of the visible signals above blur's", "the paper: yes", vis),
                             ("FAM above CCM", "the paper: yes", fam)):  # fmt: skip
        cells = [f"{sig}/{m}" for sig, per in got.items() for m, ok in per.items() if ok]
        total = sum(len(per) for per in got.values())
        if total:
            out += [f"- **{name}: {len(cells)} of {total} signal-method pairs** ({claim})."]
    ks = [[sig, t, *(f"{'reject' if e[k]['reject'] else 'keep'} (p {_f(e[k]['p_value'], 2)})" for k in ("kssd", "ccm", "fam"))]
          for t, key in (("TCAV", "tcav_ks"), ("TracIn ICM", "icm_ks")) for sig, e in (s.get(key) or {}).items()]  # fmt: skip
    if ks:
        out += [
            "",
            "Tables 2-3, concept (TCAV) and training-point (TracIn ICM) rankings: two-sample KS tests at "
            "0.05 (docs/posthoc.md: which distributions); reject means the two differ.",
            "",
        ]
        out += _table(["signal", "explanation", "K-SSD", "CCM", "FAM"], ks)
    study = s.get("study_simulated") or {}
    planted = study.get("planted") or {}
    if planted:
        by_cond = study.get("by_condition") or {}
        hits = [c for c, e in by_cond.items() if e.get("reject")]
        exact = set(hits) == {c for c in by_cond if c.endswith(f"/{planted.get('condition')}")}
        out += [
            f"- **Study kit on simulated responses: a planted effect of {_f(planted.get('effect'))} on "
            f"{planted.get('method')} / {planted.get('condition')} models is found in {', '.join(hits) or 'no condition'}**: "
            + (
                "the analysis finds the effect built into the responses and nothing where there is none."
                if exact
                else "not exactly the conditions it was planted in."
            ),
            "",
        ]
    return out


def _lightweight(s: dict) -> list[str]:
    return ["## Lightweight discovery (Moayeri et al. sec. 6.3)", "",
            f"- **Head test accuracy {_v(s, 'head_test_acc')}**: a linear head on frozen features of a new "
            "task is good enough to discover its spurious features.",
            f"- **Planted cues recovered: {_v(s, 'planted_cues_recovered', _pct)}; annotator precision "
            f"{_v(s, 'auto_annotator_precision')}, recall {_v(s, 'auto_annotator_recall')}**: "
            "discovery on the new task against its planted cues (precision counting only features that show a cue: "
            f"{_f(s.get('auto_annotator_precision_presence_only'))}).", ""]  # fmt: skip


def _mitigation(s: dict) -> list[str]:
    """The mitigation table: per audited model and method, worst group, mean accuracy, gap, labels."""
    held = (s.get("acceptance") or {}).get("dfr_raises_worst_group") or {}
    out = ["## Group robustness and last-layer retraining (DFR, JTT, low-spuriosity tuning, SpuFix)", "",
           f"- **DFR raises the worst-group accuracy of {sum(map(bool, held.values()))} of {len(held)} audited "
           "models over their ERM heads**: worst group over the (class, cue on/off) groups of the counterfactual "
           "twins; mean accuracy and spurious gap on the test set. DFR and JTT use group labels of the validation "
           "set, low-spuriosity tuning and SpuFix none (they use annotated features or components).", ""]  # fmt: skip
    rows = []
    for m, e in (s.get("models") or {}).items():
        for method in s.get("method_order") or list(e["methods"]):
            r = e["methods"].get(method)
            if r:
                rows.append([m, method, _v(r, "worst_group_acc"), r.get("worst_group_minus_dfr"), _v(r, "acc"),
                             _v(r, "gap"), r.get("labels_needed", ""), r.get("worst_group", "")])  # fmt: skip
    return out + _table(["model", "method", "worst-group acc", "vs DFR", "mean acc", "spurious gap", "labels needed",
                         "worst group"], rows)  # fmt: skip


def _interventions(s: dict) -> list[str]:
    fams = s.get("families") or {}
    out = ["## Interventional checks of explanations (FunnyBirds, Hesse et al. 2023; ImageNet-9, Xiao et al. 2021)", "",
           f"- **Planted order holds: {_f(s.get('planted_order_holds'))}**: removing the part each model was built to rely "
           "on (object or cue) from re-rendered images flips its prediction more often than removing the other part; "
           "a contaminated model's prediction flips more often than the normal model's when the cue is removed."]  # fmt: skip
    for fam, r in (s.get("ranking_agreement") or {}).items():
        out.append(f"- **{fam}: Spearman {_v(r, 'spearman')}, Kendall {_v(r, 'kendall')}** ({r.get('n')} methods; intervals over them) "
                   f"between the ranking by {r.get('correlational')} and by (deletion + preservation) / 2; interventional "
                   f"order: {', '.join(r.get('interventional_ranking') or []) or 'n/a'}.")  # fmt: skip
    out.append("")
    for fam, f in fams.items():
        rows = [[m, *(_v(e, k) for k in ("deletion", "preservation", "agreement", "interventional"))]
                for m, e in {**(f.get("methods") or {}), **(f.get("baselines") or {})}.items()]  # fmt: skip
        out += [f"{fam} (cue: {f.get('cue')}): deletion = removing the method's top part flips the prediction, "
                "preservation = keeping only it keeps the prediction, agreement = its top part is the one whose "
                "removal lowers p(y) more.", ""]  # fmt: skip
        out += _table(["method", "deletion", "preservation", "agreement", "interventional"], rows)
    bg = (s.get("background_swap") or {}).get("models") or {}
    if bg:
        out += ["Background swap (mixed-rand): prediction flips on test images re-rendered on another scene.", ""]
        out += _table(["model", "flip rate", "own background cue", "other images", "accuracy drop"],
                      [[m, *(_v(r, k) for k in ("flip_rate", "flip_rate_own_background_cue", "flip_rate_other",
                                                 "accuracy_drop"))] for m, r in bg.items()])  # fmt: skip
    return out


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _generic(stage: str, s: dict, limit: int = 40) -> list[str]:
    """Numbers of a stage without a writer: top-level numbers, dicts of numbers, and estimates
    ({mean, n, sem}) up to three levels down, as `path = mean +- SEM (n)`."""
    out = [f"## {stage}", "", f"Numbers of `{stage}/summary.json` (no dedicated writer yet; all of them are in the "
           "tidy table):", ""]  # fmt: skip
    lines = []

    def walk(node, path):
        for k, v in node.items():
            p = f"{path}/{k}" if path else str(k)
            if _num(v) and not path:
                lines.append(f"- **{p} = {_f(v)}**")
            elif isinstance(v, dict) and "mean" in v and _num(v.get("mean")):
                sem = f" +- {_f(v['sem'])}" if _num(v.get("sem")) else ""
                n = f" (n = {v['n']})" if _num(v.get("n")) else ""
                lines.append(f"- **{p} = {_f(v['mean'])}**{sem}{n}")
            elif isinstance(v, dict) and v and all(_num(x) for x in v.values()):
                lines.append(f"- **{p}**: " + ", ".join(f"{a} {_f(b)}" for a, b in v.items()))
            elif isinstance(v, dict) and p.count("/") < 3 and k != "inputs":
                walk(v, p)

    walk(s, "")
    more = [f"- ... {len(lines) - limit} more in `results/tables/metrics.csv`"] if len(lines) > limit else []
    return out + lines[:limit] + more + [""]


WRITERS = {
    "salient": _salient,
    "spuriosity": _spuriosity,
    "npca": _npca,
    "bam": _bam,
    "lightweight": _lightweight,
    "posthoc": _posthoc,
    "mitigation": _mitigation,
    "interventions": _interventions,
}


def _without_truth(section: list[str], not_computed: dict) -> list[str]:
    """A stage's lines on data without planted truth: its sentences about the planted cues go, one
    line says which numbers were not computed and why."""
    reasons: dict[str, list[str]] = {}
    for key, why in not_computed.items():
        reasons.setdefault(why, []).append(f"`{key}`")
    kept = [line for line in section if "planted" not in line.lower() and "counterfactual" not in line.lower()]
    note = "- **Not computed**: " + "; ".join(f"{', '.join(keys)}: {why}" for why, keys in reasons.items())
    return kept[:2] + [note] + kept[2:]


def _acceptance(summaries: dict[str, dict]) -> list[str]:
    """The table of checkable headlines (`report.acceptance`); none on data without planted truth."""
    if any(s.get("not_computed") and "planted" in " ".join(map(str, s["not_computed"].values()))
           for s in summaries.values()):  # fmt: skip
        return []
    points = acceptance_points(summaries)
    if all(p.holds is None for p in points):  # nothing measured that a rule could judge
        return []
    mark = {True: "holds", False: "**does not hold**", None: "not measured"}
    held = sum(p.holds is True for p in points)
    out = ["## Acceptance", "",
           f"{held} of {len(points)} points hold on this run (each paper's headline, with the number it is "
           "judged by; docs/findings/benchmark.md gives the reasons for each rule).", ""]  # fmt: skip
    return (
        out
        + _table(
            ["stage", "point", "measured", "verdict"], [[p.stage, p.point, p.value, mark[p.holds]] for p in points]
        )
        + [""]
    )


def summary_markdown(summaries: dict[str, dict], counts: dict | None = None) -> str:
    truth = not any(s.get("not_computed") for s in summaries.values())
    intro = ("Headline numbers of each paper's analogue on the planted-cue benchmark, and how well each method "
             "recovers the cues we planted." if truth else
             "Headline numbers of each paper's method on this data; it has no planted truth, so each stage says "
             "which scores against it were not computed.")  # fmt: skip
    lines = ["# spurlab results", "",
             f"{intro} Every number is also in `results/tables/metrics.csv` (one row per "
             "model / class / feature / method / setting, with n, SEM and 95% bootstrap interval); "
             "`value [low, high]` is a number with its 95% bootstrap interval over images or trials "
             "(docs/methods.md#bootstrap-intervals).", ""]  # fmt: skip
    if counts:
        lines += [", ".join(f"{k}: {v}" for k, v in counts.items()), ""]
    lines += _acceptance(summaries)
    for stage, s in summaries.items():
        if stage == "models":  # the suite's reliance on the cues: in the acceptance table only
            continue
        section = WRITERS.get(stage, lambda x, st=stage: _generic(st, x))(s)
        lines += _without_truth(section, s["not_computed"]) if s.get("not_computed") else section
    return "\n".join(lines).rstrip() + "\n"


def write_summary_md(
    summary_paths: dict[str, str | os.PathLike], out: str | os.PathLike, counts: dict | None = None
) -> str:
    summaries = {}
    for stage, p in summary_paths.items():
        try:
            summaries[stage] = json.loads(Path(p).read_text())
        except FileNotFoundError:
            raise SpurlabError(f"{p}: stage summary of '{stage}' missing") from None
        except json.JSONDecodeError as e:
            raise SpurlabError(f"{p}: not valid JSON (line {e.lineno})") from None
    text = summary_markdown(summaries, counts)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return text
