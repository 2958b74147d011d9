"""Bad-file catalogue (issue #31): bad image files and folders, paths a config names that do not
exist, and feature caches that are incomplete, cut, reordered or from another image set. As in
test_bad_inputs.py, every case goes through the `spurlab` CLI and must end with a non-zero exit,
exactly one line `spurlab: error: ...` naming the culprit, no traceback, and no output (not even a
temporary file) where the output would have been. Missing paths also fail through `snakemake`
while the DAG is built, before any job writes under results/."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image

from tests.reliability.test_bad_inputs import TINY, assert_refused, image_folder, run_spurlab, write_cfg


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """tiny.yaml's test and val sets, a seeded toy model, its feature cache of the test set (f.h5)
    and the importance file computed from it."""
    import torch

    from spurlab.data.feature_cache import model_checkpoint_sha256
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.data.sets import build_plan
    from spurlab.discover.importance import ImportanceSettings, run_importance
    from spurlab.features import cache_features
    from spurlab.models import build_classifier, save_model
    from tests.conftest import load_yaml

    d = tmp_path_factory.mktemp("bad_files")
    cfg = load_yaml("tiny.yaml")
    for name in ("test", "val"):
        plan, attrs = build_plan(cfg, name)
        write_imageset(d / f"{name}.h5", plan.n, plan.chunks(), attrs)
    s = ImageSet(d / "test.h5")
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", len(s.class_names), 32, {"width": 8}).eval()
    save_model(model, d / "model", {"name": "m", "class_names": s.class_names})
    cache_features(model, "m", model_checkpoint_sha256(d / "model"), s, d / "f.h5", torch.device("cpu"), progress=False)
    run_importance(d / "f.h5", d / "model", d / "imp.h5", d / "imp.parquet", ImportanceSettings("label", 1))
    return d


# ------------------------------------------------------------------------------ bad image files


def noisy_image(path, fmt: str, size: int = 64) -> None:
    """Random pixels: the compressed data is most of the file, so a cut keeps the header intact."""
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, format=fmt)


def cut(path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def index_argv(root, out, *extra) -> list[str]:
    return ["index-folder", "--root", str(root), "--out", str(out), "--image-size", "8", *map(str, extra)]


def _folder_case(make_bad):
    """A valid two-class folder plus what `make_bad(root, tmp)` adds; it returns the culprit text."""

    def case(fx, tmp):
        root = image_folder(tmp / "imgs", {"a": 2, "b": 2})
        culprit = make_bad(root, tmp)
        out = tmp / "idx.h5"
        return index_argv(root, out), culprit, [out]

    return case


def _truncated(fmt, name):
    def make(root, tmp):
        noisy_image(root / "b" / name, fmt)
        cut(root / "b" / name)
        return f"{root / 'b' / name}: not a readable image"

    return make


def _written(name, data, why):
    def make(root, tmp):
        (root / "b" / name).write_bytes(data)
        return f"{root / 'b' / name}: not a readable image ({why}"

    return make


def _pixels(name, array, why):
    def make(root, tmp):
        Image.fromarray(array).save(root / "b" / name, format="TIFF")  # TIFF content, image extension
        return f"{root / 'b' / name}: not a readable image ({why}"

    return make


def _broken_link(root, tmp):
    os.symlink(tmp / "moved_away.jpg", root / "b" / "photo.jpg")
    return f"{root / 'b' / 'photo.jpg'}: not a readable image (symbolic link to {tmp / 'moved_away.jpg'}, which does not exist"


def _file_link_loop(root, tmp):
    os.symlink("loop.jpg", root / "b" / "loop.jpg")
    return f"{root / 'b' / 'loop.jpg'}: not a readable image (symbolic link to loop.jpg, which loops"


def _folder_link_loop(root, tmp):
    os.symlink(root / "b", root / "b" / "again")
    return f"{root / 'b' / 'again'}: symbolic link to {root / 'b'} loops back"


def _broken_class_link(root, tmp):
    os.symlink(tmp / "unmounted" / "c", root / "c")
    return f"{root / 'c'}: symbolic link to {tmp / 'unmounted' / 'c'}, which does not exist"


def _needs_permissions():
    if os.geteuid() == 0:
        pytest.skip("root reads files and folders whatever their permissions")


def _unreadable_file(root, tmp):
    _needs_permissions()
    (root / "b" / "1.png").chmod(0)
    return f"{root / 'b' / '1.png'}: not a readable image (cannot be read: Permission denied"


def _unreadable_folder(root, tmp):
    _needs_permissions()
    (root / "b" / "more").mkdir()
    shutil.copy(root / "a" / "0.png", root / "b" / "more" / "x.png")
    (root / "b" / "more").chmod(0)
    return f"{root / 'b' / 'more'}: folder cannot be listed"


case_truncated_jpeg = _folder_case(_truncated("JPEG", "cut.jpg"))
case_truncated_png = _folder_case(_truncated("PNG", "cut.png"))
case_truncated_webp = _folder_case(_truncated("WEBP", "cut.webp"))
case_zero_byte_file = _folder_case(_written("empty.jpg", b"", "empty file"))
case_text_named_jpg = _folder_case(_written("notes.jpg", b"shopping list: eggs, milk\n", "not an image format"))
case_float_pixels = _folder_case(_pixels("depth.png", np.ones((8, 8), np.float32), "mode F"))
case_int_pixels_out_of_range = _folder_case(_pixels("counts.png", np.full((8, 8), 70000, np.int32), "mode I"))
case_broken_symlink = _folder_case(_broken_link)
case_symlink_loop_file = _folder_case(_file_link_loop)
case_symlink_loop_folder = _folder_case(_folder_link_loop)
case_broken_class_folder_link = _folder_case(_broken_class_link)
case_unreadable_file = _folder_case(_unreadable_file)
case_unreadable_folder = _folder_case(_unreadable_folder)


def case_truncated_jpeg_flat_val_layout(fx, tmp):
    flat = tmp / "val"
    flat.mkdir()
    for k in range(3):
        noisy_image(flat / f"v{k}.JPEG", "JPEG")
    cut(flat / "v1.JPEG")
    labels = tmp / "val_labels.txt"
    labels.write_text("v0.JPEG n01\nv1.JPEG n02\nv2.JPEG n02\n")
    out = tmp / "idx.h5"
    return index_argv(flat, out, "--val-labels", labels), f"{flat / 'v1.JPEG'}: not a readable image", [out]


def case_missing_root(fx, tmp):
    out = tmp / "idx.h5"
    return index_argv(tmp / "not_mounted", out), f"{tmp / 'not_mounted'}: image folder not found", [out]


def case_missing_synsets_file(fx, tmp):
    root = image_folder(tmp / "imgs", {"a": 1})
    out = tmp / "idx.h5"
    return (
        index_argv(root, out, "--synsets", tmp / "LOC_synset_mapping.txt"),
        str(tmp / "LOC_synset_mapping.txt"),
        [out],
    )


# ---------------------------------------------------- paths a config names (validate-config --check-paths)


def _paths_case(edit, culprit):
    """tiny.yaml with a folder set (or a model) whose paths `edit(cfg, tmp)` sets."""

    def case(fx, tmp):
        image_folder(tmp / "imgs", {"a": 1, "b": 1})
        cfg = write_cfg(tmp / "c.yaml", lambda c: edit(c, tmp))
        return ["validate-config", "-c", str(cfg), "--check-paths"], culprit, []

    return case


def _folder_set(tmp, **keys) -> dict:
    return {"real": {"root": str(tmp / "imgs"), "image_size": 32, **keys}}


def _existing(tmp, name) -> str:
    (tmp / name).write_text("")
    return str(tmp / name)


case_config_missing_root = _paths_case(lambda c, t: c.update(folders=_folder_set(t, root=str(t / "gone"))),
                                       "config key folders.real.root: folder")  # fmt: skip
case_config_root_is_a_file = _paths_case(lambda c, t: c.update(folders=_folder_set(t, root=_existing(t, "f.txt"))),
                                         "config key folders.real.root: ")  # fmt: skip
case_config_missing_synsets = _paths_case(lambda c, t: c.update(folders=_folder_set(t, synsets=str(t / "syn.txt"))),
                                          "config key folders.real.synsets: file")  # fmt: skip
case_config_missing_val_labels = _paths_case(lambda c, t: c.update(folders=_folder_set(t, val_labels="nope.csv")),
                                             "config key folders.real.val_labels: file nope.csv not found")  # fmt: skip
case_config_missing_class_names = _paths_case(
    lambda c, t: c["models"].update(imp={"arch": "resnet18", "checkpoint": {
        "path": _existing(t, "ck.pt"), "layout": "state_dict", "num_classes": 4, "class_names": str(t / "names.txt")}}),
    "config key models.imp.checkpoint.class_names",
)  # fmt: skip


# ------------------------------------------------------------------------------ bad feature caches


def edited_cache(fx, tmp, edit, name="f_bad.h5"):
    out = tmp / name
    shutil.copy(fx / "f.h5", out)
    with h5py.File(out, "r+") as f:
        edit(f)
    return out


def importance_argv(fx, tmp, feats):
    out, table = tmp / "imp.h5", tmp / "imp.parquet"
    argv = ["importance", "--config", str(TINY), "--model-dir", str(fx / "model"), "--features", str(feats),
            "--out", str(out), "--table", str(table)]  # fmt: skip
    return argv, [out, table, tmp / "imp.csv"]


def _importance_case(edit, culprit):
    def case(fx, tmp):
        feats = edited_cache(fx, tmp, edit)
        argv, outs = importance_argv(fx, tmp, feats)
        return argv, f"{feats}: {culprit}", outs

    return case


def _npca_case(edit, culprit):
    def case(fx, tmp):
        feats = edited_cache(fx, tmp, edit)
        out = tmp / "bases.h5"
        argv = ["npca", "--config", str(TINY), "--model-dir", str(fx / "model"), "--features", str(feats), "--out", str(out),
                "--quiet"]  # fmt: skip
        return argv, f"{feats}: {culprit}", [out]

    return case


def _delete(name):
    def edit(f):
        del f[name]

    return edit


def _cut_rows(keep: int, n_rows_too: bool = False):
    def edit(f):
        for name in ("features", "logits", "preds", "labels", "index"):
            rows = f[name][:keep]
            del f[name]
            f.create_dataset(name, data=rows)
        if n_rows_too:
            f.attrs["n_rows"] = keep

    return edit


def _reverse(name):
    def edit(f):
        f[name][...] = f[name][:][::-1]

    return edit


def _nan_row(f):
    f["features"][5] = np.nan


def _old_cache(f):
    del f.attrs["labels_sha256"]
    del f.attrs["index_sha256"]


case_cache_without_features = _importance_case(_delete("features"), "feature cache has no dataset 'features'")
case_cache_without_labels = _importance_case(_delete("labels"), "feature cache has no dataset 'labels'")
case_cache_without_index = _npca_case(_delete("index"), "feature cache has no dataset 'index'")
case_cache_rows_cut = _importance_case(_cut_rows(10), "dataset 'features' has 10 rows, the cache records n_rows=80")
case_cache_rows_cut_and_recorded = _importance_case(
    _cut_rows(10, True), "dataset 'labels' does not match its labels_sha256"
)
case_cache_labels_reversed = _importance_case(_reverse("labels"), "dataset 'labels' does not match its labels_sha256")
case_cache_ids_reversed = _npca_case(_reverse("index"), "dataset 'index' does not match its index_sha256")
case_cache_nan_row = _npca_case(_nan_row, "features: row 5 is not finite")
case_cache_without_row_hashes = _importance_case(
    _old_cache, "feature cache has no attribute 'labels_sha256' (written before row hashes were recorded); rebuild"
)


def case_cache_without_preds_inspected(fx, tmp):
    feats = edited_cache(fx, tmp, _delete("preds"))
    return ["inspect", str(feats)], f"{feats}: feature cache has no dataset 'preds'", []


def _subsets_argv(fx, tmp, feats, imageset):
    out = tmp / "sub.h5"
    argv = ["salient-subsets", "--config", str(TINY), "--model-dir", str(fx / "model"), "--imageset", str(imageset),
            "--features", str(feats), "--importance", str(fx / "imp.h5"), "--out", str(out), "--quiet"]  # fmt: skip
    return argv, [out]


def case_cache_of_another_imageset(fx, tmp):
    argv, outs = _subsets_argv(fx, tmp, fx / "f.h5", fx / "val.h5")
    return argv, f"{fx / 'f.h5'}: made from image set", outs


def case_cache_claiming_another_imageset(fx, tmp):
    """The test set's cache whose recorded image set hash was set to the val set's: its rows (labels,
    ids) still tell, and the consumer given the val set refuses it."""
    from spurlab.data.imagesets import ImageSet

    val = ImageSet(fx / "val.h5").sha256
    feats = edited_cache(fx, tmp, lambda f: f.attrs.__setitem__("imageset_sha256", val), "f_forged.h5")
    argv, outs = _subsets_argv(fx, tmp, feats, fx / "val.h5")
    return argv, f"of image set {fx / 'val.h5'}", outs


CASES = {name[len("case_") :]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}
SUBPROCESS_CASES = ("truncated_jpeg", "cache_rows_cut")  # the console script and a real traceback, too


@pytest.mark.parametrize("case", sorted(CASES) + [f"{c}:subprocess" for c in SUBPROCESS_CASES])
def test_bad_file_through_cli(case, fx, tmp_path, venv_env, capsys):
    name, _, how = case.partition(":")
    argv, culprit, outputs = CASES[name](fx, tmp_path)
    assert_refused(case, run_spurlab(argv, venv_env, capsys, how == "subprocess"), culprit, outputs)


def test_catalogue_size():
    assert len(CASES) >= 22


# ------------------------------------------------------------------------------ positive cases


def test_skip_bad_images_lists_them_and_goes_on(tmp_path, capsys):
    """With skip_bad_images the truncated JPEG (which PIL's verify() alone passes: its header is
    intact), a link that points nowhere and an empty file are left out, listed with the reason in
    the log and the index's `skipped` attribute; the exit status is 0."""
    from spurlab.cli import main
    from spurlab.data.imagesets import ImageSet

    root = image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    noisy_image(root / "b" / "cut.jpg", "JPEG")
    cut(root / "b" / "cut.jpg")
    with Image.open(root / "b" / "cut.jpg") as im:
        im.verify()  # a header check alone does not see it
    os.symlink(tmp_path / "gone.png", root / "a" / "link.png")
    (root / "a" / "empty.png").write_bytes(b"")
    out = tmp_path / "idx.h5"
    capsys.readouterr()
    assert main(index_argv(root, out, "--skip-bad-images")) == 0
    log = capsys.readouterr().out
    want = ["a/empty.png", "a/link.png", "b/cut.jpg"]
    for rel, why in zip(want, ("empty file", "which does not exist", "image file is truncated")):
        line = next(line for line in log.splitlines() if rel in line)
        assert line.startswith("skipped (not a readable image): ") and why in line, line
    assert "4 images of 2 classes indexed" in log and "3 skipped" in log
    with ImageSet(out) as s:
        assert s.attrs["skipped"] == want and len(s) == 4
        assert s.images().shape == (4, 8, 8, 3)


def test_check_paths_accepts_a_missing_human_answers_file(tmp_path, capsys):
    """Human answer files may be missing (the workflow then writes the task pages and stops);
    relative paths are taken from the working directory."""
    from spurlab.cli import main

    image_folder(tmp_path / "imgs", {"a": 1, "b": 1})

    def edit(c):
        c["folders"] = {"real": {"root": "imgs", "image_size": 32}}
        c["salient"]["annotation"].update(source="human", human_csv="answers/salient.csv")
        c["npca"]["human_csv"] = "answers/npca.csv"

    cfg = write_cfg(tmp_path / "c.yaml", edit)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        capsys.readouterr()
        assert main(["validate-config", "-c", str(cfg), "--check-paths"]) == 0
        assert "the folders and files it names exist" in capsys.readouterr().out
        shutil.rmtree(tmp_path / "imgs")
        assert main(["validate-config", "-c", str(cfg), "--check-paths"]) == 2
        assert f"folder imgs not found (relative to {tmp_path})" in capsys.readouterr().err
        assert main(["validate-config", "-c", str(cfg)]) == 0  # without the flag, paths are not looked at
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------------------ through snakemake


def _folder_config(tmp_path, **entry) -> str:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["folders"] = {"real": {"root": "data/real", "image_size": 32, **entry}}
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_missing_root_fails_while_the_dag_is_built(tmp_path, venv_env):
    """`snakemake -n` and a real run both stop before any job, naming the key and the path (relative
    to the working directory Snakemake runs in); with the folder in place the DAG builds."""
    from tests.test_workflow import snakemake

    cfg = _folder_config(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    for dry in (["-n"], []):
        r = snakemake(
            work, "results/datasets/real.h5", "--cores", "1", *dry, "--configfile", cfg, env=venv_env, check=False
        )
        assert r.returncode != 0, r.stdout[-2000:]
        err = r.stdout + r.stderr
        assert f"config key folders.real.root: folder data/real not found (relative to {work})" in err, err[-3000:]
        assert "Traceback" not in r.stderr
        assert not (work / "results").exists() and not (work / "logs").exists()
    image_folder(work / "data" / "real", {"a": 1})
    r = snakemake(
        work, "results/datasets/real.h5", "--cores", "1", "-n", "--configfile", cfg, env=venv_env, check=False
    )
    assert r.returncode == 0 and "index_folder" in r.stdout, (r.stdout + r.stderr)[-3000:]


@pytest.mark.slow
def test_missing_synsets_file_fails_while_the_dag_is_built(tmp_path, venv_env):
    from tests.test_workflow import snakemake

    work = tmp_path / "work"
    image_folder(work / "data" / "real", {"a": 1})
    cfg = _folder_config(tmp_path, synsets=str(tmp_path / "LOC_synset_mapping.txt"))
    r = snakemake(work, "results/datasets/real.h5", "--cores", "1", "--configfile", cfg, env=venv_env, check=False)
    assert r.returncode != 0
    assert (
        f"config key folders.real.synsets: file {tmp_path / 'LOC_synset_mapping.txt'} not found" in r.stdout + r.stderr
    )
    assert "Traceback" not in r.stderr and not (work / "results").exists()


def test_permission_errors_are_named_even_as_root(tmp_path, monkeypatch):
    """The unreadable-file and unreadable-folder cases above need a non-root user; here the same
    errors are raised by hand, so the messages are checked whoever runs the suite."""
    import builtins
    import errno

    from spurlab.data.folders import index_image_folder
    from spurlab.errors import SpurlabError

    root = image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    (root / "b" / "more").mkdir()
    denied = {str(root / "b" / "1.png"), str(root / "b" / "more")}
    real_open, real_scandir = builtins.open, os.scandir

    def refuse(real):
        def call(path, *args, **kw):
            if str(path) in denied:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path, *args, **kw)

        return call

    monkeypatch.setattr(builtins, "open", refuse(real_open))
    monkeypatch.setattr(os, "scandir", refuse(real_scandir))
    with pytest.raises(SpurlabError, match=r"b/more: folder cannot be listed \(Permission denied\)"):
        index_image_folder(root, tmp_path / "i.h5", 8)
    denied.discard(str(root / "b" / "more"))
    with pytest.raises(SpurlabError, match=r"b/1.png: not a readable image \(cannot be read: Permission denied\)"):
        index_image_folder(root, tmp_path / "i.h5", 8)
    assert index_image_folder(root, tmp_path / "i.h5", 8, skip_bad_images=True)["skipped"] == ["b/1.png"]
    assert not list(tmp_path.glob(".i.h5.*"))
