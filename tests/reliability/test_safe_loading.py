"""Safe loading everywhere (issue #11): no code in the package can execute what a loaded file says.

A static scan of src/ (and bench/) refuses: `torch.load` without `weights_only=True`, any use of
`pickle`'s loaders outside the restricted unpickler, `np.load(allow_pickle=True)`,
`pd.read_pickle`, `yaml.load`/`unsafe_load` (only `safe_load`), `eval`/`exec`, `marshal`/`shelve`/
`dill`/`joblib` loaders. The scanner is itself tested on a snippet that has each forbidden call.
Then the loaders of pickled checkpoints are attacked with a pickle that runs `os.system`.
"""

from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import ROOT

# the one module that may subclass pickle.Unpickler: it resolves only an allow-list of globals
RESTRICTED_UNPICKLER = "src/spurlab/discover/components.py"


def _dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def forbidden_calls(source: str, filename: str = "<src>") -> list[str]:
    """`file:line: what` for every unsafe loading call in `source`."""
    out = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            short = name.rsplit(".", 1)[-1]
            where = f"{filename}:{node.lineno}"
            if name in ("eval", "exec", "builtins.eval", "builtins.exec", "compile"):
                out.append(f"{where}: {name}()")
            elif name.endswith("torch.load"):
                if not _is_true(_kw(node, "weights_only")):
                    out.append(f"{where}: torch.load without weights_only=True")
            elif name.startswith(("pickle.", "cPickle.", "_pickle.", "dill.", "marshal.", "shelve.", "joblib.")) and short in (
                "load", "loads", "open", "Unpickler"
            ):  # fmt: skip
                if not (filename.endswith(RESTRICTED_UNPICKLER) and short == "Unpickler"):
                    out.append(f"{where}: {name}()")
            elif short == "load" and name.split(".")[0] in ("np", "numpy") and _is_true(_kw(node, "allow_pickle")):
                out.append(f"{where}: {name}(allow_pickle=True)")
            elif short in ("read_pickle", "unsafe_load", "full_load") or name in ("yaml.load",):
                out.append(f"{where}: {name}()")
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if _dotted(base) in ("pickle.Unpickler", "Unpickler") and not filename.endswith(RESTRICTED_UNPICKLER):
                    out.append(f"{filename}:{node.lineno}: subclass of pickle.Unpickler")
    return out


BAD_SNIPPET = """
import pickle, torch, numpy as np, pandas as pd, yaml, marshal
torch.load("a.pt")
torch.load("a.pt", weights_only=False)
pickle.load(open("x", "rb"))
pickle.loads(b"")
np.load("x.npy", allow_pickle=True)
pd.read_pickle("x.pkl")
yaml.load(open("c.yaml"))
yaml.unsafe_load("")
eval("1 + 1")
exec("x = 1")
marshal.loads(b"")
class U(pickle.Unpickler):
    pass
"""

GOOD_SNIPPET = """
import torch, numpy as np, yaml, ast
torch.load("a.pt", map_location="cpu", weights_only=True)
np.load("x.npz")
yaml.safe_load("a: 1")
ast.literal_eval("{'a': 1}")
model.eval()
"""


def test_scanner_finds_every_forbidden_call():
    found = forbidden_calls(BAD_SNIPPET)
    assert len(found) == 12, found
    assert forbidden_calls(GOOD_SNIPPET) == []


def test_package_and_benches_load_nothing_unsafely():
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    assert len(files) > 20
    found = [f for p in files for f in forbidden_calls(p.read_text(), str(p.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_checkpoint_with_code_is_refused(tmp_path, monkeypatch):
    """A .pt whose pickle calls os.system: import refuses it in one line naming the file, runs nothing."""
    import torch

    from spurlab.errors import SpurlabError
    from spurlab.models.checkpoints import import_checkpoint

    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Boom()}, ck)
    with pytest.raises(SpurlabError) as e:
        import_checkpoint(ck, arch="cbr_tiny", num_classes=4, kind="state_dict", input_size=32)
    assert str(ck) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_resume_checkpoints_are_loaded_weights_only(tmp_path, monkeypatch):
    """A planted epoch checkpoint with code in it is not executed by the training resume."""
    import torch

    from spurlab.errors import SpurlabError
    from spurlab.train import _discard_stale

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck").mkdir()
    torch.save({"fingerprint": "x", "payload": _Boom()}, tmp_path / "ck" / "epoch_001.pt")
    with pytest.raises(SpurlabError, match="epoch_001.pt"):
        _discard_stale(tmp_path / "ck", "x")
    assert not (tmp_path / "PWNED").exists()
