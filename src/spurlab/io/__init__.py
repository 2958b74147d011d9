"""Reading and writing spurlab's outputs with their provenance, below every stage
(docs/architecture.md#layers):

- `spurlab.io.files`: atomic writes, canonical JSON, content hashes (re-exported here);
- `spurlab.io.hdf5`: opening a spurlab HDF5 file with its format check (`open_h5`), creating one
  (`create_h5`; both re-exported);
- `spurlab.io.code`: the hash of the package source a command runs, which every table, HDF5 file
  and JSON file records with the version (`code_provenance`, re-exported);
- `spurlab.io.tables`: Parquet tables with provenance metadata and their CSV twins;
- `spurlab.io.figures`: PNG and SVG files with the same bytes for the same figure.

Only the first three are imported here: tables and figures pull in pandas and matplotlib, so their
users import them by name.
"""

from .code import code_provenance
from .files import atomic_path, canonical_json, sha256_file, sha256_json, write_json
from .hdf5 import create_h5, open_h5

__all__ = ["atomic_path", "canonical_json", "code_provenance", "create_h5", "open_h5", "sha256_file", "sha256_json",
           "write_json"]  # fmt: skip
