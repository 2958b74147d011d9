"""Annotation import/export (docs/methods.md#annotation): MTurk CSV validation, majority rule, task pages."""

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spurlab.discover.annotate import (
    ANNOTATION_COLUMNS,
    ANSWERS,
    CSV_COLUMNS,
    INT_COLUMNS,
    AnnotationTask,
    export_tasks,
    majority_annotations,
    read_mturk_csv,
)
from spurlab.errors import SpurlabError

FIXTURE = Path(__file__).parent / "fixtures" / "mturk_answers_small.csv"
NAMES = ["heron", "cow", "camel", "lighthouse"]
# The fixture: 12 pairs x 5 workers, answers per pair (M main, S separate, B background), in file order.
DESIGN = {
    (3, 40): "SSSSB",
    (3, 42): "BSMMM",
    (3, 41): "MMMMB",
    (0, 10): "MMMMM",
    (0, 11): "BBBBB",
    (0, 12): "SSSMM",
    (2, 30): "SSMMM",
    (2, 31): "BSSBM",
    (2, 32): "BBBSS",
    (1, 20): "BBSMM",
    (1, 22): "BBBMM",
    (1, 21): "BBMMM",
}
PAIRS = set(DESIGN)


def records(path=FIXTURE) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def write_records(path: Path, recs: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(recs)
    return path


def mutated(tmp_path, record: int, column: str, value: str) -> Path:
    """The fixture with data record `record` (0-based; spreadsheet row record + 2) changed in `column`."""
    recs = records()
    recs[record + 1][recs[0].index(column)] = value
    return write_records(tmp_path / "answers.csv", recs)


# ------------------------------------------------------------------------------------- majority rule


def test_published_answer_strings():
    assert ANSWERS == ("main_object", "separate_object", "background")
    assert CSV_COLUMNS[5] == "Answer.main"


def test_fixture_majority_rule():
    votes = read_mturk_csv(FIXTURE, NAMES, pairs=PAIRS)
    assert len(votes) == 60 and votes["confidence"].dtype == np.int64
    ann = majority_annotations(votes)
    assert list(ann.columns) == list(ANNOTATION_COLUMNS)
    assert len(ann) == 12
    assert (ann["label"] == "spurious").sum() == 7 and (ann["label"] == "core").sum() == 5
    spur = ann[ann["label"] == "spurious"]["kind"].value_counts().to_dict()
    assert spur == {"background": 3, "separate_object": 2, "ambiguous": 2}
    assert set(ann[ann["label"] == "core"]["kind"]) == {"main_object"}
    lab = {(r.class_index, r.feature_index): (r.label, r.kind) for r in ann.itertuples()}
    assert lab[(1, 20)] == ("spurious", "ambiguous")  # 2 background + 1 separate + 2 main
    assert lab[(1, 21)] == ("core", "main_object")  # 2 non-main of 5: below the 3-vote threshold
    assert lab[(1, 22)] == ("spurious", "background")  # 3 of 5: on the threshold
    assert lab[(3, 40)] == ("spurious", "separate_object")
    assert lab[(2, 31)] == ("spurious", "ambiguous")
    row = ann[(ann.class_index == 3) & (ann.feature_index == 40)].iloc[0]
    assert (row.votes_main, row.votes_separate, row.votes_background, row.n_votes) == (0, 4, 1, 5)
    assert row.mean_confidence == pytest.approx(4.2)  # "5", "5.0", "4.0", "4", "3.0"
    assert row.class_name == "lighthouse" and row.source == "human"
    # sorted by class, then rank (the file lists class 3 first and ranks out of order)
    assert list(zip(ann.class_index, ann.feature_rank)) == [(c, r) for c in range(4) for r in (1, 2, 3)]
    for col in INT_COLUMNS:
        assert ann[col].dtype == np.int64, col
    assert ann["mean_confidence"].dtype == np.float64


def test_threshold_parameter_changes_labels():
    ann = majority_annotations(read_mturk_csv(FIXTURE, NAMES), min_spurious_votes=2)
    lab = {(r.class_index, r.feature_index): (r.label, r.kind) for r in ann.itertuples()}
    assert lab[(1, 21)] == ("spurious", "background")  # 2 background now suffice
    assert lab[(1, 20)] == ("spurious", "background")
    assert lab[(2, 31)] == ("spurious", "background")  # 2 B and 2 S both reach 2: background is checked first
    assert lab[(3, 42)] == ("spurious", "ambiguous")  # 1 + 1
    assert lab[(3, 41)] == ("core", "main_object")
    with pytest.raises(SpurlabError, match="min_spurious_votes"):
        majority_annotations(read_mturk_csv(FIXTURE, NAMES), min_spurious_votes=0)


def test_multiline_reason_and_extra_columns(tmp_path):
    recs = records()
    recs = [r + [x] for r, x in zip(recs, ["HITId"] + [f"h{i}" for i in range(len(recs) - 1)])]
    votes = read_mturk_csv(write_records(tmp_path / "extra.csv", recs), NAMES)
    assert "HITId" not in votes.columns
    assert votes.loc[1, "reasons"] == 'the "red" region covers a rope,\nnot the lighthouse itself'
    assert list(votes["row"][:3]) == [2, 3, 4]


# ----------------------------------------------------------------------------------- malformed rows


@pytest.mark.parametrize(
    "record, column, value, message",
    [
        (7, "Input.class_index", "4", r"row 9: Input.class_index '4' is not a class index"),
        (7, "Input.class_index", "x", r"row 9: Input.class_index"),
        (12, "Input.feature_index", "-1", r"row 14: Input.feature_index '-1'"),
        (20, "Answer.confidence", "0", r"row 22: Answer.confidence '0'"),
        (20, "Answer.confidence", "6", r"row 22: Answer.confidence '6'"),
        (20, "Answer.confidence", "4.5", r"row 22: Answer.confidence"),
        (20, "Answer.confidence", "", r"row 22: Answer.confidence"),
        (33, "Answer.main", "maybe", r"row 35: Answer.main 'maybe' is not one of"),
        (40, "WorkerId", " ", r"row 42: empty WorkerId"),
        (44, "Input.feature_rank", "2", r"row 46: Input.feature_rank 2 .* differs from row 42"),
    ],
)
def test_malformed_row_rejected_with_row_number(tmp_path, record, column, value, message):
    path = mutated(tmp_path, record, column, value)
    with pytest.raises(SpurlabError, match=message) as exc:
        read_mturk_csv(path, NAMES, pairs=PAIRS)
    assert str(exc.value).startswith(f"{path}: row ") and "\n" not in str(exc.value)


def test_unknown_feature_needs_pairs(tmp_path):
    path = mutated(tmp_path, 12, "Input.feature_index", "99")
    with pytest.raises(SpurlabError, match=r"row 14: unknown feature 99 for class 3"):
        read_mturk_csv(path, NAMES, pairs=PAIRS)
    assert len(read_mturk_csv(path, NAMES)) == 60  # without `pairs` any feature index is allowed


def test_duplicate_worker_answer_rejected(tmp_path):
    recs = records()
    recs.insert(9, list(recs[6]))  # record 5 (row 7) again, as record 8 (row 10)
    path = write_records(tmp_path / "dup.csv", recs)
    message = rf"row 10: worker '{recs[6][0]}' already answered class 3 feature 42 in row 7"
    with pytest.raises(SpurlabError, match=message):
        read_mturk_csv(path, NAMES)


def test_missing_column_named_without_row(tmp_path):
    recs = [r[:6] + r[7:] for r in records()]  # drop Answer.confidence
    path = write_records(tmp_path / "nocol.csv", recs)
    with pytest.raises(SpurlabError, match=r"'Answer\.confidence' missing") as exc:
        read_mturk_csv(path, NAMES)
    assert "row" not in str(exc.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SpurlabError, match="no such"):
        read_mturk_csv(tmp_path / "absent.csv", NAMES)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SpurlabError, match="empty"):
        read_mturk_csv(tmp_path / "empty.csv", NAMES)
    (tmp_path / "header.csv").write_text(",".join(CSV_COLUMNS) + "\n")
    with pytest.raises(SpurlabError, match="no answer rows"):
        read_mturk_csv(tmp_path / "header.csv", NAMES)


# ------------------------------------------------------------------------------------------ export


def make_task(c, f, r, name=None, t=2, hw=(8, 10), attacks=True, seed=0):
    rng = np.random.default_rng(seed + 100 * c + f)
    images = rng.integers(0, 256, (t, *hw, 3), dtype=np.uint8)
    nams = rng.random((t, *hw))
    att = rng.integers(0, 256, (t, *hw, 3), dtype=np.uint8) if attacks else None
    return AnnotationTask(c, name or NAMES[c], f, r, images, nams, att, wordnet_id=f"n{c:08d}")


def tasks_for(pairs, **kw):
    ranks = {}
    out = []
    for c, f in sorted(pairs):
        ranks[c] = ranks.get(c, 0) + 1
        out.append(make_task(c, f, ranks[c], **kw))
    return out


def test_export_pages_manifest_index(tmp_path):
    tasks = [
        make_task(0, 10, 1, name='salt & "pepper" <shaker>'),
        make_task(2, 31, 2, attacks=False),
        make_task(0, 7, 2),
    ]
    export_tasks(tmp_path, tasks, class_descriptions={0: "a <b>shaker</b> & mill"})
    man = pd.read_csv(tmp_path / "manifest.csv", dtype={"wordnet_id": str})
    assert list(man.columns) == ["wordnet_id", "class_index", "class_name", "feature_index", "feature_rank", "page"]
    assert list(zip(man.class_index, man.feature_index, man.feature_rank)) == [(0, 10, 1), (0, 7, 2), (2, 31, 2)]
    assert man.page[0] == "class0000_feature00010.html" and man.class_name[0] == 'salt & "pepper" <shaker>'
    assert man.wordnet_id[2] == "n00000002"
    index = (tmp_path / "index.html").read_text()
    for page in man.page:
        assert (tmp_path / page).is_file() and f'href="{page}"' in index
    assert index.index("class0000_feature00007") < index.index("class0002_feature00031")
    page = (tmp_path / "class0000_feature00010.html").read_text()
    for value in ANSWERS:
        assert f'type="radio" name="main" value="{value}"' in page
    assert all(f'name="confidence" value="{i}"' in page for i in range(1, 6))
    assert "salt &amp; &quot;pepper&quot; &lt;shaker&gt;" in page and "<shaker>" not in page
    assert "a &lt;b&gt;shaker&lt;/b&gt; &amp; mill" in page
    assert page.count("data:image/png;base64,") == 6  # 2 images, 2 heatmaps, 2 attacks
    assert "http" not in page and "<textarea" in page and "WorkerId,Input.wordnet_id" in page
    assert (tmp_path / "class0002_feature00031.html").read_text().count("data:image/png;base64,") == 4
    assert not list(tmp_path.glob(".*"))


def test_small_images_are_upscaled(tmp_path):
    import base64
    import io

    from PIL import Image

    export_tasks(tmp_path, [make_task(1, 3, 1, hw=(8, 10))])
    uri = re.search(r'data:image/png;base64,([^"]+)"', (tmp_path / "class0001_feature00003.html").read_text())
    im = Image.open(io.BytesIO(base64.b64decode(uri.group(1))))
    assert im.size == (160, 128)  # x16, nearest


def test_export_is_deterministic(tmp_path):
    for d in ("a", "b"):
        export_tasks(tmp_path / d, tasks_for({(0, 10), (1, 20), (1, 22)}), class_descriptions=["x", "y", "z", "w"])
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 5
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n


def test_failed_export_leaves_no_partial_files(tmp_path):
    good = make_task(0, 10, 1)
    bad = make_task(1, 20, 1)
    bad.nams = bad.nams[:, :4]  # (T, 8, 4) against images (T, 8, 10)
    export_tasks(tmp_path, [make_task(3, 1, 1)])  # an earlier export's manifest and index
    with pytest.raises(SpurlabError, match=r"class0001_feature00020\.html.*nams shape"):
        export_tasks(tmp_path, [good, bad, make_task(2, 30, 1)])
    assert (tmp_path / good.page).is_file()
    assert not (tmp_path / bad.page).exists() and not (tmp_path / "class0002_feature00030.html").exists()
    assert not (tmp_path / "manifest.csv").exists() and not (tmp_path / "index.html").exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_export_rejects_duplicates_and_empty(tmp_path):
    with pytest.raises(SpurlabError, match="exported twice"):
        export_tasks(tmp_path, [make_task(0, 10, 1), make_task(0, 10, 2)])
    with pytest.raises(SpurlabError, match="no annotation tasks"):
        export_tasks(tmp_path / "e", [])


# -------------------------------------------------------------------------------------- round trip


def test_round_trip_manifest_to_annotations(tmp_path):
    export_tasks(tmp_path / "tasks", tasks_for(PAIRS, t=1, hw=(4, 4), attacks=False))
    man = pd.read_csv(tmp_path / "tasks" / "manifest.csv", dtype={"wordnet_id": str})
    letters = {"M": "main_object", "S": "separate_object", "B": "background"}
    rows = [
        [f"w{k}", m.wordnet_id, m.class_index, m.feature_index, m.feature_rank, letters[a], 3, f"reason {k}"]
        for m in man.itertuples()
        for k, a in enumerate(DESIGN[(m.class_index, m.feature_index)])
    ]
    path = write_records(tmp_path / "answers.csv", [list(CSV_COLUMNS)] + rows)
    pairs = set(zip(man.class_index, man.feature_index))
    ann = majority_annotations(read_mturk_csv(path, NAMES, pairs=pairs))
    want = majority_annotations(read_mturk_csv(FIXTURE, NAMES))
    cols = ["class_index", "class_name", "feature_index", "feature_rank", "label", "kind"]
    pd.testing.assert_frame_equal(ann[cols], want[cols])
    assert (ann["mean_confidence"] == 3.0).all()


def test_majority_rule_on_fewer_answers_leaves_ties_undecided(tmp_path):
    """Five answers decide every pair; four split 2 against 2 reach neither threshold (3)."""
    recs = records()
    head, body = recs[0], recs[1:]
    ci, fi = head.index("Input.class_index"), head.index("Input.feature_index")
    # (1, 21) answered BBMMM: its first four answers, BBMM, are 2 against 2
    body = [r for r in body if (r[ci], r[fi]) != ("1", "21")] + [r for r in body if (r[ci], r[fi]) == ("1", "21")][:4]
    ann = majority_annotations(read_mturk_csv(write_records(tmp_path / "four.csv", [head] + body), NAMES))
    lab = {(r.class_index, r.feature_index): (r.label, r.kind, r.n_votes) for r in ann.itertuples()}
    assert lab[(1, 21)] == ("undecided", "undecided", 4)
    assert lab[(1, 20)] == ("spurious", "ambiguous", 5)
    assert list(ann.columns) == list(ANNOTATION_COLUMNS)
