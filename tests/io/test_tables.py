"""Tidy tables: Parquet with provenance metadata (stamped with the code) and a CSV twin; reading
checks the provenance the consumer expects and the columns it needs, each refusal in one line."""

import numpy as np
import pandas as pd
import pytest

from spurlab.errors import SpurlabError
from spurlab.io import code_provenance
from spurlab.io.tables import read_table, table_provenance, write_table

DF = pd.DataFrame({"model": ["a", "b"], "value": [0.1234567891, np.nan], "n": [3, 4]})


def test_round_trip_with_provenance_and_csv_twin(tmp_path):
    write_table(DF, tmp_path / "t.parquet", {"input_sha256": "x" * 64, "code_sha256": "copied"})
    assert table_provenance(tmp_path / "t.parquet") == {"input_sha256": "x" * 64, **code_provenance()}
    back = read_table(tmp_path / "t.parquet", expect={"input_sha256": "x" * 64}, columns=["model", "n"])
    pd.testing.assert_frame_equal(back, DF)
    assert (tmp_path / "t.csv").read_text().splitlines() == ["model,value,n", "a,0.123457,3", "b,,4"]
    write_table(DF.set_index("model"), tmp_path / "u.parquet", {}, csv=False)  # the index is dropped
    assert not (tmp_path / "u.csv").exists() and list(read_table(tmp_path / "u.parquet").columns) == ["value", "n"]


def test_refusals_name_the_file_and_what_differs(tmp_path):
    with pytest.raises(SpurlabError, match=r"t.csv: a table path must end in .parquet"):
        write_table(DF, tmp_path / "t.csv", {})
    write_table(DF, tmp_path / "t.parquet", {"input_sha256": "a" * 64})
    with pytest.raises(SpurlabError, match=r"provenance 'input_sha256' is aaaaaaaaaaaaaaaa\.\.\., expected bbbb"):
        read_table(tmp_path / "t.parquet", expect={"input_sha256": "b" * 64})
    with pytest.raises(SpurlabError, match=r"t.parquet: column 'gap' missing"):
        read_table(tmp_path / "t.parquet", columns=["model", "gap"])
    with pytest.raises(SpurlabError, match=r"none.parquet: no such table"):
        read_table(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SpurlabError, match=r"bad.parquet: not a readable Parquet table"):
        table_provenance(tmp_path / "bad.parquet")
    DF.to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(SpurlabError, match=r"plain.parquet: not a spurlab table \(no provenance metadata\)"):
        read_table(tmp_path / "plain.parquet")
