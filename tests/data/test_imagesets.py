"""Image-set HDF5 format: atomic, hash-stamped, verifiable; index sets decode their files on the fly."""

import h5py
import numpy as np
import pytest
from PIL import Image

from spurlab.data.imagesets import FORMAT, ImageSet, open_imageset, write_imageset
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError
from spurlab.io import sha256_file


@pytest.fixture
def written(tiny_cfg, tmp_path):
    plan, attrs = build_plan(tiny_cfg, "train")
    path = tmp_path / "train.h5"
    sha = write_imageset(path, plan.n, plan.chunks(), attrs)
    return path, sha


def test_layout_and_attrs(written, tiny_cfg):
    path, sha = written
    with ImageSet(path) as s:
        assert len(s) == tiny_cfg["datasets"]["n_images"]["train"]
        assert s.sha256 == sha and s.attrs["format"] == FORMAT
        assert s.attrs["seed"] == 0 and s.attrs["generator_version"]
        assert s.attrs["config"]["datasets"] == tiny_cfg["datasets"]
        assert s.f["images"].dtype == np.uint8 and s.f["images"].shape == (len(s), 32, 32, 3)
        assert s.f["images"].chunks is not None
        assert set(s.mask_names) == {"object", *tiny_cfg["datasets"]["cues"]}
        assert {"scene", "cue_water_bg", "object_present"} <= set(s.meta_columns)
        assert len(s.meta()) == len(s)
        assert s.ids[0] == b"train-0000000"
        s.verify()


def test_tampering_is_detected(written):
    path, _ = written
    with h5py.File(path, "r+") as f:
        f["images"][0, 0, 0, 0] ^= 1
    with pytest.raises(SpurlabError, match="does not match its sha256"):
        ImageSet(path).verify()


def test_expected_hash_mismatch_fails_clearly(written):
    path, sha = written
    open_imageset(path, expected_sha256=sha)
    with pytest.raises(SpurlabError, match="does not match the expected"):
        open_imageset(path, expected_sha256="0" * 64)


def test_failed_write_leaves_nothing(tmp_path, tiny_cfg):
    plan, attrs = build_plan(tiny_cfg, "train")

    def broken():
        yield plan.chunk(0)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_imageset(tmp_path / "x.h5", plan.n, broken(), attrs)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SpurlabError, match="wrote 256 rows, declared 400"):
        write_imageset(tmp_path / "x.h5", plan.n, iter([plan.chunk(0)]), attrs)
    assert list(tmp_path.iterdir()) == []


def test_rewriting_gives_identical_bytes(written, tiny_cfg, tmp_path):
    path, _ = written
    plan, attrs = build_plan(tiny_cfg, "train")
    again = tmp_path / "again.h5"
    write_imageset(again, plan.n, plan.chunks(2), attrs)
    assert sha256_file(again) == sha256_file(path)


def test_index_sets_decode_files_on_the_fly(tmp_path):
    """The seam for real-data folders: an index set reads pixels from paths."""
    paths = []
    for i in range(3):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(p)
        paths.append(str(p).encode())
    Image.fromarray(np.full((20, 12, 3), 200, np.uint8)).save(tmp_path / "big.png")
    paths.append(str(tmp_path / "big.png").encode())
    paths.append(str(tmp_path / "missing.png").encode())
    idx = tmp_path / "index.h5"
    with h5py.File(idx, "w") as f:
        f["paths"] = np.array(paths)
        f["labels"] = np.arange(5)
        f.attrs.update(
            format=FORMAT, kind="index", n_images=5, class_names='["a","b","c","d","e"]', image_size=8, sha256="x"
        )
    s = ImageSet(idx)
    assert s.images(2)[0, 0, 0] == 80
    assert s.images(1).shape == (8, 8, 3)
    assert s.images(3).shape == (8, 8, 3) and s.images(3)[0, 0, 0] == 200  # resized to the set's size
    assert s.images(slice(0, 4)).shape == (4, 8, 8, 3)
    with pytest.raises(SpurlabError, match="missing.png: cannot decode image"):
        s.images(4)


def test_not_an_imageset(tmp_path):
    p = tmp_path / "junk.h5"
    p.write_bytes(b"not hdf5")
    with pytest.raises(SpurlabError, match="junk.h5: not a readable HDF5 file"):
        ImageSet(p)
    with pytest.raises(SpurlabError, match="no such image set"):
        ImageSet(tmp_path / "nope.h5")
