"""BAM's interventional checks on the tiny stage (tests/measure/conftest.py): X_0s and X_og must be
X_os's twins row for row, and the table has one row per model, image and method with the planted part."""

import pytest

from spurlab.data.imagesets import open_imageset
from spurlab.errors import SpurlabError
from spurlab.io.tables import read_table
from spurlab.measure.interventions_bam import PLANTED, SETS, check_variant_twins, run_bam_interventions


def test_variants_of_other_rows_are_not_twins(bam_stage):
    sets = bam_stage[2]
    paths = {n: sets[n] for n in SETS.values()}
    opened = {n: open_imageset(p) for n, p in paths.items()}
    try:
        check_variant_twins(opened)  # the rendered variants are twins
    finally:
        for s in opened.values():
            s.close()
    swapped = dict(paths, **{SETS["no_object"]: sets["bam_os_train"]})  # another split: other latents
    opened = {n: open_imageset(p) for n, p in swapped.items()}
    try:
        with pytest.raises(SpurlabError, match="rows are not the twins"):
            check_variant_twins(opened)
    finally:
        for s in opened.values():
            s.close()


@pytest.mark.slow
def test_table_has_a_row_per_model_image_and_method(bam_stage, tmp_path):
    cfg, d, sets, dirs = bam_stage
    cfg = dict(cfg, interventions=dict(cfg["interventions"], n_images=dict(cfg["interventions"]["n_images"], bam=3),
                                       methods={"bam": ["gradient"], "posthoc": None}))  # fmt: skip
    info = run_bam_interventions(cfg, dirs, sets, tmp_path / "bam.parquet", threads=1)
    t = read_table(tmp_path / "bam.parquet")
    assert info["rows"] == 3 and len(t) == 3 * len(PLANTED)
    assert dict(zip(t["model"], t["planted"])) == PLANTED and set(t["method"]) == {"gradient"}
    assert t["deletion"].between(0, 1).all() and (t["family"] == "bam").all()
