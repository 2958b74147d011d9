"""Adebayo et al.'s blinded study of explanations: the analysis recovers a planted effect (and not a
null one) and refuses bad responses; the kit of the tiny stage (tests/measure/conftest.py) is
self-contained and blinds one group."""

import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.measure.explanation_study import analyse_responses, analyse_responses_file, assign, simulate_responses


def test_study_analysis_recovers_a_planted_effect_and_not_a_null_one():
    methods = ["smoothgrad", "tcav", "influence", "control"]
    a = assign(40, methods, seed=0)
    assert a.groupby("group").participant.nunique().to_dict() == {"blinded": 40, "not_blinded": 40}
    assert (a.groupby("participant").size() == 2 * len(methods)).all()
    res = analyse_responses(simulate_responses(a, 1.5, "tcav", seed=0))
    for c in res["conditions"]:
        row = c["methods"]["tcav"]
        if c["condition"] == "spurious":
            assert row["reject_diff"] and row["reject_tukey"] and c["anova"]["reject"] and row["diff_vs_control"] < -1
        else:
            assert not row["reject_diff"] and abs(row["diff_vs_control"]) < 0.5
    null = analyse_responses(simulate_responses(a, 0.0, "tcav", seed=0))
    assert not any(c["methods"]["tcav"]["reject_diff"] for c in null["conditions"])


def test_study_analysis_rejects_bad_responses():
    df = pd.DataFrame(
        {"participant": ["P0"], "group": ["blinded"], "condition": ["normal"], "method": ["control"], "likert": [7]}
    )
    with pytest.raises(SpurlabError, match="likert must be 1..5"):
        analyse_responses(df)


@pytest.mark.slow
def test_kit_questionnaires_are_self_contained_and_blinded_and_its_simulation_analyses(posthoc_study, tmp_path):
    html = (posthoc_study / "questionnaire_not_blinded.html").read_text()
    assert (
        "data:image/png;base64" in html and "spurious signal" in html and "http" not in html.replace("http-equiv", "")
    )
    assert "spurious signal" not in (posthoc_study / "questionnaire_blinded.html").read_text()
    res = analyse_responses_file(posthoc_study / "simulated_responses.csv", tmp_path / "analysis.json")
    assert res["conditions"] and (tmp_path / "analysis.json").exists()
