"""Bad-input catalogue (issue #11): every case goes through the `spurlab` CLI (or, for config-level
cases, through `snakemake`) and must end with a non-zero exit, exactly one line
`spurlab: error: ...` naming the culprit (file, key or row), no traceback, and no output (not even a
temporary file) where the output would have been."""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, load_yaml, salient_stages, spurlab_exe

TINY = ROOT / "config" / "tiny.yaml"


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Valid inputs of every kind, made once: tiny.yaml's test set, a seeded toy model, its
    features, importance, D(i, j) subsets and annotations; plus the test set rendered with
    another seed (same shape, other content)."""
    from spurlab.data.imagesets import write_imageset
    from spurlab.data.sets import build_plan

    d = tmp_path_factory.mktemp("bad_inputs")
    cfg, _ = salient_stages(d, top_k=1, max_images=2, top_images=1)
    other = copy.deepcopy(cfg)
    other["seed"] = 1
    plan, attrs = build_plan(other, "test")
    write_imageset(d / "other.h5", plan.n, plan.chunks(), attrs)
    return d


def write_cfg(path: Path, edit) -> Path:
    cfg = load_yaml("tiny.yaml")
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def answers_csv(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def mturk(worker="W1", c=0, f=0, rank=1, main="main_object") -> dict:
    return {"WorkerId": worker, "Input.wordnet_id": "n0", "Input.class_index": c, "Input.feature_index": f,
            "Input.feature_rank": rank, "Answer.main": main, "Answer.confidence": 4, "Answer.reasons": "r"}  # fmt: skip


def exported_pair(fx) -> tuple[int, int]:
    from spurlab.discover.subsets_file import SalientSubsets

    with SalientSubsets(fx / "sub.h5") as s:
        p = s.pair_table()
    return int(p["class"].iloc[0]), int(p["feature"].iloc[0])


def image_folder(root: Path, files: dict[str, int]) -> Path:
    """root/<class>/<file>: PNGs of the given class folders (count per folder; 0 = empty folder)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in files.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def copy_features(fx, tmp, name: str, value: float) -> Path:
    out = tmp / name
    shutil.copy(fx / "f.h5", out)
    with h5py.File(out, "r+") as f:
        f["features"][3, 1] = value
    return out


def truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


# Each case: (fx, tmp) -> (argv after `spurlab`, culprit text the one line must contain, output paths
# that must not exist afterwards).
def case_corrupt_image(fx, tmp):
    root = image_folder(tmp / "imgs", {"a": 2, "b": 2})
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image")
    out = tmp / "idx.h5"
    return ["index-folder", "--root", str(root), "--out", str(out), "--image-size", "8"], "b/broken.png", [out]


def case_empty_class(fx, tmp):
    root = image_folder(tmp / "imgs", {"a": 2, "b": 0})
    out = tmp / "idx.h5"
    return (
        ["index-folder", "--root", str(root), "--out", str(out), "--image-size", "8"],
        f"{root}/b: empty class",
        [out],
    )


def case_fewer_images_than_k(fx, tmp):
    # D(i, j) needs at least salient.subset.min_images images of every class (tiny test: ~20 each)
    cfg = write_cfg(tmp / "c.yaml", lambda c: c["salient"]["subset"].update(min_images=500, max_images=600))
    out = tmp / "sub.h5"
    argv = ["salient-subsets", "--config", str(cfg), "--model-dir", str(fx / "model"), "--imageset", str(fx / "test.h5"),
            "--features", str(fx / "f.h5"), "--importance", str(fx / "imp.h5"), "--out", str(out), "--quiet"]  # fmt: skip
    return argv, "min_images", [out]


def _config_case(edit, culprit):
    def case(fx, tmp):
        cfg = write_cfg(tmp / "c.yaml", edit)
        out = tmp / "train.h5"
        return ["make-set", "--config", str(cfg), "--set", "train", "--out", str(out), "--quiet"], culprit, [out]

    return case


case_unknown_config_key = _config_case(lambda c: c["datasets"].update(n_imges=3), "datasets.n_imges")
case_wrong_type = _config_case(lambda c: c["train"].update(epochs="two"), "train.epochs")
case_probability_out_of_range = _config_case(
    lambda c: c["datasets"]["cue_table"]["disk"].update(p_in_class=1.5), "datasets.cue_table.disk.p_in_class"
)


def case_missing_checkpoint(fx, tmp):
    out = tmp / "imported"
    argv = ["import-checkpoint", "--model", "m", "--checkpoint", str(tmp / "nowhere.pt"), "--arch", "cbr_tiny",
            "--num-classes", "4", "--input-size", "32", "--out-dir", str(out)]  # fmt: skip
    return argv, "nowhere.pt", [out / "model.safetensors", out / "meta.json"]


def case_checkpoint_wrong_shapes(fx, tmp):
    import torch

    from spurlab.models.factory import create_model

    ck = tmp / "four_classes.pt"
    torch.save(create_model("cbr_tiny", 4, width=8).state_dict(), ck)  # imported below as 7 classes
    out = tmp / "imported"
    argv = ["import-checkpoint", "--model", "m", "--checkpoint", str(ck), "--layout", "state_dict", "--arch", "cbr_tiny",
            "--num-classes", "7", "--input-size", "32", "--out-dir", str(out)]  # fmt: skip
    return argv, f"{ck}: tensor", [out / "model.safetensors", out / "meta.json"]


def case_missing_model_dir(fx, tmp):
    out = tmp / "f.h5"
    argv = ["features", "--model-dir", str(tmp / "no_model"), "--imageset", str(fx / "test.h5"), "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    return argv, f"{tmp / 'no_model'}/", [out]


def case_features_of_another_imageset(fx, tmp):
    out = tmp / "sub.h5"
    argv = ["salient-subsets", "--config", str(TINY), "--model-dir", str(fx / "model"), "--imageset", str(fx / "other.h5"),
            "--features", str(fx / "f.h5"), "--importance", str(fx / "imp.h5"), "--out", str(out), "--quiet"]  # fmt: skip
    return argv, f"{fx / 'f.h5'}: made from image set", [out]


def _nonfinite_case(value, name):
    def case(fx, tmp):
        feats = copy_features(fx, tmp, name, value)
        out, table = tmp / "imp.h5", tmp / "imp.parquet"
        argv = ["importance", "--config", str(TINY), "--model-dir", str(fx / "model"), "--features", str(feats),
                "--out", str(out), "--table", str(table)]  # fmt: skip
        return argv, f"{feats}: ", [out, table, tmp / "imp.csv"]

    return case


case_nan_in_features = _nonfinite_case(float("nan"), "f_nan.h5")
case_inf_in_features = _nonfinite_case(float("inf"), "f_inf.h5")


def _annotation_case(rows_of, culprit):
    def case(fx, tmp):
        csv = answers_csv(tmp / "answers.csv", rows_of(*exported_pair(fx)))
        out = tmp / "ann.parquet"
        argv = ["annotate", "--config", str(TINY), "--subsets", str(fx / "sub.h5"), "--human-csv", str(csv),
                "--source", "human", "--out", str(out)]  # fmt: skip
        return argv, culprit, [out, tmp / "ann.csv"]

    return case


case_annotation_unknown_class = _annotation_case(
    lambda c, f: [mturk(c=c, f=f), mturk("W2", c=9, f=f)], "answers.csv: row 3"
)
case_annotation_unknown_feature = _annotation_case(lambda c, f: [mturk(c=c, f=f + 1000)], "answers.csv: row 2")
case_annotation_duplicate_row = _annotation_case(lambda c, f: [mturk(c=c, f=f), mturk("W2", c=c, f=f), mturk(c=c, f=f)],
                                                 "answers.csv: row 4")  # fmt: skip


def case_truncated_imageset(fx, tmp):
    s = truncated(fx / "test.h5", tmp / "test_cut.h5")
    out = tmp / "f.h5"
    return (
        ["features", "--model-dir", str(fx / "model"), "--imageset", str(s), "--out", str(out), "--device", "cpu"],
        str(s),
        [out],
    )


def case_truncated_feature_cache(fx, tmp):
    feats = truncated(fx / "f.h5", tmp / "f_cut.h5")
    out, table = tmp / "imp.h5", tmp / "imp.parquet"
    argv = ["importance", "--config", str(TINY), "--model-dir", str(fx / "model"), "--features", str(feats),
            "--out", str(out), "--table", str(table)]  # fmt: skip
    return argv, str(feats), [out, table]


def case_truncated_weights(fx, tmp):
    model = tmp / "model"
    shutil.copytree(fx / "model", model)
    truncated(fx / "model" / "model.safetensors", model / "model.safetensors")
    out = tmp / "f.h5"
    argv = [
        "features",
        "--model-dir",
        str(model),
        "--imageset",
        str(fx / "test.h5"),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    return argv, str(model / "model.safetensors"), [out]


def case_output_dir_is_a_file(fx, tmp):
    (tmp / "taken").write_text("a file where the output directory should be")
    out = tmp / "taken" / "train.h5"
    return ["make-set", "--config", str(TINY), "--set", "val", "--out", str(out), "--quiet"], str(tmp / "taken"), [out]


def case_output_dir_read_only(fx, tmp):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories; case_output_dir_is_a_file covers this as root")
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    out = ro / "train.h5"
    return ["make-set", "--config", str(TINY), "--set", "val", "--out", str(out), "--quiet"], str(ro), [out]


CASES = {name[len("case_") :]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


# Cases run the CLI's entry point in-process (`spurlab.cli.main`: argument parsing, the command, the
# one-line error and exit status), which saves a torch import per case; these few also run as a
# real `spurlab` process, so the console script and a real traceback are covered too.
SUBPROCESS_CASES = ("corrupt_image", "output_dir_is_a_file", "annotation_duplicate_row")


def run_spurlab(argv, env, capsys, subprocess_run: bool) -> subprocess.CompletedProcess:
    if subprocess_run:
        return subprocess.run([spurlab_exe(), *argv], capture_output=True, text=True, env=env, timeout=300)
    from spurlab.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])  # an exception escaping here is the traceback case: the test fails
    except SystemExit as e:  # argparse's errors exit
        code = e.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out.out, out.err)


def check_one_line(name, r, culprit, progress=False) -> None:
    """A refusal: non-zero exit, no traceback, one `spurlab: error:` line naming `culprit` (the last
    line; with `progress` other lines may come before it)."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "spurlab: error:" in line]
    assert r.returncode not in (0, None), f"{name}: exit 0\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and errors[0].startswith("spurlab: error: ") and lines[-1] == errors[0], r.stderr
    assert progress or len(lines) == 1, r.stderr
    assert culprit in errors[0], f"{name}: {culprit!r} not named in {errors[0]!r}"


def assert_refused(name, r, culprit, outputs, progress=False) -> None:
    """`check_one_line`, and none of `outputs` (nor a temporary file of one) left behind."""
    check_one_line(name, r, culprit, progress)
    for out in outputs:
        assert not out.exists(), f"{name}: partial output {out} left behind"
        if out.parent.is_dir():
            assert not list(out.parent.glob(f".{out.name}.*.tmp")), f"{name}: temporary file of {out} left behind"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES) + [f"{c}:subprocess" for c in SUBPROCESS_CASES])
def test_bad_input_through_cli(case, fx, tmp_path, venv_env, capsys):
    name, _, how = case.partition(":")
    argv, culprit, outputs = CASES[name](fx, tmp_path)
    assert_refused(case, run_spurlab(argv, venv_env, capsys, how == "subprocess"), culprit, outputs)


def test_catalogue_size():
    assert len(CASES) >= 15


class _Boom:
    """A pickle that would run os.system if unpickled with the standard unpickler."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_components_pickle_with_forbidden_global(tmp_path, monkeypatch):
    """The published component lists are a pickled .npy: a payload naming os.system is refused before
    anything is resolved (no file appears), in one line naming the file and the global."""
    from spurlab.discover.components import read_component_lists
    from spurlab.errors import SpurlabError

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spurious_components.npy"
    arr = np.empty((), dtype=object)
    arr[()] = {0: [1, 2], 3: _Boom()}
    np.save(path, arr, allow_pickle=True)
    assert b"system" in path.read_bytes()
    with pytest.raises(SpurlabError) as e:
        read_component_lists(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "system" in msg
    assert not (tmp_path / "PWNED").exists()
    # the ordinary unpickler would have run it: the fixture is a real attack
    pickle.loads(pickle.dumps(_Boom()))
    assert (tmp_path / "PWNED").exists()


# Through snakemake: a bad config fails while the DAG is built (before any job) and names the key;
# a missing checkpoint file names the path. Nothing is written under results/.
SNAKEMAKE_CASES = {
    "unknown_key": (lambda c: c["datasets"].update(n_imges=3), "n_imges"),
    "wrong_type": (lambda c: c["train"].update(epochs="two"), "epochs"),
    "probability_out_of_range": (lambda c: c["datasets"]["cue_table"]["disk"].update(p_in_class=1.5), "p_in_class"),
    "cue_of_unknown_class": (
        lambda c: c["datasets"]["cue_table"].update(octagon=dict(c["datasets"]["cue_table"]["disk"])),
        "octagon",
    ),  # fmt: skip
    "missing_checkpoint": (
        lambda c: c["models"].update(
            imp={
                "arch": "cbr_tiny",
                "checkpoint": {
                    "path": "/nonexistent/ck.pt",
                    "layout": "state_dict",
                    "num_classes": 4,
                    "input_size": 32,
                },
            }
        ),  # fmt: skip
        "/nonexistent/ck.pt",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SNAKEMAKE_CASES))
def test_bad_input_through_snakemake(case, tmp_path, venv_env):
    edit, culprit = SNAKEMAKE_CASES[case]
    cfg = write_cfg(tmp_path / "bad.yaml", edit)
    work = tmp_path / "work"
    cmd = ["snakemake", "results/models/summary.json", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--cores", "1", "--configfile", str(cfg)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=venv_env, timeout=300)
    assert r.returncode != 0, r.stdout[-2000:]
    assert culprit in r.stderr + r.stdout, (r.stdout + r.stderr)[-3000:]
    assert "Traceback" not in r.stderr
    assert not (work / "results").exists()
