"""`npca_annotations` (spurlab.discover.npca_annotate): components labelled by human answers
(coverage-checked), a published list, or kept with the automatic labels they were written with;
neurons untouched. The module's images in the order asked."""

import csv

import numpy as np
import pandas as pd
import pytest

from spurlab.discover.npca_annotate import images_u8, run_component_annotations
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table, table_provenance, write_table

SETTINGS = {"min_spurious_votes": 3, "min_coverage": 1.0}


@pytest.fixture
def pair_stats(tmp_path):
    """Two classes x two components (auto labels unannotated: no masks) and one neuron each."""
    rows = [dict(kind=k, **{"class": c}, class_name=f"c{c}", feature=f, rank=r, label=lab, source=src)
            for c in (0, 1)
            for k, f, r, lab, src in (("component", 3, 1, "unannotated", "none"), ("component", 7, 2, "unannotated", "none"),
                                      ("neuron", 100 + c, 1, "core", "auto"))]  # fmt: skip
    path = tmp_path / "pair_stats.parquet"
    write_table(pd.DataFrame(rows), path, {"bases_sha256": "b" * 64, "components_sha256": "c" * 64})
    return path


def answers(path, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(["WorkerId", "Input.wordnet_id", "Input.class_index", "Input.feature_index", "Input.feature_rank",
                    "Answer.main", "Answer.confidence", "Answer.reasons"])  # fmt: skip
        for c, comp, rank, n_spurious in rows:
            for k in range(5):
                w.writerow([f"W{k}", f"n{c}", c, comp, rank, "background" if k < n_spurious else "main_object", 4, "x"])
    return path


def test_human_answers_label_components_and_keep_neurons(tmp_path, pair_stats):
    # class 0 component 3 spurious, component 7 core; class 1 answered fully too; and a component of
    # another shard (class 5), which is counted, not an error
    csv_path = answers(tmp_path / "a.csv", [(0, 3, 1, 3), (0, 7, 2, 1), (1, 3, 1, 0), (1, 7, 2, 4), (5, 1, 1, 5)])
    out = tmp_path / "pairs.parquet"
    info = run_component_annotations(pair_stats, out, SETTINGS, human_csv=csv_path)
    t = read_table(out, expect={"bases_sha256": "b" * 64})
    comp = t[t["kind"] == "component"].set_index(["class", "feature"])["label"].to_dict()
    assert comp == {(0, 3): "spurious", (0, 7): "core", (1, 3): "core", (1, 7): "spurious"}
    assert (t.loc[t["kind"] == "neuron", "label"] == "core").all()
    assert info == {"components": 4, "spurious": 2, "annotated": 4, "source": "human"}
    prov = table_provenance(out)
    assert prov["coverage"]["answered_not_exported"] == 1 and prov["component_source"] == "human"
    assert prov["components_sha256"] == "c" * 64 and len(prov["pair_stats_sha256"]) == 64


def test_unanswered_components_below_min_coverage_are_refused(tmp_path, pair_stats):
    csv_path = answers(tmp_path / "a.csv", [(0, 3, 1, 3)])
    out = tmp_path / "pairs.parquet"
    with pytest.raises(SpurlabError, match=r"min_coverage: 1 of 4 exported pairs \(25.0%\)"):
        run_component_annotations(pair_stats, out, SETTINGS, human_csv=csv_path)
    assert not out.exists()
    run_component_annotations(pair_stats, out, dict(SETTINGS, min_coverage=0.25), human_csv=csv_path)
    labels = read_table(out).query("kind == 'component'")["label"].tolist()
    assert sorted(labels) == ["spurious", "unannotated", "unannotated", "unannotated"]


def test_published_list_marks_listed_components_spurious(tmp_path, pair_stats):
    published = tmp_path / "components.npy"
    np.save(published, np.array({1: [7, 40], 9: [0]}, dtype=object), allow_pickle=True)
    out = tmp_path / "pairs.parquet"
    info = run_component_annotations(pair_stats, out, SETTINGS, published=published)
    t = read_table(out)
    comp = t[t["kind"] == "component"].set_index(["class", "feature"])
    assert comp["label"].to_dict() == {(0, 3): "core", (0, 7): "core", (1, 3): "core", (1, 7): "spurious"}
    assert set(comp["source"]) == {"published"} and info["spurious"] == 1


def test_without_answers_the_automatic_labels_stay(tmp_path, pair_stats):
    out = tmp_path / "pairs.parquet"
    info = run_component_annotations(pair_stats, out, SETTINGS)
    assert read_table(out).equals(read_table(pair_stats))
    assert info["annotated"] == 0 and table_provenance(out)["component_source"] == "auto"


class _Set:
    image_size = 2

    def images(self, rows):
        assert list(rows) == sorted(rows)  # h5py reads increasing indices only
        return np.stack([np.full((2, 2, 3), r, np.uint8) for r in rows])


def test_images_come_back_in_the_order_asked():
    out = images_u8(_Set(), np.array([5, 1, 3]))
    assert out.dtype == np.uint8 and out.shape == (3, 2, 2, 3)
    assert out[:, 0, 0, 0].tolist() == [5, 1, 3]
    assert images_u8(_Set(), np.array([], np.int64)).shape == (0, 2, 2, 3)
