"""The `bam` target's summary on the tiny stage (tests/measure/conftest.py: seeded untrained models,
every table): its keys and ranges, and its refusal of tables made from other checkpoints."""

import json

import numpy as np
import pandas as pd
import pytest

from spurlab.config import kseries_codes
from spurlab.errors import SpurlabError
from spurlab.io.tables import write_table
from spurlab.measure.bam_summary import run_bam_summary


@pytest.mark.slow
def test_summary_holds_every_method_metric_and_the_verification(bam_stage, bam_verification, bam_parts, bam_tcav):
    cfg, d, sets, dirs = bam_stage
    s = run_bam_summary(cfg, d / "verification.parquet", bam_parts["contrast"],
                        {c: bam_parts[c] for c in kseries_codes(cfg)}, bam_parts["iir"], d / "tcav.parquet",
                        d / "summary.json", d / "mcs.png")  # fmt: skip
    on_disk = json.loads((d / "summary.json").read_text())
    for m in cfg["bam"]["benchmark"]["methods"]:
        for key in ("mcs", "mcs_random_baseline", "rho_k_series", "idr", "iir"):
            assert key in on_disk["methods"][m]
        for key in ("idr", "iir"):
            v = on_disk["methods"][m][key]
            assert v is None or 0 <= v <= 1
    assert "tcav_mcs" in s and set(s["verification"]) == {"f_o", "f_s"}
    assert set(s["verification"]["f_o"]) == {"os", "0s", "og"}
    assert set(s["k_series_accuracy_drop"]) == {"0.3", "1"}
    assert (d / "mcs.png").stat().st_size > 5000


def test_summary_refuses_tables_of_other_checkpoints(tiny_cfg, tmp_path):
    cfg = tiny_cfg
    write_table(pd.DataFrame({"model": ["f_o"], "set": ["x"], "rows": ["all"], "k": [np.nan], "accuracy": [1.0], "n": [1]}),
                tmp_path / "v.parquet", {"models": {"f_o": "1" * 64}})  # fmt: skip
    write_table(pd.DataFrame({"model": ["f_o"]}), tmp_path / "c.parquet", {"models": {"f_o": "2" * 64}})
    with pytest.raises(SpurlabError, match="made from model f_o"):
        run_bam_summary(cfg, tmp_path / "v.parquet", tmp_path / "c.parquet", {c: tmp_path / "c.parquet" for c in kseries_codes(cfg)},
                        tmp_path / "c.parquet", tmp_path / "c.parquet", tmp_path / "s.json", tmp_path / "f.png")  # fmt: skip
    assert not (tmp_path / "s.json").exists()
