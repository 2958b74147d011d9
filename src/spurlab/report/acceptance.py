"""Each paper's headline on the planted-cue benchmark as one checkable point: the number, the rule
it is held to, and whether it holds, read from the stage summaries (results/summary.md's
"Acceptance" table; docs/findings/benchmark.md says why each rule is what it is).

A point whose number is missing (the stage did not run, or the data has no planted truth) is
listed with `holds` None, never counted as held.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..stats import CI_SUFFIX


@dataclass
class Point:
    stage: str
    point: str
    value: str
    holds: bool | None


def _all(flags) -> bool | None:
    flags = [f for f in flags if f is not None]
    return all(flags) if flags else None


def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _ci(s: dict, key: str, digits: int = 3) -> str:
    """`value [low, high]`: the number with its 95% bootstrap interval `<key>_ci` where it has one."""
    v, ci = s.get(key), s.get(f"{key}{CI_SUFFIX}")
    return (
        f"{_num(v, digits)} [{_num(ci[0], digits)}, {_num(ci[1], digits)}]" if v is not None and ci else _num(v, digits)
    )


def _models(s: dict) -> list[Point]:
    cue, control = s.get("cue_class_mean_gap"), s.get("control_class_mean_gap")
    return [Point("models", "ERM models' mean counterfactual gap on cue classes > 0.10", _ci(s, "cue_class_mean_gap"),
                  None if cue is None else cue > 0.10),
            Point("models", "ERM models' mean counterfactual gap on control classes within +-0.03",
                  _ci(s, "control_class_mean_gap"),
                  None if control is None else abs(control) < 0.03)]  # fmt: skip


def _at_sigma(entry: dict | None) -> str:
    """` (sigma 0.05)` for a drake entry taken at a model's own onset sigma, else nothing."""
    return f" (sigma {entry['sigma']:g})" if entry and "sigma" in entry else ""


def _salient(s: dict, audited: list[str]) -> list[Point]:
    p, r = s.get("auto_annotator_precision"), s.get("auto_annotator_recall")
    sigma = s.get("headline_sigma")
    key = None if sigma is None else f"{sigma:g}"
    onset = s.get("drake_onset")
    if onset is None:  # a summary from before the onset sigma: the headline sigma for every model
        where = f"sigma {sigma}"
        drake = {m: (s.get("drake") or {}).get(m, {}).get(key) for m in audited}
    else:
        where = "at each model's onset sigma, the smallest where either drop's interval is above 0"
        drake = {m: onset.get(m) for m in audited}
    exceeds = {m: (d or {}).get("spurious_exceeds_core") for m, d in drake.items()}
    if onset is not None:  # no swept sigma costs that model accuracy: no region is leaned on more
        exceeds.update({m: False for m in audited if m in onset and onset[m] is None})
    values = "; ".join(f"{m}{_at_sigma(d)} {_ci(d or {}, 'drop_spurious_noise')} vs {_ci(d or {}, 'drop_core_noise')}"
                       for m, d in drake.items())  # fmt: skip
    return [Point("salient", "automatic annotator precision and recall >= 0.9",
                  f"{_ci(s, 'auto_annotator_precision')} / {_ci(s, 'auto_annotator_recall')}",
                  None if p is None or r is None else p >= 0.9 and r >= 0.9),
            Point("salient", f"noise on spurious regions costs the audited models more than on core regions "
                             f"({where})", values or "n/a", _all(exceeds.values()))]  # fmt: skip


def _collision_gaps(model: dict) -> str:
    """A model's collision classes' gaps, each with its interval: `disk 0.4 [0.1, 0.7], hexagon -0.2 [-0.4, 0]`."""
    gaps, cis = model.get("collision_class_gap") or {}, model.get(f"collision_class_gap{CI_SUFFIX}") or {}
    return ", ".join(f"{c} {_ci({'gap': v, 'gap' + CI_SUFFIX: cis.get(c)}, 'gap')}" for c, v in gaps.items()) or "n/a"


def _tuned(m: str, e: dict) -> str:
    """One audited model's low-spuriosity tuning: validation gap before -> after, each with its interval."""
    if e["holds"] is None:
        return f"{m}: below target"
    return (f"{m} {_ci(e, 'gap_before', 2)} -> {_ci(e, 'gap_after', 2)} ({_num(e['cut'], 2)} cut) at "
            f"{_num(e['accuracy_cost_points'], 2)} pts (random {_num(e['random_cut'], 2)} cut)")  # fmt: skip


def _spuriosity(s: dict) -> list[Point]:
    auc = s.get("spuriosity_auc_mean")
    acc = s.get("acceptance") or {}
    neg = acc.get("collision_gap_negative") or {}
    tuning = acc.get("tuning") or {}
    tuned = "; ".join(_tuned(m, e) for m, e in tuning.items())
    collision = ", ".join(f"{m} {_collision_gaps(s['models'][m])}" for m in neg)
    return [Point("spuriosity", "mean spuriosity AUC over the cue classes >= 0.9", _ci(s, "spuriosity_auc_mean"),
                  None if auc is None else auc >= 0.9),
            Point("spuriosity", "a negative gap on a collision class (a cue shared by two classes) for every audited model",
                  collision or "n/a", _all(neg.values()) if neg else None),
            Point("spuriosity", "low-spuriosity tuning halves each audited gap above the target (or brings it under "
                                "the target) at <= 3 points; random tuning does not", tuned or "n/a", _all(e["holds"] for e in tuning.values()))]  # fmt: skip


def _reach(model: dict) -> str:
    """`; lowers X% of cue-only images`: the mean over the repaired classes of the share of their
    cue-only images SpuFix reaches (npca summary `spufix_reach`), empty without one."""
    shares = [
        r["corrected_neg"] for r in (model.get("spufix_reach") or {}).values() if r.get("corrected_neg") is not None
    ]
    return f"; lowers {100 * sum(shares) / len(shares):.0f}% of cue-only images" if shares else ""


def _npca(s: dict) -> list[Point]:
    rec = (s.get("planted_cues_recovered") or {}).get("npca")
    models = s.get("models") or {}
    up = (s.get("acceptance") or {}).get("spufix_raises_repaired_spurious_auc") or {}
    cost = {m: 100 * (e["acc_before"] - e["acc_after"]) for m, e in models.items()
            if e.get("acc_before") is not None and e.get("acc_after") is not None}  # fmt: skip
    spufix = "; ".join(f"{m} {_ci(e, 'spurious_auc_repaired_before')} -> {_ci(e, 'spurious_auc_repaired_after')}"
                       f" ({_num(cost.get(m), 2)} pts{_reach(e)})" for m, e in models.items())  # fmt: skip
    # the per-kind recovery {npca: ...} and its intervals {npca: [low, high]}
    recovered = {"npca": rec, f"npca{CI_SUFFIX}": (s.get(f"planted_cues_recovered{CI_SUFFIX}") or {}).get("npca")}
    err = s.get("transfer_invariant_max_abs_err")
    held = _all(up.values())
    return [Point("npca", "planted cues recovered by the top-10 components >= 0.9", _ci(recovered, "npca"),
                  None if rec is None else rec >= 0.9),
            Point("npca", "SpuFix raises every model's cue-only spurious AUC on the classes it repairs at <= 1 "
                          "point of accuracy", spufix or "n/a",
                  None if held is None else held and all(c <= 1.0 for c in cost.values())),
            Point("npca", "transfer invariant <= 1e-5", _num(err), None if err is None else err <= 1e-5)]  # fmt: skip


def _bam(s: dict) -> list[Point]:
    methods = s.get("methods") or {}
    mcs = {m: (methods.get(m) or {}).get("mcs") for m in ("gradcam", "gradient")}
    tcav = s.get("tcav_mcs")
    base = [e.get("idr_random_baseline") for e in methods.values() if e.get("idr_random_baseline") is not None]
    # computed by the bam summary with its interval; from the methods for a summary without it
    mean_base = s.get("idr_random_baseline_mean", sum(base) / len(base) if base else None)
    known = None not in (mcs["gradcam"], mcs["gradient"], tcav)
    return [Point("bam", "Grad-CAM and TCAV MCS exceed vanilla gradient's",
                  f"Grad-CAM {_ci(methods.get('gradcam') or {}, 'mcs')}, TCAV {_ci(s, 'tcav_mcs')}, "
                  f"gradient {_ci(methods.get('gradient') or {}, 'mcs')}",
                  (mcs["gradcam"] > mcs["gradient"] and tcav > mcs["gradient"]) if known else None),
            Point("bam", "IDR of random regions near 50% (mean over methods within 0.4-0.6)",
                  _ci({**s, "idr_random_baseline_mean": mean_base}, "idr_random_baseline_mean"),
                  None if mean_base is None else 0.4 <= mean_base <= 0.6)]  # fmt: skip


def _posthoc(s: dict) -> list[Point]:
    met = s.get("conditions_met") or {}
    cond = s.get("conditions") or {}
    return [Point("posthoc", "spurious models (tag, stripe) and the normal model meet their conditions",
                  ", ".join(f"{m} {c}" for m, c in cond.items()) or "n/a",
                  _all(ok for m, ok in met.items() if "blur" not in m) if met else None)]  # fmt: skip


def _mitigation(s: dict) -> list[Point]:
    raises = (s.get("acceptance") or {}).get("dfr_raises_worst_group") or {}
    models = s.get("models") or {}
    values = "; ".join(f"{m} {_ci(models[m]['methods']['erm'], 'worst_group_acc')} -> "
                       f"{_ci(models[m]['methods']['dfr'], 'worst_group_acc')}" for m in raises)  # fmt: skip
    return [Point("mitigation", "DFR raises every audited model's worst-group accuracy (counterfactual twins) over "
                                "its ERM head", values or "n/a", _all(raises.values()) if raises else None)]  # fmt: skip


def _interventions(s: dict) -> list[Point]:
    """The planted truth of every model (`spurlab.measure.interventions.planted_truth_holds`): a
    contaminated model loses its prediction more often than the normal model when the cue is
    removed; every other model flips more when its planted part is removed than the other part."""
    parts = []
    for fam, f in (s.get("families") or {}).items():
        judged = {r["model"]: r for r in (f.get("cue_reliance") or {}).values()}
        for m, r in (f.get("models") or {}).items():
            if m in judged:
                c = judged[m]
                parts.append(f"{fam} {m}: no cue {_ci(c, 'flip_remove_cue', 2)} vs {c['reference']} "
                             f"{_ci(c, 'reference_flip_remove_cue', 2)}")  # fmt: skip
                continue
            other = "cue" if r["planted"] == "object" else "object"
            parts.append(
                f"{fam} {m}: {_ci(r, 'flip_remove_' + r['planted'], 2)} vs {_ci(r, 'flip_remove_' + other, 2)}"
            )
    return [Point("interventions", "removing the part each model was built to rely on flips its prediction more often "
                  "than removing the other part; for a contaminated model, removing the cue flips it more often than "
                  "the normal model (re-rendered twins)", "; ".join(parts) or "n/a",
                  s.get("planted_order_holds") if parts else None)]  # fmt: skip


def acceptance_points(summaries: dict[str, dict]) -> list[Point]:
    """Every checkable headline whose stage summary is given (stage name -> summary dict)."""
    spu = summaries.get("spuriosity") or {}
    audited = spu.get("audited_models") or []
    out: list[Point] = []
    if "models" in summaries:
        out += _models(summaries["models"])
    if "salient" in summaries:
        out += _salient(summaries["salient"], audited)
    if spu:
        out += _spuriosity(spu)
    if "npca" in summaries:
        out += _npca(summaries["npca"])
    if "bam" in summaries:
        out += _bam(summaries["bam"])
    if "posthoc" in summaries:
        out += _posthoc(summaries["posthoc"])
    if "mitigation" in summaries:
        out += _mitigation(summaries["mitigation"])
    if "interventions" in summaries:
        out += _interventions(summaries["interventions"])
    return out
