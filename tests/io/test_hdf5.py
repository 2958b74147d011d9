"""spurlab HDF5 files: `create_h5` keeps attrs in creation order and stamps the code last, only
when the block succeeds; `open_h5` refuses a missing file, a non-HDF5 file and another format in
one line each."""

import h5py
import pytest

from spurlab.errors import SpurlabError
from spurlab.io import code_provenance
from spurlab.io.hdf5 import create_h5, open_h5, stamp_code


def test_create_then_open(tmp_path):
    with create_h5(tmp_path / "a.h5") as f:
        f.attrs["format"] = "spurlab-x-v1"
        f.attrs["zeta"] = 1
        f.attrs["alpha"] = 2
        f.attrs["code_sha256"] = "copied from an input"
        f["d"] = [1, 2, 3]
    with open_h5(tmp_path / "a.h5", "spurlab-x-v1", "x file") as f:
        assert list(f.attrs)[:3] == ["format", "zeta", "alpha"]  # creation order, not sorted
        assert {k: f.attrs[k] for k in code_provenance()} == code_provenance()  # over any copied value
        assert f["d"][:].tolist() == [1, 2, 3]


def test_a_failed_block_is_not_stamped(tmp_path):
    with pytest.raises(RuntimeError):
        with create_h5(tmp_path / "b.h5") as f:
            f.attrs["format"] = "x"
            raise RuntimeError("writer failed")
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert "code_sha256" not in f.attrs
    with h5py.File(tmp_path / "c.h5", "w") as f:
        stamp_code(f)
        assert f.attrs["code_sha256"] == code_provenance()["code_sha256"]


def test_open_refuses_in_one_line(tmp_path):
    with pytest.raises(SpurlabError, match=r"nope.h5: no such x file$"):
        open_h5(tmp_path / "nope.h5", "fmt", "x file")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(SpurlabError, match=r"text.h5: not a readable HDF5 file \(") as e:
        open_h5(tmp_path / "text.h5", "fmt", "x file")
    assert "\n" not in str(e.value)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "spurlab-other-v1"
    with pytest.raises(SpurlabError, match=r"other.h5: not a spurlab x file$"):
        open_h5(tmp_path / "other.h5", "spurlab-x-v1", "x file")
