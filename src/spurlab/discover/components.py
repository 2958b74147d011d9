"""Import of published spurious neural-PCA component lists (docs/methods.md#annotation; Neuhaus et al.).

The Spurious ImageNet release ships ``spurious_components.npy``: ``np.save`` of a 0-d object array
holding a pickled dict ``{class index: [component indices]}``. ``np.load(allow_pickle=True)`` would
run whatever the pickle says, so the payload goes through `RestrictedUnpickler` instead: the ``.npy``
header is parsed with numpy's own (literal-only) header reader, and every global the pickle names is
checked against `ALLOWED_GLOBALS` before anything is looked up, let alone called.

The allow-list is what the published file's opcodes actually reference (``pickletools.genops``):

    numpy.core.multiarray._reconstruct   builds the empty ndarray shell (pickled by numpy 1.x)
    numpy.ndarray                        the array type passed to _reconstruct
    numpy.dtype                          the object dtype 'O8' of that array

plus ``numpy._core.multiarray._reconstruct``, the same function under the module name that numpy
>= 2 writes. The dict, the lists and the ints are plain pickle opcodes and need no global. Anything
else (``os.system``, ``builtins.eval``, ``numpy`` helpers outside the list, ...) is refused with a
`SpurlabError` naming the file and the global, before it is resolved.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ..errors import SpurlabError

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `ALLOWED_GLOBALS`; `source` names the file in errors."""

    def __init__(self, file, source: str = "<pickle>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise SpurlabError(f"{self.source}: refused pickle global {module}.{name} (not in the allow-list)")
        return super().find_class(module, name)


def load_pickled_npy(path: str | Path):
    """The object stored in a ``.npy`` file with an object dtype, unpickled with `RestrictedUnpickler`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                _, _, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise SpurlabError(f"{path}: unsupported .npy format version {version}")
            if not dtype.hasobject:
                raise SpurlabError(f"{path}: .npy dtype {dtype} holds no pickled object")
            payload = fh.read()
    except OSError as exc:
        raise SpurlabError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # bad magic or header
        raise SpurlabError(f"{path}: not a .npy file ({exc})") from None
    try:
        return RestrictedUnpickler(io.BytesIO(payload), source=str(path)).load()
    except SpurlabError:
        raise
    except Exception as exc:  # truncated or malformed pickle stream
        raise SpurlabError(f"{path}: malformed pickle payload ({type(exc).__name__}: {exc})") from None


def read_component_lists(path: str | Path) -> dict[int, list[int]]:
    """Published spurious components ``{class index: [component indices]}`` from a ``.npy`` file.

    Keys must be non-negative ints, values lists of non-negative ints (bools are rejected);
    errors name the file and the offending key.
    """
    obj = load_pickled_npy(path)
    if isinstance(obj, np.ndarray):
        if obj.size != 1:
            raise SpurlabError(f"{path}: expected a 0-d object array holding a dict, got shape {obj.shape}")
        obj = obj.reshape(()).item()
    if not isinstance(obj, dict):
        raise SpurlabError(f"{path}: expected a dict {{class: [components]}}, got {type(obj).__name__}")
    out: dict[int, list[int]] = {}
    for key, comps in obj.items():
        if type(key) is not int or key < 0:
            raise SpurlabError(f"{path}: key {key!r}: class index must be a non-negative int")
        if not isinstance(comps, list):
            raise SpurlabError(f"{path}: key {key}: components must be a list, got {type(comps).__name__}")
        bad = [c for c in comps if type(c) is not int or c < 0]
        if bad:
            raise SpurlabError(f"{path}: key {key}: component {bad[0]!r} is not a non-negative int")
        out[key] = list(comps)
    return out
