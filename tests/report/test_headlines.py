"""results/summary.md prints every headline with its 95% bootstrap interval (docs/methods.md#bootstrap-intervals).

`headline_problems(text)` is the check; tests/test_workflow.py runs it on the tiny workflow's
summary.md, the tests here on a summary written from synthetic stage summaries.
"""

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
        "MCS", "MCS random", "IDR", "IDR random", "IIR"),
    ("model", "method", "worst-group acc", "vs DFR", "mean acc", "spurious gap", "labels needed", "worst group"): (
        "worst-group acc", "mean acc", "spurious gap"),
    ("method", "deletion", "preservation", "agreement", "interventional"): ("deletion", "preservation", "agreement"),
    ("model", "flip rate", "own background cue", "other images", "accuracy drop"): (
        "flip rate", "own background cue", "other images", "accuracy drop"),
}  # fmt: skip
# acceptance points (a phrase of the point) -> (intervals its measured cell holds, per model entry ('; ') or in all)
ACCEPTANCE = {"mean counterfactual gap on cue classes": (1, False), "mean counterfactual gap on control classes": (1, False),
              "mean spuriosity AUC": (1, False), "Grad-CAM and TCAV MCS": (2, False),  # TCAV's has none
              "DFR raises": (2, True), "removing the part": (2, True)}  # fmt: skip
BULLETS = ("Spuriosity AUC against planted cues", "Retrieval precision")


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
        for col in HEADLINE_COLUMNS.get(header, ()):
            j = header.index(col)
            for r in rows:
                seen += 1
                if r[j] != "n/a" and not INTERVAL.fullmatch(r[j]):
                    bad.append(f"table {header[:3]}..., column '{col}', row {r[0]}: {r[j]!r}")
    for phrase in BULLETS:
        for line in (x for x in lines if phrase in x):
            seen += 1
            if not INTERVAL.search(line) and "n/a" not in line:
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
