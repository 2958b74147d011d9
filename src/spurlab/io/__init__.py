"""Reading and writing spurlab's outputs with their provenance, below every stage
(docs/architecture.md#layers):

- `spurlab.io.files`: atomic writes, canonical JSON, content hashes (re-exported here);
- `spurlab.io.hdf5`: opening a spurlab HDF5 file with its format check (`open_h5`, re-exported);
- `spurlab.io.tables`: Parquet tables with provenance metadata and their CSV twins;
- `spurlab.io.figures`: PNG and SVG files with the same bytes for the same figure.

Only the first two are imported here: tables and figures pull in pandas and matplotlib, so their
users import them by name.
"""

from .files import atomic_path, canonical_json, sha256_file, sha256_json, write_json
from .hdf5 import open_h5

__all__ = ["atomic_path", "canonical_json", "open_h5", "sha256_file", "sha256_json", "write_json"]
