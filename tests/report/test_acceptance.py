"""The acceptance table of results/summary.md: each headline against its rule, from the summaries."""

from spurlab.report.acceptance import acceptance_points
from spurlab.report.summary_md import summary_markdown


def summaries():
    tuning = {
        "erm_a": {"gap_before": 0.2, "cut": 0.7, "accuracy_cost_points": 0.5, "random_cut": 0.1, "holds": True},
        "erm_b": {"gap_before": 0.04, "cut": 0.1, "accuracy_cost_points": 0.0, "random_cut": 0.0, "holds": None},
    }
    return {
        "models": {"cue_class_mean_gap": 0.4, "control_class_mean_gap": -0.01},
        "salient": {"auto_annotator_precision": 0.95, "auto_annotator_recall": 1.0, "headline_sigma": 0.25,
                    "drake": {"erm_a": {"0.25": {"drop_spurious_noise": 0.2, "drop_core_noise": 0.1, "spurious_exceeds_core": True}},
                              "erm_b": {"0.25": {"drop_spurious_noise": 0.1, "drop_core_noise": 0.3, "spurious_exceeds_core": False}}}},
        "spuriosity": {"spuriosity_auc_mean": 0.93, "audited_models": ["erm_a", "erm_b"],
                       "models": {"erm_a": {"collision_class_gap": {"hexagon": -0.4}}, "erm_b": {"collision_class_gap": {"hexagon": -0.2}}},
                       "acceptance": {"tuning": tuning, "collision_gap_negative": {"erm_a": True, "erm_b": True}}},
        "npca": {"planted_cues_recovered": {"npca": 1.0}, "transfer_invariant_max_abs_err": 2e-6,
                 "models": {"robust": {"acc_before": 0.7, "acc_after": 0.695, "spurious_auc_repaired_before": 0.6,
                                       "spurious_auc_repaired_after": 0.7}},
                 "acceptance": {"spufix_raises_repaired_spurious_auc": {"robust": True}}},
    }  # fmt: skip


def test_points_and_verdicts():
    points = {(p.stage, p.point.split(" ")[0]): p for p in acceptance_points(summaries())}
    verdicts = [p.holds for p in acceptance_points(summaries())]
    assert len(verdicts) == 10
    assert verdicts == [True, True, True, False, True, True, True, True, True, True]
    assert "erm_a 0.2 vs 0.1" in points[("salient", "noise")].value
    assert "erm_b: below target" in points[("spuriosity", "low-spuriosity")].value


def test_a_failing_number_is_reported_as_not_holding():
    s = summaries()
    s["npca"]["models"]["robust"]["acc_after"] = 0.68  # 2 points of accuracy
    s["models"]["control_class_mean_gap"] = 0.05
    md = summary_markdown(s)
    assert "## Acceptance" in md and "7 of 10 points hold" in md
    assert md.count("**does not hold**") == 3


def test_no_acceptance_table_without_planted_truth():
    s = summaries()
    s["salient"]["not_computed"] = {"auto_annotator": "the image set has no planted cues (real data)"}
    assert "## Acceptance" not in summary_markdown(s)


def test_interventions_point_holds_only_when_every_model_loses_its_planted_part():
    rec = lambda planted, obj, cue: {"planted": planted, "flip_remove_object": obj, "flip_remove_cue": cue,  # noqa: E731
                                     "holds": (obj > cue) == (planted == "object")}  # fmt: skip
    s = {"families": {"posthoc": {"models": {"normal": rec("object", 0.8, 0.05), "spurious_tag": rec("cue", 0.1, 0.9)}}},
         "planted_order_holds": True}  # fmt: skip
    (p,) = [p for p in acceptance_points({"interventions": s}) if p.stage == "interventions"]
    assert p.holds is True and "posthoc spurious_tag: 0.9 vs 0.1" in p.value
    s["planted_order_holds"] = False
    assert acceptance_points({"interventions": s})[0].holds is False
    assert acceptance_points({"interventions": {"families": {}}})[0].holds is None
    md = summary_markdown({"interventions": s})
    assert "## Interventional checks of explanations" in md and "**Planted order holds: no**" in md


def test_salient_npca_and_bam_points_print_their_intervals():
    """The annotator's precision / recall, the components' recovery, the repaired classes' AUC
    before and after SpuFix and the mean random-region IDR as `value [low, high]`, from the `_ci`
    keys their stages store; a summary without them prints the value alone."""
    s = summaries()
    s["salient"].update(auto_annotator_precision_ci=[0.85, 1.0], auto_annotator_recall_ci=[1.0, 1.0])
    s["npca"]["planted_cues_recovered_ci"] = {"npca": [1.0, 1.0]}
    s["npca"]["models"]["robust"].update(spurious_auc_repaired_before_ci=[0.5, 0.7],
                                         spurious_auc_repaired_after_ci=[0.62, 0.78])  # fmt: skip
    s["bam"] = {"methods": {"gradcam": {"idr_random_baseline": 0.44}, "gradient": {"idr_random_baseline": 0.452}},
                "idr_random_baseline_mean": 0.446, "idr_random_baseline_mean_ci": [0.41, 0.48]}  # fmt: skip
    points = {(p.stage, p.point.split(" ")[0]): p for p in acceptance_points(s)}
    assert points[("salient", "automatic")].value == "0.95 [0.85, 1] / 1 [1, 1]"
    assert points[("npca", "planted")].value == "1 [1, 1]"
    assert points[("npca", "SpuFix")].value == "robust 0.6 [0.5, 0.7] -> 0.7 [0.62, 0.78] (0.5 pts)"
    # with SpuFix's reach: the mean share of the repaired classes' cue-only images it lowers
    s["npca"]["models"]["robust"]["spufix_reach"] = {"disk": {"corrected_neg": 0.0}, "ring": {"corrected_neg": 0.5}}
    points = {(p.stage, p.point.split(" ")[0]): p for p in acceptance_points(s)}
    assert points[("npca", "SpuFix")].value == ("robust 0.6 [0.5, 0.7] -> 0.7 [0.62, 0.78] (0.5 pts; lowers 25% "
                                                "of cue-only images)")  # fmt: skip
    bam = points[("bam", "IDR")]
    assert bam.value == "0.446 [0.41, 0.48]" and bam.holds
    # an older bam summary (no mean stored): the mean over the methods, no interval
    del s["bam"]["idr_random_baseline_mean"], s["bam"]["idr_random_baseline_mean_ci"]
    assert {p.point.split(" ")[0]: p for p in acceptance_points(s) if p.stage == "bam"}["IDR"].value == "0.446"
    assert {(p.stage, p.point.split(" ")[0]): p for p in acceptance_points(summaries())}[
        ("npca", "planted")
    ].value == "1"


def test_collision_gaps_and_tuning_print_their_intervals():
    s = summaries()["spuriosity"]
    s["models"]["erm_b"]["collision_class_gap"] = {"disk": 0.4, "hexagon": -0.2}
    s["models"]["erm_b"]["collision_class_gap_ci"] = {"disk": [0.1, 0.7], "hexagon": [-0.4, 0.0]}
    s["acceptance"]["tuning"]["erm_a"].update(gap_after=0.044, gap_before=0.0556, gap_before_ci=[0.03, 0.08],
                                              gap_after_ci=[0.02, 0.07])  # fmt: skip
    points = {p.point.split(" ")[0]: p for p in acceptance_points({"spuriosity": s})}
    assert points["a"].value == "erm_a hexagon -0.4, erm_b disk 0.4 [0.1, 0.7], hexagon -0.2 [-0.4, 0]"
    assert points["low-spuriosity"].value.startswith("erm_a 0.056 [0.03, 0.08] -> 0.044 [0.02, 0.07] (0.7 cut)")


def test_drake_point_is_judged_at_each_models_onset_sigma():
    """With `drake_onset` in the salient summary each audited model is judged where noise starts to
    cost it accuracy, its sigma printed; a model that no sigma costs anything does not hold; a
    summary without onsets keeps the headline sigma for every model."""
    s = summaries()
    s["salient"]["drake_onset"] = {
        "erm_a": {"sigma": 0.25, "drop_spurious_noise": 0.2, "drop_core_noise": 0.1, "spurious_exceeds_core": True},
        "erm_b": {"sigma": 0.05, "drop_spurious_noise": 0.4, "drop_core_noise": 0.13, "drop_core_noise_ci": [0.0, 0.25],
                  "spurious_exceeds_core": True}}  # fmt: skip
    (p,) = [p for p in acceptance_points(s) if p.point.startswith("noise")]
    assert p.holds is True and "onset sigma" in p.point
    assert p.value == "erm_a (sigma 0.25) 0.2 vs 0.1; erm_b (sigma 0.05) 0.4 vs 0.13 [0, 0.25]"
    s["salient"]["drake_onset"]["erm_b"] = None
    assert [p.holds for p in acceptance_points(s) if p.point.startswith("noise")] == [False]
    md = summary_markdown({"salient": {**s["salient"], "drake_onset": {"erm_a": s["salient"]["drake_onset"]["erm_a"]}}})
    assert "| erm_a | 0.25 | 0.1 | 0.2 | yes |" in md
