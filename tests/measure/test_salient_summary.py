"""The Salient ImageNet summary as a pure function: with planted truth (cue classes, the drake
comparison over them, the automatic annotator's scores) and without (the same comparison over
the classes with both kinds of feature, the planted-truth fields null). On a folder set, end to
end: test_summaries_without_truth.py."""

import pandas as pd

from spurlab.measure.salient_summary import drake_comparison, salient_summary


def test_salient_summary_fields_with_planted_truth_are_unchanged():
    """The pure function on the benchmark's inputs: cue classes and the drake comparison as before,
    nothing listed as not computed."""
    pairs = pd.DataFrame({"class": [0, 0, 1, 1], "class_name": ["a", "a", "b", "b"]})
    ann = pd.DataFrame({"class_index": [0, 0, 1, 1], "feature_index": [1, 2, 1, 2], "source": "auto",
                        "label": ["spurious", "core", "spurious", "core"]})  # fmt: skip
    rows = [
        {
            "model": "m",
            "class_index": c,
            "feature_index": -1,
            "measure": meas,
            "sigma": sg,
            "acc": acc,
            "label": "",
            "l2_mean": 0.0,
        }
        for c in (0, 1)
        for meas in ("core_acc", "spurious_acc")
        for sg, acc in ((0.0, 0.9), (0.25, 0.5 + 0.1 * c))
    ]
    noise = {"m": pd.DataFrame(rows)}
    auto = {"precision": 0.5, "recall": 1.0, "precision_presence_only": 0.5, "recall_presence_only": 1.0,
            "planted_cues_recovered": 1.0, "recovered": {"a/tag": True}}  # fmt: skip
    s = salient_summary(pairs, ann, noise, {"a": ["tag"]}, auto, ["m"], planted_truth=True)
    assert s["cue_classes_with_both"] == ["a"] and s["drake"] == {"m": drake_comparison(noise["m"], [0])}
    assert s["drake_onset"] == {"m": {"sigma": 0.25, **s["drake"]["m"]["0.25"]}}
    assert s["auto_annotator_precision"] == 0.5 and s["planted_cues_recovered"] == 1.0
    # intervals of the annotator's scores: none computed by the caller here, so none reported
    assert s["auto_annotator_precision_ci"] is None and s["planted_cues_recovered_ci"] is None
    scored = {**auto, "precision_ci": [0.3, 0.7], "recall_ci": [1.0, 1.0], "planted_cues_recovered_ci": [1.0, 1.0]}
    s = salient_summary(pairs, ann, noise, {"a": ["tag"]}, scored, ["m"], planted_truth=True)
    assert (s["auto_annotator_precision_ci"], s["auto_annotator_recall_ci"]) == ([0.3, 0.7], [1.0, 1.0])
    assert s["planted_cues_recovered_ci"] == [1.0, 1.0] and s["auto_annotator"]["precision_ci"] == [0.3, 0.7]
    assert s["not_computed"] == {} and s["n_annotated"] == 4
    real = salient_summary(pairs, ann, noise, {}, None, ["m"], planted_truth=False)
    assert real["cue_classes_with_both"] is None and real["drake"] == {"m": drake_comparison(noise["m"], [0, 1])}
    assert real["noise"] == s["noise"] and real["classes_with_both"] == s["classes_with_both"]
    assert real["auto_annotator_precision_ci"] is None and real["planted_cues_recovered_ci"] is None
