"""Moayeri et al.'s tuning claim, judged on the audited models."""

from spurlab.measure.spuriosity_summary import tuning_acceptance


def entry(gap_before, gap_after, acc_before, acc_after):
    return {"gap_before": gap_before, "gap_after": gap_after, "acc_before": acc_before, "acc_after": acc_after,
            "gap_reduction": 1 - gap_after / gap_before}  # fmt: skip


def test_tuning_acceptance_per_audited_model():
    tuning = {
        "halves_cheaply": {"low_spuriosity": entry(0.2, 0.05, 0.91, 0.905), "random": entry(0.2, 0.17, 0.91, 0.91)},
        "too_costly": {"low_spuriosity": entry(0.2, 0.05, 0.91, 0.87), "random": entry(0.2, 0.2, 0.91, 0.91)},
        "random_halves_too": {"low_spuriosity": entry(0.2, 0.05, 0.91, 0.9), "random": entry(0.2, 0.09, 0.91, 0.9)},
        "below_target": {"low_spuriosity": entry(0.04, 0.03, 0.95, 0.95), "random": entry(0.04, 0.05, 0.95, 0.95)},
        "discovery": {"low_spuriosity": entry(0.7, 0.7, 0.7, 0.7)},
    }
    out = tuning_acceptance(tuning, ["halves_cheaply", "too_costly", "random_halves_too", "below_target"], 0.05)
    assert set(out) == {"halves_cheaply", "too_costly", "random_halves_too", "below_target"}  # not the discovery model
    assert out["halves_cheaply"]["holds"] is True and abs(out["halves_cheaply"]["cut"] - 0.75) < 1e-12
    assert abs(out["halves_cheaply"]["accuracy_cost_points"] - 0.5) < 1e-9
    assert out["too_costly"]["holds"] is False  # 4 points
    assert out["random_halves_too"]["holds"] is False
    assert out["below_target"]["holds"] is None and "stopping target" in out["below_target"]["why"]


def test_tuning_that_reaches_the_stopping_target_succeeds_without_halving():
    # 0.056 -> 0.044 is a 21% cut, but tuning stops once the gap is under the 0.05 target
    tuning = {
        "near_target": {"low_spuriosity": entry(0.056, 0.044, 0.96, 0.96), "random": entry(0.056, 0.06, 0.96, 0.96)},
        "random_reaches_too": {"low_spuriosity": entry(0.056, 0.044, 0.96, 0.96),
                               "random": entry(0.056, 0.045, 0.96, 0.96)},
        "stalls": {"low_spuriosity": entry(0.08, 0.06, 0.96, 0.96), "random": entry(0.08, 0.08, 0.96, 0.96)},
    }  # fmt: skip
    out = tuning_acceptance(tuning, list(tuning), 0.05)
    assert out["near_target"]["holds"] is True and out["near_target"]["gap_after"] == 0.044
    assert out["random_reaches_too"]["holds"] is False
    assert out["stalls"]["holds"] is False  # 25% cut and still above the target


def test_correlation_intervals_resample_the_classes():
    import numpy as np
    import pandas as pd

    from spurlab.measure.spuriosity import pearson_r
    from spurlab.measure.spuriosity_summary import gap_correlation_ci, gap_truth_ci

    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    wide = {m: base + rng.normal(scale=s, size=12) for m, s in (("a", 0.3), ("b", 0.5), ("c", 0.8))}
    gaps = pd.DataFrame([{"model": m, "class_index": i, "class_name": f"c{i}", "gap": g[i]}
                         for m, g in wide.items() for i in range(12)])  # fmt: skip
    mean_r = np.mean([pearson_r(wide[x], wide[y]) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))])
    ci = gap_correlation_ci(gaps, 0)
    assert ci[0] < mean_r < ci[1] <= 1 and ci == gap_correlation_ci(gaps, 0) != gap_correlation_ci(gaps, 1)
    truth = {m: {f"c{i}": float(base[i]) for i in range(12)} for m in wide}
    r = np.mean([pearson_r(wide[m], base) for m in ("a", "b")])
    ci = gap_truth_ci(gaps, truth, ["a", "b"], 0)
    assert ci[0] < r < ci[1] and gap_truth_ci(gaps, truth, [], 0) is None
    assert gap_correlation_ci(gaps[gaps["model"] == "a"], 0) is None  # one model: no pair


def test_tuning_intervals_come_from_the_tables_trials_columns():
    import pandas as pd

    from spurlab.measure.spuriosity_summary import summarize_tuning, trials_ci

    rows = [{"model": "m", "method": "low_spuriosity", "trial": t, "split": "val", "when": w, "acc": 0.9,
             "gap": 0.0556 if w == "before" else 0.04, "epochs": 2, "acc_ci_low": 0.8, "acc_ci_high": 0.95,
             "gap_ci_low": 0.0, "gap_ci_high": 0.1, "acc_trials_ci_low": 0.85, "acc_trials_ci_high": 0.93,
             "gap_trials_ci_low": 0.0 if w == "before" else -0.02, "gap_trials_ci_high": 0.12}
            for t in range(3) for w in ("before", "after")]  # fmt: skip
    table = pd.DataFrame(rows)
    e = summarize_tuning(table)["low_spuriosity"]
    assert (
        e["gap_before_ci"] == [0.0, 0.12] and e["gap_after_ci"] == [-0.02, 0.12] and e["acc_after_ci"] == [0.85, 0.93]
    )
    # a table without them: one trial its images' interval, several the trials (identical trials: zero width)
    old = table.drop(columns=[c for c in table if "_trials_ci_" in c])
    before = old[old["when"] == "before"]
    assert trials_ci(before, "gap", 0, "k") == [0.0556, 0.0556] and trials_ci(before.iloc[:1], "gap", 0, "k") == [
        0,
        0.1,
    ]
    assert trials_ci(before.iloc[:0], "gap", 0, "k") is None
    acc = tuning_acceptance({"m": {"low_spuriosity": e}}, ["m"], 0.05)["m"]
    assert acc["gap_before_ci"] == [0.0, 0.12] and acc["gap_after_ci"] == [-0.02, 0.12]
