"""results/summary.md from the stage summaries (issue #9): headline numbers with a sentence each,
a section per stage, missing keys as n/a."""

import json

from spurlab.report.summary_md import summary_markdown, write_summary_md

SALIENT = {"n_pairs": 50, "n_spurious": 36, "n_classes_with_spurious": 8, "planted_cues_recovered": 0.8333,
           "auto_annotator_precision": 0.64, "auto_annotator_recall": 1.0, "headline_sigma": 0.25,
           "drake": {"erm_a": {"0.25": {"drop_core_noise": 0.1, "drop_spurious_noise": 0.4, "spurious_exceeds_core": True}}}}  # fmt: skip


def test_summary_md_has_headline_numbers_and_a_sentence_each(tmp_path):
    (tmp_path / "salient.json").write_text(json.dumps(SALIENT))
    (tmp_path / "new.json").write_text(json.dumps({"known_spurious_detected": 0.25, "by_method": {"gradient": 0.5}}))
    text = write_summary_md(
        {"salient": tmp_path / "salient.json", "newstage": tmp_path / "new.json"}, tmp_path / "s.md"
    )
    assert (tmp_path / "s.md").read_text() == text
    assert "## Salient ImageNet" in text and "36 of 50" in text and "Planted cues recovered: 83.3%" in text
    headline = [line for line in text.splitlines() if line.startswith("- **")]
    assert all(line.split("**")[2].strip(" :(") for line in headline[:3])  # a sentence after each number
    assert "| erm_a | 0.1 | 0.4 | yes |" in text
    # a stage without a writer still gets its numbers
    assert "## newstage" in text and "known_spurious_detected = 0.25" in text and "gradient 0.5" in text


def test_summary_md_posthoc_section_from_a_real_summary_layout():
    s = {"aligned_class": "square", "thresholds": {"normal": 0.1, "spurious": 0.85},
         "conditions": {"normal": "normal", "spurious_tag": "spurious"},
         "spurious_score": {"normal": {"tag": 0.05, "tag_ci": [0.01, 0.1]}, "spurious_tag": {"tag": 0.9}},
         "spurious_score_max": {"normal": {"max": 0.07, "max_ci": [0.03, 0.12]}, "spurious_tag": {"max": 0.9}},
         "spurious_score_by_class": {"normal": {"tag": {"square": 0.05, "disk": 0.07}}, "spurious_tag": {"tag": {"square": 0.9}}},
         "attribution": {"tag": {"gradient": {k: {"mean": 0.2, "sem": 0.01, "n": 8, "mean_ci": [0.18, 0.22]}
                                              for k in ("kssd", "ccm", "fam", "famgt")}}},
         "findings": {"fam_above_ccm": {"tag": {"gradient": False}}, "kssd_visible_above_blur": {"tag": {"gradient": True}}},
         "tcav_ks": {"tag": {k: {"reject": k == "kssd", "p_value": 0.01 if k == "kssd" else 0.5} for k in ("kssd", "ccm", "fam")}},
         "icm_ks": {"tag": {k: {"reject": False, "p_value": 0.7} for k in ("kssd", "ccm", "fam")}},
         "study_simulated": {"planted": {"condition": "spurious", "effect": -1.0, "method": "smoothgrad"},
                             "by_condition": {"blinded/spurious": {"reject": True}, "blinded/normal": {"reject": False}}}}  # fmt: skip
    text = summary_markdown({"posthoc": s})
    assert "## Post hoc explanations" in text and "normal normal, spurious_tag spurious" in text
    # aligned score, then the highest over every class, with their intervals (none: the value alone)
    assert "| normal | 0.05 [0.01, 0.1] | 0.07 [0.03, 0.12] | normal |" in text
    assert "| spurious_tag | 0.9 | 0.9 | spurious |" in text
    assert "| tag | gradient | 0.2 [0.18, 0.22] | 0.2 [0.18, 0.22] | 0.2 [0.18, 0.22] | 0.2 [0.18, 0.22] |" in text
    assert "FAM above CCM: 0 of 1" in text and "K-SSD of the visible signals above blur's: 1 of 1" in text
    assert "| tag | TCAV | reject (p 0.01) | keep (p 0.5) | keep (p 0.5) |" in text
    assert "found in blinded/spurious**" in text and "nothing where there is none" in text


def test_summary_md_tolerates_missing_keys():
    text = summary_markdown({"npca": {}, "bam": {}, "spuriosity": {}, "lightweight": {}})
    assert text.count("## ") == 4 and "n/a" in text


def test_summary_md_prints_headlines_with_their_intervals():
    s = {"spuriosity": {"spuriosity_auc_mean": 0.8123, "spuriosity_auc_mean_ci": [0.7011, 0.9002],
                        "gap_correlation_mean": 0.5,
                        "models": {"erm_a": {"acc": 0.9, "acc_ci": [0.85, 0.95], "acc_low": 0.8, "acc_high": 0.95,
                                             "mean_gap": 0.15, "mean_gap_ci": [0.1, 0.2]}}}}  # fmt: skip
    text = summary_markdown(s)
    assert "Spuriosity AUC against planted cues 0.812 [0.701, 0.9]**" in text
    assert "| erm_a | 0.9 [0.85, 0.95] | 0.8 | 0.95 | 0.15 [0.1, 0.2] |" in text  # acc_low without one: the value


def test_summary_md_prints_the_annotator_scores_and_recovery_with_their_intervals():
    s = {"salient": {**SALIENT, "planted_cues_recovered_ci": [0.5, 1.0], "auto_annotator_precision": 0.897,
                     "auto_annotator_precision_ci": [0.8, 0.97], "auto_annotator_recall": 1.0,
                     "auto_annotator_recall_ci": [1.0, 1.0]},
         "npca": {"planted_cues_recovered": {"npca": 1.0, "neurons_top5": 0.5},
                  "planted_cues_recovered_ci": {"npca": [1.0, 1.0], "neurons_top5": [0.25, 0.75]},
                  "annotator_precision": {"npca": 0.9}, "annotator_precision_ci": {"npca": [0.8, 1.0]}},
         "lightweight": {"planted_cues_recovered": 0.5, "planted_cues_recovered_ci": [0.0, 1.0]}}  # fmt: skip
    text = summary_markdown(s)
    assert "Planted cues recovered: 83.3% [50.0%, 100.0%]**" in text
    assert "Automatic annotator precision 0.897 [0.8, 0.97], recall 1 [1, 1]**" in text
    assert "NPCA 100.0% [100.0%, 100.0%], top-5 neurons 50.0% [25.0%, 75.0%], top-10 neurons n/a**" in text
    assert "Annotator precision: NPCA 0.9 [0.8, 1], neurons n/a**" in text
    assert "Planted cues recovered: 50.0% [0.0%, 100.0%]; annotator precision n/a" in text


def test_summary_md_prints_where_spufix_reaches():
    reach = {"disk": {"transfer_corr": 0.825, "corrected_pos": 0.63, "correction_pos": 0.283,
                      "corrected_neg": 0.0, "correction_neg": 0.0}}  # fmt: skip
    s = {"npca": {"models": {"erm_a": {"retrieved_auc_before": 0.9, "spufix_reach": reach},
                             "erm_b": {"retrieved_auc_before": 0.8, "spufix_reach": {}}}}}  # fmt: skip
    text = summary_markdown(s)
    assert "| erm_a | disk | 0.825 | 63.0% (0.283) | 0.0% (0) |" in text
    assert "erm_b | " not in text.split("SpuFix's reach")[1]  # no repaired class, no row
    assert "SpuFix's reach" not in summary_markdown({"npca": {"models": {"erm_b": {"spufix_reach": {}}}}})
