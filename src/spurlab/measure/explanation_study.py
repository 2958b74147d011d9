"""Blinded study kit of Adebayo et al. 2022 (sec. 2.2 and 5, app. I): stimuli, randomised
assignment, self-contained HTML questionnaires, and the analysis of collected responses.

- Stimuli: one PNG per model condition (normal model, spurious model for `study.signal`) and
  method (SmoothGrad maps, TCAV concept scores, TracIn top training images, control = predictions
  only), on test images of non-aligned classes carrying the signal.
- Assignment: 2 x `participants_per_group` participants, randomly split (seeded) into a blinded
  group (not told about spurious signals) and a not-blinded group (told); every participant rates
  every stimulus (within subjects), in a random order.
- Questionnaire: per group one HTML file with the stimuli embedded (no network), a 5-point Likert
  item ("would you recommend this model for deployment?", 1 Definitely not ... 5 Definitely) and a
  rationale per stimulus; the answers download as CSV (participant, group, condition, method,
  likert, rationale).
- Analysis (`analyse_responses`): per group and model condition, the mean of each method, its
  difference from the control and Welch's t-test, a one-way ANOVA over methods
  (scipy.stats.f_oneway) and Tukey-Kramer pairwise tests (scipy.stats.tukey_hsd, which handles
  unequal group sizes). `simulate_responses` plants a known effect to test the analysis.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import posthoc_model_sets, spurious_model
from ..data.imagesets import open_imageset
from ..errors import SpurlabError
from ..io import atomic_path, write_json
from ..io.figures import save_figure
from ..io.render import render
from ..io.tables import read_table

GROUPS = ("blinded", "not_blinded")
CONDITIONS = ("normal", "spurious")
LIKERT = ("Definitely not", "Probably not", "Not sure", "Probably", "Definitely")


def assign(participants_per_group: int, methods: list[str], seed: int) -> pd.DataFrame:
    """Random split into the two groups; each participant sees every condition x method once, in a
    random order. Columns: participant, group, position, condition, method, stimulus."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"posthoc-study")]))
    n = 2 * int(participants_per_group)
    order = rng.permutation(n)
    items = [(c, m) for c in CONDITIONS for m in methods]
    rows = []
    for pid in range(n):
        group = GROUPS[0] if order[pid] < participants_per_group else GROUPS[1]
        for pos, k in enumerate(rng.permutation(len(items))):
            c, m = items[k]
            rows.append({"participant": f"P{pid:03d}", "group": group, "position": pos, "condition": c, "method": m,
                         "stimulus": f"{c}_{m}.png"})  # fmt: skip
    return pd.DataFrame(rows)


def simulate_responses(assignment: pd.DataFrame, effect: float, method: str, seed: int) -> pd.DataFrame:
    """Likert answers: round(N(3.5, 1)) clipped to 1..5, lowered by `effect` for `method` on the
    spurious model (both groups): a planted effect the analysis must recover."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"posthoc-study-sim")]))
    base = rng.normal(3.5, 1.0, len(assignment))
    hit = (assignment.condition == "spurious") & (assignment.method == method)
    likert = np.clip(np.rint(base - effect * hit.to_numpy()), 1, 5).astype(int)
    out = assignment[["participant", "group", "condition", "method"]].copy()
    out["likert"] = likert
    out["rationale"] = "simulated"
    return out


def analyse_responses(df: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Difference in means vs control (Welch), one-way ANOVA, Tukey-Kramer, per group x condition."""
    from scipy import stats

    need = {"participant", "group", "condition", "method", "likert"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise SpurlabError(f"study responses: missing column '{missing[0]}' (need {', '.join(sorted(need))})")
    bad = df.index[~df.likert.isin([1, 2, 3, 4, 5])]
    if len(bad):
        raise SpurlabError(f"study responses: row {int(bad[0]) + 2}: likert must be 1..5, got {df.likert[bad[0]]!r}")
    if "control" not in set(df.method):
        raise SpurlabError("study responses: no 'control' answers to compare the methods with")
    results = []
    for (group, cond), sub in df.groupby(["group", "condition"], sort=True):
        methods = sorted(sub.method.unique(), key=lambda m: (m == "control", m))
        samples = [sub.likert[sub.method == m].to_numpy(float) for m in methods]
        ctrl = sub.likert[sub.method == "control"].to_numpy(float)
        entry = {"group": group, "condition": cond, "n": int(len(sub)), "methods": {}}
        ok = [s for s in samples if len(s) > 1]
        if len(ok) >= 2 and np.ptp(np.concatenate(ok)) > 0:
            a = stats.f_oneway(*ok)
            entry["anova"] = {"F": float(a.statistic), "p_value": float(a.pvalue), "reject": bool(a.pvalue < alpha)}
            tk = stats.tukey_hsd(*samples) if all(len(s) > 1 for s in samples) else None
        else:
            entry["anova"] = {"F": float("nan"), "p_value": float("nan"), "reject": False}
            tk = None
        ci = methods.index("control")
        for i, (m, s) in enumerate(zip(methods, samples)):
            row = {"mean": float(s.mean()), "median": float(np.median(s)), "n": int(len(s))}
            if m != "control":
                t = stats.ttest_ind(s, ctrl, equal_var=False) if len(s) > 1 and len(ctrl) > 1 else None
                p = float(t.pvalue) if t is not None and np.isfinite(t.pvalue) else 1.0
                row.update(diff_vs_control=float(s.mean() - ctrl.mean()), p_diff=p, reject_diff=bool(p < alpha))
                tp = float(tk.pvalue[i, ci]) if tk is not None else float("nan")
                row.update(tukey_p_vs_control=tp, reject_tukey=bool(tp < alpha))
            entry["methods"][m] = row
        results.append(entry)
    return {"alpha": alpha, "conditions": results}


def analyse_responses_file(responses: str | Path, out: str | Path, alpha: float = 0.05) -> dict:
    """Read a responses CSV, analyse, write JSON `out` and a flat CSV beside it."""
    responses = Path(responses)
    if not responses.is_file():
        raise SpurlabError(f"{responses}: no such responses file")
    try:
        df = pd.read_csv(responses)
    except Exception as e:  # pandas raises several parser errors
        raise SpurlabError(f"{responses}: not a readable CSV ({e})") from e
    res = analyse_responses(df, alpha)
    res["responses"] = str(responses)
    write_json(out, res)
    flat = [{"group": c["group"], "condition": c["condition"], "method": m, **v, "anova_p": c["anova"]["p_value"]}
            for c in res["conditions"] for m, v in c["methods"].items()]  # fmt: skip
    with atomic_path(Path(out).with_suffix(".csv")) as tmp:
        pd.DataFrame(flat).to_csv(tmp, index=False, float_format="%.6g")
    return res


def _png_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def questionnaire_html(group: str, assignment: pd.DataFrame, stimuli: dict[str, Path], signal_text: str) -> str:
    """One self-contained page per group: stimuli embedded as data URIs, answers saved as CSV."""
    plan = {p: sub.sort_values("position")[["condition", "method", "stimulus"]].to_dict("records")
            for p, sub in assignment[assignment.group == group].groupby("participant")}  # fmt: skip
    images = {k: _png_b64(v) for k, v in stimuli.items()}
    return render("study/questionnaire.html.j2", group=group, signal_text=signal_text, plan=plan, images=images,
                  likert=list(LIKERT))  # fmt: skip


def _tcav_stimulus(plt, d, aligned_class: str):
    """Bar chart of a model's mean TCAV score per concept."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(d.index, d.to_numpy())
    ax.set_ylabel(f"TCAV score (class {aligned_class})")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    return fig


def _image_stimulus(plt, method: str, shown: dict, inf_rows, train):
    """One row per stimulus image: the image with the model's prediction, then its SmoothGrad map
    (smoothgrad), its top-3 proponents (influence) or nothing (control). `shown`: x, rows, names,
    pred, maps of the model `model`."""
    x, rows, names, pred = shown["x"], shown["rows"], shown["names"], shown["pred"]
    cols = 4 if method == "influence" else 2
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.6 * len(rows)), squeeze=False)
    for i in range(len(rows)):
        axes[i, 0].imshow(x[i])
        axes[i, 0].set_title(f"predicted: {names[pred[i]]}", fontsize=7)
        if method == "smoothgrad":
            axes[i, 1].imshow(shown["maps"]["smoothgrad"][i], cmap="gray", vmin=0, vmax=1)
            axes[i, 1].set_title("SmoothGrad", fontsize=7)
        elif method == "influence":
            r = inf_rows[(inf_rows.model == shown["model"]) & (inf_rows.row == rows[i])]
            top = json.loads(r.top_rows.iloc[0])[: cols - 1] if len(r) else []
            for j, t in enumerate(top):
                axes[i, 1 + j].imshow(train.images(int(t)))
                axes[i, 1 + j].set_title(f"top {j + 1}: {names[int(train.labels[int(t)])]}", fontsize=7)
        elif method == "control":
            axes[i, 1].set_visible(False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig


def _write_kit(cfg: dict, out_dir: Path, stimuli: dict, methods: list[str]) -> dict:
    """Assignment, questionnaires, simulated responses and their analysis (the planted effect)."""
    st = cfg["posthoc"]["study"]
    assignment = assign(st["participants_per_group"], methods, st["seed"])
    with atomic_path(out_dir / "assignment.csv") as tmp:
        assignment.to_csv(tmp, index=False)
    sig = cfg["contamination"]["signals"][st["signal"]]
    text = f"a {sig['type']} added to images of class '{cfg['contamination']['aligned_class']}'"
    for g in GROUPS:
        with atomic_path(out_dir / f"questionnaire_{g}.html") as tmp:
            tmp.write_text(questionnaire_html(g, assignment, stimuli, text))
    effect_method = next(m for m in methods if m != "control")
    sim = simulate_responses(assignment, float(st["simulated_effect"]), effect_method, st["seed"])
    with atomic_path(out_dir / "simulated_responses.csv") as tmp:
        sim.to_csv(tmp, index=False)
    res = analyse_responses(sim)
    res["planted"] = {"method": effect_method, "condition": "spurious", "effect": -float(st["simulated_effect"])}
    write_json(out_dir / "simulated_analysis.json", res)
    return {"stimuli": len(stimuli), "participants": int(assignment.participant.nunique())}


def build_study(cfg: dict, model_dirs: dict[str, str], sets: dict[str, str], tcav: str | Path, influence: str | Path,
                out_dir: str | Path) -> dict:  # fmt: skip
    """Stimuli, assignment, questionnaires, simulated responses and their analysis under `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..attribution import AttributionSettings
    from ..models import load_model
    from .attribution_similarity import maps_for

    p = cfg["posthoc"]
    st = p["study"]
    signal, methods = st["signal"], list(st["methods"])
    out_dir = Path(out_dir)
    (out_dir / "stimuli").mkdir(parents=True, exist_ok=True)
    roles = {"normal": "normal", "spurious": spurious_model(signal)}
    for m in roles.values():
        if m not in model_dirs:
            raise SpurlabError(f"posthoc study: model {m} not given (--models/--model-dirs)")
    tc, inf = read_table(tcav), read_table(influence)
    inf_rows = inf[(inf.inputs == "spu") & (inf.signal == signal)]
    rows = np.sort(inf_rows.row.unique())[: int(st["stimulus_images"])]
    with open_imageset(sets[f"contam_{signal}_test"]) as s:
        x = s.images(rows)
        names = s.class_names
    settings = AttributionSettings(**p["attribution"])
    stimuli = {}
    for cond, m in roles.items():
        model, _ = load_model(model_dirs[m])
        maps, pred = maps_for(model, x, methods=["smoothgrad"], settings=settings, seed=p["seed"], progress=False,
                              desc="study")  # fmt: skip
        shown = {"x": x, "rows": rows, "names": names, "pred": pred, "maps": maps, "model": m}
        with open_imageset(sets[posthoc_model_sets(cfg, m)[0]]) as train:
            for method in methods:
                path = out_dir / "stimuli" / f"{cond}_{method}.png"
                if method == "tcav":
                    d = tc[(tc.model == m) & (tc.inputs == "norm")].groupby("concept").score.mean()
                    fig = _tcav_stimulus(plt, d, cfg["contamination"]["aligned_class"])
                else:
                    fig = _image_stimulus(plt, method, shown, inf_rows, train)
                fig.tight_layout()
                save_figure(fig, path, dpi=90)
                stimuli[path.name] = path
    return _write_kit(cfg, out_dir, stimuli, methods)
