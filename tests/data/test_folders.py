"""ImageNet-style folders -> index image sets (docs/methods.md#real-data-adapters), read back through `ImageSet`."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from spurlab.data.folders import index_image_folder
from spurlab.data.imagesets import ImageSet
from spurlab.errors import SpurlabError

WNIDS = ["n01440764", "n01443537", "n01484850"]


def fake_folder(root, n_per_class=6, size=32, seed=0):
    """3 class folders x `n_per_class` PNGs: a flat colour per class plus a seeded random square."""
    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        (root / wnid).mkdir(parents=True)
        for k in range(n_per_class):
            img = np.full((size, size, 3), 60 * (c + 1), np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            img[y : y + size // 3, x : x + size // 3] = rng.integers(0, 256, 3)
            Image.fromarray(img).save(root / wnid / f"{wnid}_{k:02d}.png")
    return root


@pytest.fixture
def folder(tmp_path):
    return fake_folder(tmp_path / "imgs")


def test_index_reads_back(folder, tmp_path):
    (folder / WNIDS[0] / "notes.txt").write_text("not an image")  # other extensions are ignored
    (folder / ".cache").mkdir()  # hidden folders are not classes
    Image.fromarray(np.zeros((40, 20, 3), np.uint8)).save(folder / WNIDS[1] / "zz_upper.PNG")
    info = index_image_folder(folder, tmp_path / "real.h5", image_size=16)
    assert info["n_images"] == 19 and info["n_classes"] == 3 and info["skipped"] == []
    with ImageSet(tmp_path / "real.h5") as s:
        assert s.kind == "index" and len(s) == 19 and s.image_size == 16
        assert s.class_names == WNIDS and s.attrs["wnids"] == WNIDS and s.attrs["set_name"] == "real"
        assert s.labels.tolist() == [0] * 6 + [1] * 7 + [2] * 6 and s.labels.dtype == np.int64
        assert s.ids[0] == b"real-0000000" and s.ids[-1] == b"real-0000018"
        assert s.mask_names == [] and s.meta_columns == []
        paths = [p.decode() for p in s.f["paths"][:]]
        assert paths[0] == str(folder / WNIDS[0] / f"{WNIDS[0]}_00.png") and paths[12].endswith("zz_upper.PNG")
        imgs = s.images()
        assert imgs.shape == (19, 16, 16, 3) and imgs.dtype == np.uint8
        assert s.images(3).shape == (16, 16, 3)
        np.testing.assert_array_equal(s.images(np.array([2, 7])), imgs[[2, 7]])
        assert s.images(np.array([], dtype=int)).shape == (0, 16, 16, 3)
        full = np.asarray(Image.open(paths[0]).convert("RGB").resize((16, 16), Image.BILINEAR))
        np.testing.assert_array_equal(imgs[0], full)
        assert [int(np.median(imgs[i])) for i in (0, 6, 18)] == [60, 120, 180]  # each class's flat colour
        s.verify()


def test_class_names_and_errors(folder, tmp_path):
    index_image_folder(folder, tmp_path / "a.h5", 32, class_names=["tench", "goldfish", "shark"], set_name="val")
    with ImageSet(tmp_path / "a.h5") as s:
        assert s.class_names == ["tench", "goldfish", "shark"] and s.attrs["wnids"] == WNIDS
        assert s.attrs["set_name"] == "val" and s.ids[0] == b"val-0000000"
    with pytest.raises(SpurlabError, match=r"2 class names given for 3 class folders"):
        index_image_folder(folder, tmp_path / "b.h5", 32, class_names=["a", "b"])
    with pytest.raises(SpurlabError, match=r"missing: image folder not found"):
        index_image_folder(tmp_path / "missing", tmp_path / "b.h5", 32)
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(SpurlabError, match=r"flat: no class folders"):
        index_image_folder(tmp_path / "flat", tmp_path / "b.h5", 32)
    (folder / "n09999999").mkdir()
    with pytest.raises(SpurlabError, match=r"n09999999: empty class folder"):
        index_image_folder(folder, tmp_path / "b.h5", 32)
    assert not (tmp_path / "b.h5").exists()


def test_corrupt_file_is_named(folder, tmp_path):
    bad = folder / WNIDS[2] / f"{WNIDS[2]}_03.png"
    data = bytearray(bad.read_bytes())
    data[40:60] = b"\0" * 20  # breaks a chunk checksum
    bad.write_bytes(bytes(data))
    with pytest.raises(SpurlabError) as e:
        index_image_folder(folder, tmp_path / "c.h5", 32)
    assert str(bad) in str(e.value) and "not a readable image" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "c.h5").exists() and not list(tmp_path.glob(".c.h5.*"))
    (folder / WNIDS[0] / "junk.jpg").write_bytes(b"definitely not a jpeg")
    info = index_image_folder(folder, tmp_path / "c.h5", 32, skip_bad_images=True)
    assert info["n_images"] == 17 and info["skipped"] == [f"{WNIDS[0]}/junk.jpg", f"{WNIDS[2]}/{WNIDS[2]}_03.png"]
    with ImageSet(tmp_path / "c.h5") as s:
        assert s.attrs["skipped"] == info["skipped"] and len(s) == 17


def test_hash_is_deterministic_and_content_addressed(folder, tmp_path):
    a = index_image_folder(folder, tmp_path / "a.h5", 32)["sha256"]
    assert index_image_folder(folder, tmp_path / "b.h5", 32, threads=2)["sha256"] == a
    moved = tmp_path / "elsewhere" / "imgs"
    shutil.copytree(folder, moved)  # another machine: same files under another root
    assert index_image_folder(moved, tmp_path / "m.h5", 32)["sha256"] == a
    assert index_image_folder(folder, tmp_path / "s.h5", 24)["sha256"] != a  # other pixels when read
    target = folder / WNIDS[1] / f"{WNIDS[1]}_02.png"
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(target)
    with pytest.raises(SpurlabError, match="file changed since"):
        ImageSet(tmp_path / "a.h5").verify()
    assert index_image_folder(folder, tmp_path / "d.h5", 32)["sha256"] != a


def test_synset_map_fixes_class_indices(folder, tmp_path):
    """LOC_synset_mapping.txt order, not the folders, gives the class index: a tree with only some of
    the classes keeps the indices of the full head; folders outside the map are refused."""
    mapping = tmp_path / "LOC_synset_mapping.txt"
    order = ["n09999999", WNIDS[2], WNIDS[0], "n00000001", WNIDS[1]]  # not sorted; two without folders
    mapping.write_text("".join(f"{w} name of {w}, a thing\n" for w in order) + "\n")
    info = index_image_folder(folder, tmp_path / "s.h5", 16, synsets=mapping)
    assert info["n_classes"] == 5 and info["n_images"] == 18
    with ImageSet(tmp_path / "s.h5") as s:
        assert s.attrs["wnids"] == order and s.class_names[1] == f"name of {WNIDS[2]}, a thing"
        assert s.labels.tolist() == [1] * 6 + [2] * 6 + [4] * 6  # rows in class index order
        paths = [p.decode() for p in s.f["paths"][:]]
        assert paths[0].endswith(f"{WNIDS[2]}/{WNIDS[2]}_00.png") and paths[-1].endswith(
            f"{WNIDS[1]}/{WNIDS[1]}_05.png"
        )
        assert int(np.median(s.images(0))) == 180  # WNIDS[2]'s flat colour: the label points at the right files
    index_image_folder(folder, tmp_path / "n.h5", 16, synsets=mapping, class_names=list("abcde"))
    with ImageSet(tmp_path / "n.h5") as s:
        assert s.class_names == list("abcde")
    plain = tmp_path / "wnids.txt"
    plain.write_text("\n".join(WNIDS[:2]) + "\n")  # one wnid a line, WNIDS[2] missing
    with pytest.raises(SpurlabError, match=rf"{WNIDS[2]}: class folder not in the synset map"):
        index_image_folder(folder, tmp_path / "x.h5", 16, synsets=plain)
    plain.write_text(f"{WNIDS[0]}\n{WNIDS[1]} b\n{WNIDS[0]} again\n")
    with pytest.raises(SpurlabError, match=rf"line 3: wnid {WNIDS[0]} already listed on line 1"):
        index_image_folder(folder, tmp_path / "x.h5", 16, synsets=plain)
    assert not (tmp_path / "x.h5").exists()


def test_flat_val_layout(tmp_path):
    """ImageNet's val archive: one flat folder, labels in LOC_val_solution.csv or '<file> <wnid>' lines."""
    src = fake_folder(tmp_path / "sorted", n_per_class=2)
    flat = tmp_path / "val"
    flat.mkdir()
    truth = {}
    for k, p in enumerate(sorted(src.rglob("*.png"), key=lambda p: p.name[::-1])):  # classes interleaved
        name = f"ILSVRC2012_val_{k + 1:08d}"
        shutil.copy(p, flat / f"{name}.JPEG")  # a PNG under a .JPEG name: PIL reads the content
        truth[name] = p.parent.name
    csv_path = tmp_path / "LOC_val_solution.csv"
    csv_path.write_text(
        "ImageId,PredictionString\n" + "".join(f"{n},{w} 1 2 30 40 {w} 5 6 7 8\n" for n, w in truth.items())
    )
    info = index_image_folder(flat, tmp_path / "v.h5", 16, val_labels=csv_path)
    assert info["n_images"] == 6 and info["n_classes"] == 3
    with ImageSet(tmp_path / "v.h5") as s:
        assert s.attrs["wnids"] == WNIDS  # no synset map: the sorted wnids of the labels
        names = [os.path.basename(p.decode()) for p in s.f["paths"][:]]
        assert names == sorted(names) and s.labels.tolist() == [WNIDS.index(truth[n[:-5]]) for n in names]
        for i, n in enumerate(names):  # each row's pixels are its class's flat colour
            assert int(np.median(s.images(i))) == 60 * (WNIDS.index(truth[n[:-5]]) + 1)
    lines = tmp_path / "val_labels.txt"
    lines.write_text("".join(f"{n}.JPEG {w}\n" for n, w in truth.items()))
    mapping = tmp_path / "map.txt"
    mapping.write_text("\n".join(["n00000001"] + WNIDS) + "\n")
    index_image_folder(flat, tmp_path / "w.h5", 16, val_labels=lines, synsets=mapping)
    with ImageSet(tmp_path / "w.h5") as s, ImageSet(tmp_path / "v.h5") as v:
        assert s.labels.tolist() == (v.labels + 1).tolist() and s.attrs["wnids"][0] == "n00000001"
    (flat / "extra.JPEG").write_bytes((flat / "ILSVRC2012_val_00000001.JPEG").read_bytes())
    with pytest.raises(SpurlabError, match=r"val/extra.JPEG: no label in .*val_labels.txt"):
        index_image_folder(flat, tmp_path / "x.h5", 16, val_labels=lines)
    lines.write_text(lines.read_text() + "extra.JPEG n01010101\n")
    with pytest.raises(SpurlabError, match=r"extra.JPEG is labelled n01010101, which is not in .*map.txt"):
        index_image_folder(flat, tmp_path / "x.h5", 16, val_labels=lines, synsets=mapping)
    (flat / "extra.JPEG").write_bytes(b"not an image")  # the bad-file policy holds in this layout too
    lines.write_text(lines.read_text().replace("n01010101", WNIDS[0]))
    with pytest.raises(SpurlabError, match=r"extra.JPEG: not a readable image"):
        index_image_folder(flat, tmp_path / "x.h5", 16, val_labels=lines)
    assert index_image_folder(flat, tmp_path / "x.h5", 16, val_labels=lines, skip_bad_images=True)["skipped"] == [
        "extra.JPEG"
    ]


def test_cli_index_folder(folder, tmp_path, capsys):
    from spurlab.cli import main

    (tmp_path / "names.txt").write_text("tench\ngoldfish\nshark\n")
    out = tmp_path / "sets" / "real.h5"
    assert main(["index-folder", "--root", str(folder), "--out", str(out), "--image-size", "32",
                 "--set-name", "real_val", "--class-names", str(tmp_path / "names.txt"), "--threads", "2"]) == 0  # fmt: skip
    assert "18 images of 3 classes" in capsys.readouterr().out
    with ImageSet(out) as s:
        assert s.attrs["set_name"] == "real_val" and s.class_names == ["tench", "goldfish", "shark"]
    (folder / WNIDS[1] / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["index-folder", "--root", str(folder), "--out", str(tmp_path / "x.h5"), "--image-size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spurlab: error: ") and str(folder / WNIDS[1] / "bad.png") in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------ config


def test_folders_config(tiny_cfg):
    from spurlab.config import folder_options, folder_sets, generated_sets, section_for_set, set_names, validate_config

    cfg = dict(tiny_cfg, folders={"real_train": {"root": "data/x", "image_size": 32},
                                  "real_val": {"root": "data/y", "image_size": 32, "class_names": "n.txt",
                                               "skip_bad_images": True}})  # fmt: skip
    cfg["features"] = dict(cfg["features"], sets=cfg["features"]["sets"] + ["real_train", "real_val"])
    validate_config(cfg)
    assert folder_sets(cfg) == ["real_train", "real_val"] and "real_train" not in generated_sets(cfg)
    assert set_names(cfg) == generated_sets(cfg) + ["real_train", "real_val"]
    assert section_for_set(cfg, "real_train") == {"folders": {"real_train": {"root": "data/x", "image_size": 32}}}
    assert (
        folder_options(cfg, "real_train") == ""
        and folder_options(cfg, "real_val") == "--class-names n.txt --skip-bad-images"
    )
    assert set_names(tiny_cfg) == generated_sets(tiny_cfg) and folder_sets(dict(tiny_cfg, folders=None)) == []
    clash = dict(tiny_cfg, folders={"test": {"root": "data/x", "image_size": 32}})
    with pytest.raises(SpurlabError, match=r"^config key folders.test: 'test' is already a generated image set"):
        validate_config(clash)
    with pytest.raises(SpurlabError, match=r"config key folders.real.resize: unknown key"):
        validate_config(dict(tiny_cfg, folders={"real": {"root": "x", "image_size": 32, "resize": 1}}))
    with pytest.raises(SpurlabError, match=r"config key folders.real: 'image_size' is a required property"):
        validate_config(dict(tiny_cfg, folders={"real": {"root": "x"}}))
    with pytest.raises(SpurlabError, match=r"config key folders"):
        validate_config(dict(tiny_cfg, folders={"a/b": {"root": "x", "image_size": 32}}))


def test_folder_layout_keys(tiny_cfg):
    from spurlab.config import folder_options, validate_config

    cfg = dict(tiny_cfg, folders={"v": {"root": "data/val", "image_size": 32, "synsets": "map dir/LOC_synset_mapping.txt",
                                        "val_labels": "LOC_val_solution.csv", "class_names": None}})  # fmt: skip
    validate_config(cfg)
    assert folder_options(cfg, "v") == "--synsets 'map dir/LOC_synset_mapping.txt' --val-labels LOC_val_solution.csv"
    with pytest.raises(SpurlabError, match=r"config key folders.v.synsets"):
        validate_config(dict(tiny_cfg, folders={"v": {"root": "x", "image_size": 32, "synsets": 3}}))


def test_imagenet_example_config_validates():
    from spurlab.config import folder_sets, load_config
    from tests.conftest import ROOT

    cfg = load_config([ROOT / "config" / "folders.yaml", ROOT / "config" / "imagenet.yaml"])
    assert folder_sets(cfg) == ["images_train", "images_val", "images_cue_only"]
    assert cfg["folders"]["images_val"]["val_labels"] == "data/imagenet/LOC_val_solution.csv"
    assert cfg["salient"]["model"] == "discovery" and cfg["salient"]["annotation"]["source"] == "human"
    assert cfg["models"]["discovery"]["checkpoint"]["layout"] == "madry"


def test_contact_sheet_and_summary_of_an_index_set(folder, tmp_path, tiny_cfg):
    from spurlab.data.summary import datasets_summary
    from spurlab.report.figures import contact_sheet

    index_image_folder(folder, tmp_path / "real.h5", 32)
    with ImageSet(tmp_path / "real.h5") as s:
        contact_sheet(s, tmp_path / "real.png", n=12)  # no masks: images and class names only
    assert (tmp_path / "real.png").stat().st_size > 1000
    tiny_cfg["datasets"]["n_images"]["train"] = 64
    entry = datasets_summary(tiny_cfg, [tmp_path / "real.h5"])["sets"]["real"]
    assert entry["n_images"] == 18 and entry["class_counts"] == dict.fromkeys(WNIDS, 6) and entry["cue_rates"] == {}


def test_imported_model_keys(tiny_cfg):
    from spurlab.config import validate_config

    tiny_cfg["models"]["imp"] = {"arch": "resnet50", "checkpoint": {"path": "x.pt", "layout": "madry", "num_classes": 4,
                                                                 "input_size": 32}}  # fmt: skip
    validate_config(tiny_cfg)
    tiny_cfg["models"]["imp"]["arch_args"] = {"width": 8}
    with pytest.raises(SpurlabError, match=r"^config key models.imp.arch_args: not applied to an imported model"):
        validate_config(tiny_cfg)


def test_make_set_refuses_a_folder_set(tmp_path, tiny_cfg, capsys):
    import yaml

    from spurlab.cli import main

    tiny_cfg["folders"] = {"real": {"root": str(tmp_path), "image_size": 32}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_cfg))
    assert main(["make-set", "-c", str(tmp_path / "c.yaml"), "--set", "real", "--out", str(tmp_path / "x.h5")]) == 2
    assert "a folder set (folders.real); build it with spurlab index-folder" in capsys.readouterr().err
