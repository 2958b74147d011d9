"""Class shards (issue #10): every per-class stage run as 3 shards and merged equals the same stage
run whole - datasets, attrs and table rows, value for value - and bad shard sets are refused."""

import subprocess

import h5py
import numpy as np
import pytest

from spurlab.errors import SpurlabError
from spurlab.shards import Shard, merge_shards
from tests.conftest import AUTO_ANNOTATION, salient_stages

N = 3  # tiny.yaml has 4 classes: shards of 1, 1 and 2 classes


def shards(n=N):
    return [Shard(i, n) for i in range(n)]


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    salient_stages(d, top_k=2, max_images=4, top_images=1)
    return d


def h5_content(path) -> tuple[dict, dict]:
    """(attrs, {dataset path: values}) of an HDF5 file."""
    data = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: data.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return dict(f.attrs), data


def assert_same_h5(a, b):
    (attrs_a, data_a), (attrs_b, data_b) = h5_content(a), h5_content(b)
    assert attrs_a.keys() == attrs_b.keys() and all(np.array_equal(attrs_a[k], attrs_b[k]) for k in attrs_a)
    assert list(data_a) == list(data_b)  # same datasets, same order
    for k in data_a:
        assert data_a[k].dtype == data_b[k].dtype and np.array_equal(data_a[k], data_b[k], equal_nan=True), k


def test_shards_cover_every_class_once():
    for c in (4, 7, 1000):
        for n in (1, 2, 3, 4):
            got = [k for s in shards(n) for k in s.classes(c)]
            assert got == list(range(c))
    with pytest.raises(SpurlabError, match="no class to work on"):
        Shard(0, 5).classes(4)
    assert Shard.parse("2/8") == Shard(2, 8)
    for bad in ("2", "8/8", "-1/2", "a/b"):
        with pytest.raises(SpurlabError, match="--shard"):
            Shard.parse(bad)


def test_npca_bases(stage):
    from spurlab.discover.npca import NpcaSettings, run_npca

    d = stage
    run_npca(d / "f.h5", d / "model", d / "bases.h5", NpcaSettings(components=6), progress=False)
    parts = [d / f"bases_{s.index}.h5" for s in shards()]
    for s, p in zip(shards(), parts):
        run_npca(d / "f.h5", d / "model", p, NpcaSettings(components=6), progress=False, shard=s)
    with h5py.File(parts[1]) as f:
        assert f.attrs["shard"] == "1/3" and list(f) == ["class_1"]
    merge_shards(parts, d / "bases_merged.h5")
    assert_same_h5(d / "bases.h5", d / "bases_merged.h5")


def test_salient_subsets(stage):
    from spurlab.discover.subsets import SubsetSettings, run_subsets
    from spurlab.discover.subsets_file import SalientSubsets

    d = stage
    settings = SubsetSettings(fraction=0.5, min_images=2, max_images=4, top_images=1, attack="paper")
    parts = [d / f"sub_{s.index}.h5" for s in shards()]
    for s, p in zip(shards(), parts):
        run_subsets(d / "model", d / "test.h5", d / "f.h5", d / "imp.h5", p, settings, "cpu", False, shard=s)
    merge_shards(parts, d / "sub_merged.h5")
    assert_same_h5(d / "sub.h5", d / "sub_merged.h5")
    with SalientSubsets(d / "sub_merged.h5") as s:  # members are found through the shifted starts
        assert s.pair_table()["class"].tolist() == sorted(s.pair_table()["class"].tolist())


def test_npca_components_and_table(stage):
    from spurlab.discover.npca import NpcaSettings, run_npca
    from spurlab.discover.npfv import ComponentSettings, run_npca_components
    from spurlab.io.tables import read_table, table_provenance

    d = stage
    if not (d / "bases.h5").exists():
        run_npca(d / "f.h5", d / "model", d / "bases.h5", NpcaSettings(components=6), progress=False)
    npfv = {"top_b": 2, "keep": 1, "eps_224": 30.0, "steps": 2}
    subset = {"fraction": 0.5, "min_images": 2, "max_images": 6}
    settings = ComponentSettings(npfv, subset, AUTO_ANNOTATION, top_images=2, neurons_top=2)
    run_npca_components(d / "model", d / "bases.h5", d / "test.h5", d / "f.h5", d / "imp.h5", d / "comp.h5",
                        d / "pairs.parquet", settings, progress=False)  # fmt: skip
    h5s, tables = [d / f"comp_{s.index}.h5" for s in shards()], [d / f"pairs_{s.index}.parquet" for s in shards()]
    for s, h, t in zip(shards(), h5s, tables):
        run_npca_components(d / "model", d / "bases.h5", d / "test.h5", d / "f.h5", d / "imp.h5", h, t, settings,
                            progress=False, shard=s)  # fmt: skip
    merge_shards(h5s, d / "comp_merged.h5", tables, d / "pairs_merged.parquet")
    assert_same_h5(d / "comp.h5", d / "comp_merged.h5")
    whole, merged = read_table(d / "pairs.parquet"), read_table(d / "pairs_merged.parquet")
    assert merged.equals(whole)
    from spurlab.io import sha256_file

    prov = table_provenance(d / "pairs_merged.parquet")
    assert prov["components_sha256"] == sha256_file(d / "comp_merged.h5")
    assert {k: v for k, v in prov.items() if k != "components_sha256"} == {
        k: v for k, v in table_provenance(d / "pairs.parquet").items() if k != "components_sha256"
    }


@pytest.fixture(scope="module")
def noise_parts(stage):
    """The noise table of the toy model, whole and as 3 shards."""
    from spurlab.measure.noise import NoiseSettings, run_noise

    d = stage
    args = (d / "model", "m", d / "test.h5", d / "sub.h5", d / "ann.parquet", d / "masks.h5")
    kw = dict(settings=NoiseSettings(seed=0, sigmas=(0.0, 0.5), l2_match_sigmas=(0.3,)), device="cpu", progress=False)
    run_noise(*args, d / "noise.parquet", **kw)
    parts = [d / f"noise_{s.index}.parquet" for s in shards()]
    for s, p in zip(shards(), parts):
        run_noise(*args, p, **kw, shard=s)
    return parts


def test_noise_tables(stage, noise_parts):
    from spurlab.io.tables import read_table, table_provenance

    d = stage
    merge_shards(noise_parts, d / "noise_merged.parquet")
    assert read_table(d / "noise_merged.parquet").equals(read_table(d / "noise.parquet"))
    assert table_provenance(d / "noise_merged.parquet") == table_provenance(d / "noise.parquet")
    assert (d / "noise_merged.csv").read_bytes() == (d / "noise.csv").read_bytes()


def test_bad_shard_sets_are_refused(stage, noise_parts, tmp_path, venv_env):
    parts, out = noise_parts, tmp_path / "m.parquet"
    for bad, msg in (([parts[0], parts[2]], "shard 0/3, expected 0/2"),
                     ([parts[1], parts[0], parts[2]], "shard 1/3, expected 0/3"),
                     ([stage / "noise.parquet", parts[1]], "not a shard")):  # fmt: skip
        with pytest.raises(SpurlabError, match=msg):
            merge_shards(bad, out)
        assert not out.exists()
    # through the CLI: one line naming the file, non-zero exit
    r = subprocess.run(["spurlab", "merge-shards", str(parts[0]), str(parts[2]), "--out", str(out)],
                       capture_output=True, text=True, env=venv_env)  # fmt: skip
    assert r.returncode != 0 and str(parts[0]) in r.stderr.strip().splitlines()[-1] and not out.exists()
