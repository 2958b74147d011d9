"""Human annotations from published and partial answer files (Singla & Feizi 2022, sec. 3.3): the
majority rule on any number of answers, coverage of the exported pairs, delimiters, the
`import-annotations` command, `salient.annotation.min_coverage` and the NPCA component path."""

import csv
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from spurlab.discover.annotate import (
    ANNOTATION_COLUMNS,
    CSV_COLUMNS,
    HUMAN_COLUMNS,
    human_annotations,
    majority_annotations,
    read_mturk_csv,
)
from spurlab.errors import SpurlabError
from tests.discover.test_annotate import DESIGN, FIXTURE, NAMES, records, write_records

LETTERS = {"M": "main_object", "S": "separate_object", "B": "background"}
RANKS = {(c, f): f % 10 + 1 for c, f in DESIGN}  # the fixture's ranks
# pairs of the small subsets file: the fixture's 12 and two nobody answered
EXTRA = {(0, 13): 4, (3, 43): 4}


def oracle(letters: str, k: int = 3) -> tuple[str, str, bool]:
    """(label, kind, few_answers) of one pair's answers, written out case by case."""
    m, s, b = letters.count("M"), letters.count("S"), letters.count("B")
    few = len(letters) < 2 * k - 1
    if s + b >= k:
        kind = "background" if b >= k else "separate_object" if s >= k else "ambiguous"
        return "spurious", kind, few
    if m >= k:
        return "core", "main_object", few
    return "undecided", "undecided", few


def exported_frame(pairs: dict) -> pd.DataFrame:
    keys = sorted(pairs)
    return pd.DataFrame({"class_index": [c for c, _ in keys], "class_name": [NAMES[c] for c, _ in keys],
                         "feature_index": [f for _, f in keys], "feature_rank": [pairs[p] for p in keys]})  # fmt: skip


def answers(path: Path, design: dict, ranks: dict | None = None, delimiter: str = ",") -> Path:
    """An answers file: per pair, one row per letter of its design (worker w0, w1, ...)."""
    ranks = ranks or {}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for (c, f), letters in design.items():
            for i, a in enumerate(letters):
                w.writerow([f"w{i}", f"n{c:08d}", c, f, ranks.get((c, f), 1), LETTERS[a], 4, "a reason, with a comma"])
    return path


def partial_fixture(tmp_path, drop=((2, 30),), extra_rows=()) -> Path:
    """The fixture without the answers of `drop`, plus `extra_rows` (full records) at the end."""
    recs = records()
    head, body = recs[0], recs[1:]
    ci, fi = head.index("Input.class_index"), head.index("Input.feature_index")
    body = [r for r in body if (int(r[ci]), int(r[fi])) not in set(drop)]
    return write_records(tmp_path / "partial.csv", [head] + body + [list(r) for r in extra_rows])


def extra_answer(c, f, worker="w9", rank=1, answer="background") -> list[str]:
    return [worker, f"n{c:08d}", str(c), str(f), str(rank), answer, "4", "why"]


# ------------------------------------------------------------------------------- the majority rule


def test_five_answers_reproduce_the_published_rule():
    votes = read_mturk_csv(FIXTURE, NAMES)
    table, cov = human_annotations(votes, exported_frame(RANKS), 3)
    assert list(table.columns) == list(HUMAN_COLUMNS) and len(table) == 12
    for r in table.itertuples():
        assert (r.label, r.kind, r.few_answers) == oracle(DESIGN[(r.class_index, r.feature_index)])
    assert not table["few_answers"].any() and set(table["label"]) == {"spurious", "core"}
    # the standalone path and majority_annotations give the same rows
    pd.testing.assert_frame_equal(table[list(ANNOTATION_COLUMNS)], majority_annotations(votes))
    alone, _ = human_annotations(votes, None, 3)
    pd.testing.assert_frame_equal(alone, table)
    assert cov["coverage"] == 1.0 and cov["answered_and_exported"] == 12 and cov["answers"] == 60
    assert cov["exported_unanswered"] == cov["answered_not_exported"] == 0 and cov["few_answers"] == []


def test_partial_answers_keep_unanswered_pairs_and_count_others(tmp_path):
    # answers for 11 of the 12 fixture pairs, plus 2 answers to (1, 99), which was not exported
    path = partial_fixture(tmp_path, extra_rows=[extra_answer(1, 99), extra_answer(1, 99, "w8")])
    votes = read_mturk_csv(path, NAMES)
    table, cov = human_annotations(votes, exported_frame(RANKS | EXTRA), 3)
    assert len(table) == 14 and (table["source"] == "human").all()
    unann = table[table["label"] == "unannotated"]
    assert sorted(zip(unann.class_index, unann.feature_index)) == [(0, 13), (2, 30), (3, 43)]
    assert (unann["kind"] == "unannotated").all() and (unann["n_votes"] == 0).all()
    assert unann["mean_confidence"].isna().all() and not unann["few_answers"].any()
    assert (1, 99) not in set(zip(table.class_index, table.feature_index))
    # the exported rank and name are kept, and answered pairs keep their labels
    row = table[(table.class_index == 3) & (table.feature_index == 43)].iloc[0]
    assert (row.feature_rank, row.class_name) == (4, "lighthouse")
    for r in table[table["label"] != "unannotated"].itertuples():
        assert (r.label, r.kind) == oracle(DESIGN[(r.class_index, r.feature_index)])[:2]
    assert cov == {
        "exported": 14, "answered": 12, "answered_and_exported": 11,
        "exported_unanswered": 3, "exported_unanswered_pairs": ["0/13", "2/30", "3/43"],
        "answered_not_exported": 1, "answered_not_exported_pairs": ["1/99"],
        "answered_not_exported_first_row": 57, "answers": 57, "answers_not_exported": 2,
        "few_answers": [], "coverage": 11 / 14,
    }  # fmt: skip
    json.dumps(cov)  # provenance and summary carry it as JSON


def test_few_answers_are_flagged_and_may_stay_undecided(tmp_path):
    design = {(0, 1): "BB", (0, 2): "BBBM", (0, 3): "SBMM", (0, 4): "MMM", (1, 5): "M", (1, 6): "SSBMM",
              (1, 7): "SSSSMMMM"}  # fmt: skip
    votes = read_mturk_csv(answers(tmp_path / "few.csv", design), NAMES)
    table, cov = human_annotations(votes, None, 3)
    got = {(r.class_index, r.feature_index): (r.label, r.kind, r.few_answers) for r in table.itertuples()}
    assert got == {p: oracle(a) for p, a in design.items()}
    assert got[(0, 1)] == ("undecided", "undecided", True)  # 2 answers cannot reach 3
    assert got[(0, 3)] == ("undecided", "undecided", True)  # 2 against 2
    assert got[(0, 2)] == ("spurious", "background", True)  # decided, but on 4 answers
    assert got[(0, 4)] == ("core", "main_object", True)
    assert got[(1, 6)][2] is False and got[(1, 7)][:2] == ("spurious", "separate_object")
    assert cov["few_answers"] == ["0/1", "0/2", "0/3", "0/4", "1/5"]
    # with k = 2 a majority of 3 answers decides: 3 answers are enough
    t2, c2 = human_annotations(votes, None, 2)
    got2 = {(r.class_index, r.feature_index): (r.label, r.kind, r.few_answers) for r in t2.itertuples()}
    assert got2 == {p: oracle(a, 2) for p, a in design.items()}
    assert got2[(0, 4)] == ("core", "main_object", False) and got2[(1, 5)] == ("undecided", "undecided", True)
    assert c2["few_answers"] == ["0/1", "1/5"]
    with pytest.raises(SpurlabError, match="min_spurious_votes"):
        human_annotations(votes, None, 0)


def test_exported_pairs_must_be_unique(tmp_path):
    votes = read_mturk_csv(FIXTURE, NAMES)
    exp = exported_frame(RANKS)
    with pytest.raises(SpurlabError, match="class 0 feature 10 listed twice"):
        human_annotations(votes, pd.concat([exp, exp.iloc[:1]]), 3)


# ----------------------------------------------------------------------------------- reading files


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_files_read_like_commas(tmp_path, delimiter):
    recs = records()
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:  # as a spreadsheet saves it, with a BOM
        csv.writer(fh, delimiter=delimiter, lineterminator="\r\n").writerows(recs)
    got = read_mturk_csv(path, NAMES)
    pd.testing.assert_frame_equal(got, read_mturk_csv(FIXTURE, NAMES))
    assert got.loc[1, "reasons"] == 'the "red" region covers a rope,\nnot the lighthouse itself'
    # row numbers stay those of the file
    bad = [r[:] for r in recs]
    bad[5][bad[0].index("Answer.main")] = "maybe"
    with open(path, "w", newline="") as fh:
        csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(bad)
    with pytest.raises(SpurlabError, match=r"row 6: Answer.main 'maybe'"):
        read_mturk_csv(path, NAMES)


def test_header_without_required_columns_names_delimiter_and_line(tmp_path):
    path = tmp_path / "pipes.csv"
    path.write_text("|".join(CSV_COLUMNS).replace("Answer.", "A_").replace("Input.", "I_") + "\nx|y\n")
    with pytest.raises(
        SpurlabError, match=r"none of the required columns .*delimiter '\|'.*first line 'WorkerId\|"
    ) as e:
        read_mturk_csv(path, NAMES)
    assert str(e.value).startswith(f"{path}: header") and "\n" not in str(e.value)
    (tmp_path / "semi.csv").write_text("worker;class;feature\n1;2;3\n")
    with pytest.raises(SpurlabError, match=r"found delimiter semicolon in the first line 'worker;class;feature'"):
        read_mturk_csv(tmp_path / "semi.csv", NAMES)
    # a header with some of them: the first missing column is named, as before
    (tmp_path / "some.csv").write_text("WorkerId;Input.class_index\nw;1\n")
    with pytest.raises(SpurlabError, match=r"required column 'Input.wordnet_id' missing"):
        read_mturk_csv(tmp_path / "some.csv", NAMES)


def test_standalone_read_needs_no_class_names(tmp_path):
    path = answers(tmp_path / "a.csv", {(999, 5): "BBB", (7, 1): "MMM"})
    recs = records(path)
    recs[4][1] = recs[5][1] = recs[6][1] = ""  # the second pair without a WordNet id
    path = write_records(tmp_path / "b.csv", recs)
    votes = read_mturk_csv(path)
    assert set(zip(votes.class_index, votes.class_name)) == {(999, "n00000999"), (7, "7")}
    with pytest.raises(SpurlabError, match=r"row 2: Input.class_index '999' is not a class index in 0..3"):
        read_mturk_csv(path, NAMES)
    recs[1][2] = "-1"
    with pytest.raises(SpurlabError, match=r"row 2: Input.class_index '-1' is not a non-negative integer"):
        read_mturk_csv(write_records(tmp_path / "c.csv", recs))


# ------------------------------------------------------------------------ subsets file and commands


def write_subsets(path: Path, pairs: dict) -> Path:
    """A salient subsets file with only what the annotation paths read: its pair table (no
    members, no masks), in the layout `SalientSubsets` reads."""
    from spurlab.discover.subsets_file import FORMAT, STAT_COLUMNS

    keys = sorted(pairs)
    n = len(keys)
    with h5py.File(path, "w") as f:
        f.attrs.update(format=FORMAT, class_names=json.dumps(NAMES), planted_cues=json.dumps({}), top_images=2,
                       has_masks=False, imageset_sha256="0" * 64)  # fmt: skip
        for name, v in {"class": [c for c, _ in keys], "feature": [j for _, j in keys],
                        "rank": [pairs[p] for p in keys], "start": np.zeros(n, np.int64),
                        "count": np.zeros(n, np.int64), "importance": np.ones(n)}.items():  # fmt: skip
            f[f"pairs/{name}"] = np.asarray(v)
        for name in STAT_COLUMNS:
            f[f"pairs/{name}"] = np.full(n, np.nan)
    return path


def test_import_annotations_command(tmp_path, capsys):
    from spurlab.cli import main
    from spurlab.io import sha256_file
    from spurlab.io.tables import read_table, table_provenance

    sub = write_subsets(tmp_path / "sub.h5", RANKS | EXTRA)
    csv_path = partial_fixture(tmp_path, extra_rows=[extra_answer(1, 99)])
    out, summary = tmp_path / "imported" / "ann.parquet", tmp_path / "imported" / "summary.json"
    code = main(["import-annotations", "--csv", str(csv_path), "--out", str(out), "--subsets", str(sub),
                 "--summary", str(summary)])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 1
    assert lines[0] == (f"{out}: 7 of 14 pairs spurious, 4 core, 0 undecided, 3 unannotated; "
                        "11 of 14 exported pairs answered, 1 answered pairs not exported")  # fmt: skip
    table = read_table(out, expect={"subsets_sha256": sha256_file(sub)})
    assert list(table.columns) == list(HUMAN_COLUMNS) and len(table) == 14
    assert out.with_suffix(".csv").is_file()
    assert pd.read_csv(out.with_suffix(".csv"))["label"].value_counts().to_dict() == {"spurious": 7, "core": 4,
                                                                                      "unannotated": 3}  # fmt: skip
    prov = table_provenance(out)
    assert prov["human_csv_sha256"] == sha256_file(csv_path) and prov["coverage"]["answered_and_exported"] == 11
    s = json.loads(summary.read_text())
    assert {k: s[k] for k in ("pairs", "spurious", "core", "undecided", "unannotated", "classes_with_spurious")} == {
        "pairs": 14,
        "spurious": 7,
        "core": 4,
        "undecided": 0,
        "unannotated": 3,
        "classes_with_spurious": 4,
    }
    cov = s["coverage"]
    assert (cov["exported"], cov["answered_and_exported"], cov["exported_unanswered"], cov["answered_not_exported"]) \
        == (14, 11, 3, 1)  # fmt: skip
    assert cov["exported_unanswered_pairs"] == ["0/13", "2/30", "3/43"] and cov["answered_not_exported_pairs"] == [
        "1/99"
    ]
    assert cov["coverage"] == pytest.approx(11 / 14)
    assert s["kinds"] == {"background": 3, "separate_object": 2, "ambiguous": 2}  # (2, 30), unanswered, is core

    # standalone: every answered pair counts, no coverage block
    alone, alone_summary = tmp_path / "alone.parquet", tmp_path / "alone.json"
    assert main(["import-annotations", "--csv", str(csv_path), "--out", str(alone), "--summary", str(alone_summary),
                 "--min-spurious-votes", "3"]) == 0  # fmt: skip
    s = json.loads(alone_summary.read_text())
    assert "coverage" not in s and (s["pairs"], s["undecided"], s["unannotated"]) == (12, 1, 0)  # (1, 99): 1 answer
    t = read_table(alone)
    row = t[(t.class_index == 1) & (t.feature_index == 99)].iloc[0]
    assert (row.label, row.few_answers, row.class_name) == ("undecided", True, "n00000001")
    assert "subsets_sha256" not in table_provenance(alone)


def test_import_annotations_bad_input_is_one_line(tmp_path, capsys):
    from spurlab.cli import main

    (tmp_path / "empty.csv").write_text("")
    assert main(["import-annotations", "--csv", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "a.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0] == f"spurlab: error: {tmp_path / 'empty.csv'}: empty file, expected the MTurk answers layout"
    )
    assert main(["import-annotations", "--csv", str(FIXTURE), "--out", str(tmp_path / "a.table")]) == 2
    assert "must end in .parquet" in capsys.readouterr().err
    assert not list(tmp_path.glob("a.*"))


HUMAN = {"source": "human", "human_csv": None, "min_spurious_votes": 3, "min_coverage": 1.0, "auto_criterion": "hot",
         "auto_threshold": 0.5}  # fmt: skip


def test_annotations_rule_keeps_unanswered_pairs_and_checks_coverage(tmp_path):
    from spurlab.discover.auto_annotate import run_annotations
    from spurlab.io.tables import read_table, table_provenance

    sub = write_subsets(tmp_path / "sub.h5", RANKS | EXTRA)
    csv_path = partial_fixture(tmp_path, extra_rows=[extra_answer(1, 99)])
    out = tmp_path / "ann.parquet"
    with pytest.raises(SpurlabError) as e:
        run_annotations(sub, out, dict(HUMAN, human_csv=str(csv_path)), human_csv=csv_path)
    msg = str(e.value)
    assert msg.startswith(
        "config key salient.annotation.min_coverage: 11 of 14 exported pairs (78.6%) have answers in "
    )
    assert str(csv_path) in msg and "below 1" in msg and "first unanswered class/feature 0/13" in msg
    assert f"1 answered pair(s) were not exported, the first at {csv_path}: row 57" in msg
    assert not out.exists() and not out.with_suffix(".csv").exists()

    info = run_annotations(sub, out, dict(HUMAN, min_coverage=0.75), human_csv=csv_path)
    assert (info["pairs"], info["spurious"], info["core"], info["unannotated"], info["undecided"]) == (14, 7, 4, 3, 0)
    table = read_table(out)
    assert len(table) == 14 and (table["label"] == "unannotated").sum() == 3
    prov = table_provenance(out)
    assert prov["coverage"]["exported_unanswered_pairs"] == ["0/13", "2/30", "3/43"]
    assert prov["coverage"]["answered_not_exported"] == 1 and prov["min_spurious_votes"] == 3

    # settings without the key (built in code) want every pair answered
    legacy = {k: v for k, v in HUMAN.items() if k != "min_coverage"}
    with pytest.raises(SpurlabError, match="min_coverage: 11 of 14"):
        run_annotations(sub, tmp_path / "x.parquet", legacy, human_csv=csv_path)


def test_answers_to_other_pairs_only_name_their_first_row(tmp_path):
    """A file written for other pairs (another model's top features): the refusal says where."""
    from spurlab.discover.auto_annotate import run_annotations

    sub = write_subsets(tmp_path / "sub.h5", {(0, 10): 1})
    path = write_records(tmp_path / "other.csv", [list(CSV_COLUMNS), extra_answer(0, 11), extra_answer(2, 5, "w2")])
    where = re.escape(f"the first at {path}: row 2")
    with pytest.raises(
        SpurlabError, match=rf"0 of 1 exported pairs .*2 answered pair\(s\) were not exported, {where}$"
    ):
        run_annotations(sub, tmp_path / "ann.parquet", dict(HUMAN, min_coverage=0.5), human_csv=path)
    info = run_annotations(sub, tmp_path / "ann.parquet", dict(HUMAN, min_coverage=0.0), human_csv=path)
    assert (info["pairs"], info["unannotated"], info["spurious"]) == (1, 1, 0)


def test_min_coverage_config_key():
    import copy

    from spurlab.config import load_config, validate_config
    from tests.conftest import ROOT

    base = load_config(ROOT / "config" / "config.yaml")
    assert base["salient"]["annotation"]["min_coverage"] == 1.0
    assert load_config(ROOT / "config" / "tiny.yaml")["salient"]["annotation"]["min_coverage"] == 1.0
    for bad, message in ((1.5, "1.5 is greater than the maximum of 1"), (-0.1, "less than the minimum of 0"),
                         ("all", "is not of type 'number'")):  # fmt: skip
        cfg = copy.deepcopy(base)
        cfg["salient"]["annotation"]["min_coverage"] = bad
        with pytest.raises(SpurlabError, match=rf"config key salient.annotation.min_coverage: .*{message}"):
            validate_config(cfg)
    cfg = copy.deepcopy(base)
    del cfg["salient"]["annotation"]["min_coverage"]
    with pytest.raises(SpurlabError, match="'min_coverage' is a required property"):
        validate_config(cfg)


# ------------------------------------------------------------------------------- NPCA and summary


def test_component_answers_of_other_shards_are_counted_not_refused(tmp_path):
    from spurlab.discover.npca_annotate import annotate_pairs

    # this shard: class 0's components 0, 1, 2 and two neurons; the file also answers class 3 (another shard)
    design = {(0, 0): "BBBMM", (0, 1): "MMMMS", (3, 0): "SSSMM", (3, 4): "MMMMM"}
    path = answers(tmp_path / "components.csv", design, ranks={(0, 0): 1, (0, 1): 2, (3, 0): 1, (3, 4): 2})
    pairs = pd.DataFrame({"kind": ["component"] * 3 + ["neuron"] * 2, "class": 0, "class_name": "heron",
                          "feature": [0, 1, 2, 17, 3], "rank": [1, 2, 3, 1, 2]})  # fmt: skip
    annotation = dict(HUMAN, human_csv=str(path))
    cov = {}
    out = annotate_pairs(pairs, annotation, NAMES, has_masks=False, coverage=cov)
    comp = out[out["kind"] == "component"].set_index("feature")
    assert comp["label"].to_dict() == {0: "spurious", 1: "core", 2: "unannotated"}
    assert (comp["source"] == "human").all()
    assert (out.loc[out["kind"] == "neuron", "label"] == "unannotated").all()
    assert (cov["answered_and_exported"], cov["exported_unanswered_pairs"], cov["answered_not_exported_pairs"]) == (
        2,
        ["0/2"],
        ["3/0", "3/4"],
    )
    # the old call without `coverage` still works
    again = annotate_pairs(pairs, annotation, NAMES, has_masks=False)
    pd.testing.assert_frame_equal(again, out)


def test_salient_summary_counts_unannotated_and_undecided():
    from spurlab.measure.salient_summary import salient_summary

    pairs = pd.DataFrame({"class": [0, 0, 1, 1], "class_name": ["heron", "heron", "cow", "cow"],
                          "feature": [1, 2, 3, 4], "rank": [1, 2, 1, 2]})  # fmt: skip
    ann = pd.DataFrame({"class_index": [0, 0, 1, 1], "feature_index": [1, 2, 3, 4],
                        "label": ["spurious", "unannotated", "undecided", "core"], "source": "human"})  # fmt: skip
    s = salient_summary(pairs, ann, {}, {}, None, [])
    assert (s["n_pairs"], s["n_spurious"], s["n_unannotated"], s["n_undecided"]) == (4, 1, 1, 1)
    assert s["n_classes_with_spurious"] == 1 and s["classes_with_both"] == []  # neither counts as core
