"""Tidy tables (docs/architecture.md, stage 5): Parquet for machines, a CSV twin for people.

The Parquet file is the contract: its schema metadata holds `spurlab.provenance`, a JSON dict of
what the table was made from (input hashes, settings). `read_table` checks it against what the
consumer expects and fails naming the key that differs. The CSV beside it is written from the
same frame, for spreadsheets and `grep`, and is never read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpurlabError
from .code import code_provenance
from .files import atomic_path

if TYPE_CHECKING:
    import pandas as pd

PROVENANCE_KEY = b"spurlab.provenance"


def write_table(df: pd.DataFrame, path: str | os.PathLike, provenance: dict, csv: bool = True) -> None:
    """`path` (.parquet) with `provenance` in its metadata, and `path` with .csv when `csv`. The
    provenance gets `spurlab_version` and `code_sha256` (`code_provenance`), over any the caller
    passes (a merge copies its shards' provenance): they name the code that wrote the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix != ".parquet":
        raise SpurlabError(f"{path}: a table path must end in .parquet")
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps({**provenance, **code_provenance()}, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    if csv:
        with atomic_path(path.with_suffix(".csv")) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")


def table_provenance(path: str | os.PathLike) -> dict:
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise SpurlabError(f"{path}: no such table")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:  # pyarrow raises several unrelated types for a non-Parquet file
        raise SpurlabError(f"{path}: not a readable Parquet table ({e})") from e
    if PROVENANCE_KEY not in meta:
        raise SpurlabError(f"{path}: not a spurlab table (no provenance metadata)")
    return json.loads(meta[PROVENANCE_KEY])


def read_table(path: str | os.PathLike, expect: dict | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as a DataFrame; each `expect` key must equal the stored provenance value."""
    import pandas as pd

    prov = table_provenance(path)
    for key, want in (expect or {}).items():
        if prov.get(key) != want:
            got = prov.get(key)
            raise SpurlabError(
                f"{path}: provenance '{key}' is {str(got)[:16]}..., expected {str(want)[:16]}...; "
                "rebuild the table from its current inputs"
            )
    df = pd.read_parquet(path)
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SpurlabError(f"{path}: column '{missing[0]}' missing (an older spurlab or another stage wrote it); "
                               "rebuild the table")  # fmt: skip
    return df
