"""Import of published spurious component lists through the restricted unpickler (docs/methods.md#annotation)."""

import os
from pathlib import Path

import numpy as np
import pytest

from spurlab.discover.components import read_component_lists
from spurlab.errors import SpurlabError

PUBLISHED = Path(__file__).resolve().parents[2].parent / "shared/data/spurious_imagenet_components.npy"


def _save_object(path: Path, obj) -> Path:
    arr = np.empty((), dtype=object)
    arr[()] = obj
    np.save(path, arr, allow_pickle=True)
    return path


@pytest.mark.skipif(not PUBLISHED.exists(), reason=f"published component list not present at {PUBLISHED}")
def test_published_file_loads():
    comps = read_component_lists(PUBLISHED)
    assert len(comps) == 233
    assert sum(len(v) for v in comps.values()) == 322
    assert comps[94] == [1, 16]  # hummingbird
    assert max(max(v) for v in comps.values()) == 49


def test_roundtrip_of_a_dict_saved_by_this_numpy(tmp_path):
    path = _save_object(tmp_path / "ok.npy", {3: [0, 7], 10: []})
    assert read_component_lists(path) == {3: [0, 7], 10: []}


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_reduce_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = _save_object(tmp_path / "evil.npy", {1: [_Evil(marker)]})
    with pytest.raises(SpurlabError) as err:
        read_component_lists(path)
    msg = str(err.value)
    assert str(path) in msg and f"{os.system.__module__}.system" in msg
    assert "\n" not in msg
    assert not marker.exists()


def test_other_numpy_globals_are_refused(tmp_path):
    path = _save_object(tmp_path / "scalar.npy", {np.int64(1): [2]})  # needs numpy's `scalar` global
    with pytest.raises(SpurlabError, match="refused pickle global"):
        read_component_lists(path)


@pytest.mark.parametrize(
    "obj, needle",
    [
        ([1, 2], "expected a dict"),
        ({"a": [1]}, "key 'a'"),
        ({-1: [1]}, "key -1"),
        ({True: [1]}, "key True"),
        ({5: (1, 2)}, "key 5: components must be a list"),
        ({5: [1, "x"]}, "key 5: component 'x'"),
        ({5: [1, -3]}, "key 5: component -3"),
        ({5: [1.0]}, "key 5: component 1.0"),
    ],
)
def test_wrong_types_rejected(tmp_path, obj, needle):
    path = _save_object(tmp_path / "bad.npy", obj)
    with pytest.raises(SpurlabError) as err:
        read_component_lists(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_not_an_object_array_or_not_npy(tmp_path):
    ints = tmp_path / "ints.npy"
    np.save(ints, np.arange(3))
    with pytest.raises(SpurlabError, match="holds no pickled object"):
        read_component_lists(ints)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(SpurlabError, match="not a .npy file"):
        read_component_lists(junk)
    with pytest.raises(SpurlabError, match="cannot read"):
        read_component_lists(tmp_path / "missing.npy")
