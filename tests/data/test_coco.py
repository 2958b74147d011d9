"""Real-data BAM (Yang & Kim 2019; docs/methods.md#bam-compositing, #real-data-adapters): COCO instances cut by their masks, pasted on a
scene folder, laid out as the procedural BAM sets. Planted truth: a tiny COCO-format dataset drawn
here, every instance a known colour and mask."""

import copy
import json
import re
import shutil
import subprocess

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import yaml
from PIL import Image

from spurlab.data import coco
from spurlab.data.bam import side_fraction_range
from spurlab.data.imagesets import ImageSet, write_imageset
from spurlab.data.sets import build_plan
from spurlab.errors import SpurlabError
from tests.conftest import ROOT, load_yaml
from tests.data.test_synth import collect

OBJECTS = ["cat", "dog", "kite"]
SCENES = ["beach", "forest", "street"]
SIZE = 40
# pycocotools' decode under numpy 2 (its __array__ lacks the copy keyword): not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _polygon(cx, cy, r, n, rng):
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.7, 1.0, n)
    return [float(v) for a, d in zip(ang, rad) for v in (cx + d * np.cos(a), cy + d * np.sin(a))]


def _uncompressed_rle(mask):
    flat = mask.flatten(order="F").astype(np.uint8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [len(flat)]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] + runs) if flat[0] else runs}


def make_coco(root, seed=0):
    """6 images: cats and dogs as polygons, kites as RLE masks (uncompressed and compressed).
    Image 0 has a large and a small cat, image 1 a crowd 'dog' region larger than its dog; one
    kite is textured (a gradient), every other instance has its own solid colour.
    Returns (annotations path, images dir, {ann id: colour or None}, the small cat's and the
    crowd's ids, {ann id: mask})."""
    rng = np.random.default_rng(seed)
    img_dir = root / "coco_images"
    img_dir.mkdir(parents=True)
    images, anns, colours, masks = [], [], {}, {}
    ann_id = 100

    def add(image_id, cat, seg, mask, pixels, colour, crowd=0):
        nonlocal ann_id
        ann_id += 1
        anns.append({"id": ann_id, "image_id": image_id, "category_id": cat, "segmentation": seg,
                     "area": float(mask.sum()), "bbox": [0, 0, 1, 1], "iscrowd": crowd})  # fmt: skip
        if pixels is not None:
            pixels[mask] = colour if colour is not None else _gradient(mask.shape)[mask]
        colours[ann_id], masks[ann_id] = (None if colour is None else tuple(colour)), mask
        return ann_id

    small_cat = crowd = None
    for i in range(6):
        w, h = 96 + 8 * i, 72 + 4 * i
        pixels = rng.integers(60, 200, (h, w, 3)).astype(np.uint8)
        images.append({"id": i + 1, "file_name": f"sub/{i:012d}.png", "height": h, "width": w})

        def poly_mask(cx, cy, r, h=h, w=w):
            p = _polygon(cx, cy, r, 7, rng)
            return [p], mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([p], h, w))).astype(bool)

        seg, m = poly_mask(22, 22, 17)
        add(i + 1, 1, seg, m, pixels, [250, 20 + 30 * i, 20])
        seg, m = poly_mask(70, 22, 16)
        add(i + 1, 2, seg, m, pixels, [20, 20 + 30 * i, 250])
        if i == 0:  # a second, smaller cat
            seg, m = poly_mask(30, 56, 8)
            small_cat = add(i + 1, 1, seg, m, pixels, [20, 250, 20])
        else:
            yy, xx = np.mgrid[:h, :w]
            m = ((xx - 48) / 30.0) ** 2 + ((yy - 58) / 10.0) ** 2 <= 1
            rle = _uncompressed_rle(m)
            if i >= 4:
                enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rle = {"size": [h, w], "counts": enc["counts"].decode()}
            add(i + 1, 3, rle, m, pixels, None if i == 2 else [240, 240, 20 * i])
        if i == 1:  # a crowd of dogs, larger than the dog: never chosen
            m = np.zeros((h, w), bool)
            m[2:70, 2:90] = True
            crowd = add(i + 1, 2, _uncompressed_rle(m), m, None, None, crowd=1)
        (img_dir / "sub").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(img_dir / images[-1]["file_name"])
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "kite"}, {"id": 9, "name": "zebra"}]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, img_dir, colours, small_cat, crowd, masks


def _gradient(shape):
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    return np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), np.full_like(xx, 90)], -1).astype(
        np.uint8
    )


def make_scenes(root, seed=1):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(SCENES):
        d = root / "scenes" / name
        d.mkdir(parents=True)
        for j, (w, h) in enumerate([(70, 50), (50, 70), (64, 64)]):
            img = np.clip(rng.normal(60 + 70 * k, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{name}_{j}.{'jpg' if j == 2 else 'png'}")
        (d / "notes.txt").write_text("not an image")
    return root / "scenes"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    ann, imgs, colours, small_cat, crowd, masks = make_coco(root)
    scenes = make_scenes(root)
    cfg = load_yaml("tiny.yaml")
    cfg["bam"].update(source="coco", objects=OBJECTS, scenes=SCENES, common_object="cat", image_size=SIZE,
                      n_per_pair={"train": 2, "test": 1}, commonality=[0.3, 1.0],
                      coco={"annotations": str(ann), "images": str(imgs), "scenes_dir": str(scenes), "test_fraction": 0.2})  # fmt: skip
    return {"root": root, "cfg": cfg, "colours": colours, "small_cat": small_cat, "crowd": crowd, "masks": masks}


@pytest.fixture(scope="module")
def sets(data):
    return {v: collect(build_plan(data["cfg"], f"bam_{v}_train")[0]) for v in ("os", "0s", "og", "k030")}


def test_largest_non_crowd_instance_of_each_image(data):
    b = data["cfg"]["bam"]
    pools, sha = coco.read_instances(b["coco"]["annotations"], b["coco"]["images"], OBJECTS)
    assert [len(p) for p in pools] == [6, 6, 5] and len(sha) == 64
    cats = {inst.image_id: inst for inst in pools[0]}
    assert cats[1].ann_id != data["small_cat"] and cats[1].area > data["masks"][data["small_cat"]].sum()
    assert data["crowd"] not in [inst.ann_id for inst in pools[1]]
    for inst in pools[2]:  # RLE (uncompressed and compressed) decodes to the drawn mask
        np.testing.assert_array_equal(coco.decode_mask(inst), data["masks"][inst.ann_id])
    for inst in pools[0][:2]:  # polygons
        np.testing.assert_array_equal(coco.decode_mask(inst), data["masks"][inst.ann_id])


def test_pasted_pixels_are_the_object_under_its_mask(data, sets):
    d = sets["os"]
    mask, meta = d["masks"]["object"].astype(bool), d["meta"]
    assert mask.any(axis=(1, 2)).all()
    assert data["small_cat"] not in meta["coco_annotation_id"] and data["crowd"] not in meta["coco_annotation_id"]
    lo, hi = side_fraction_range(data["cfg"]["bam"]["scale_rule"])
    b = data["cfg"]["bam"]
    pools, _ = coco.read_instances(b["coco"]["annotations"], b["coco"]["images"], OBJECTS)
    by_id = {inst.ann_id: inst for pool in pools for inst in pool}
    n_textured = 0
    for i, a in enumerate(meta["coco_annotation_id"]):
        inst = by_id[int(a)]
        assert pools[meta["object_label"][i]].count(inst) == 1  # the instance is of the row's class
        colour = data["colours"][int(a)]
        rgb, m = coco.resize_object(*coco.cut_object(inst), int(round(meta["scale"][i] * SIZE)))
        h, w = m.shape
        assert lo * SIZE - 1 <= max(h, w) <= hi * SIZE + 1
        x0 = int(round((meta["cx"][i] + 1) / 2 * SIZE - w / 2))
        y0 = int(round((meta["cy"][i] + 1) / 2 * SIZE - h / 2))
        placed = np.zeros((SIZE, SIZE), bool)
        placed[y0 : y0 + h, x0 : x0 + w] = m
        np.testing.assert_array_equal(mask[i], placed)  # masks/object is where the object went
        np.testing.assert_array_equal(d["images"][i][y0 : y0 + h, x0 : x0 + w][m], rgb[m])
        if colour is None:
            n_textured += 1
        else:  # solid objects: exactly the source colour, no background bled in at the rim
            assert (d["images"][i][mask[i]] == np.array(colour, np.uint8)).all()
    assert n_textured > 0


def test_variants_correspond_row_for_row(sets):
    os_, zs, og, k = sets["os"], sets["0s"], sets["og"], sets["k030"]
    obj = os_["masks"]["object"].astype(bool)
    assert not zs["masks"]["object"].any() and not zs["meta"]["object_present"].any()
    diff = (os_["images"] != zs["images"]).any(-1)
    assert not (diff & ~obj).any() and diff.sum() > 0.8 * obj.sum()  # 0s = os outside the object
    inside = obj[..., None].repeat(3, -1)
    np.testing.assert_array_equal(og["images"][inside], os_["images"][inside])
    assert (og["images"][~inside] == 128).all() and (og["meta"]["scene"] == -1).all()
    np.testing.assert_array_equal(og["masks"]["object"], os_["masks"]["object"])
    np.testing.assert_array_equal(os_["labels"], os_["meta"]["object_label"])
    np.testing.assert_array_equal(os_["meta"]["scene"], os_["meta"]["scene_label"])
    for v in ("0s", "og"):
        for col in ("object_label", "scene_label", "coco_annotation_id", "scene_image", "cx", "cy", "scale"):
            np.testing.assert_array_equal(sets[v]["meta"][col], os_["meta"][col])
    pairs = np.stack([os_["meta"]["object_label"], os_["meta"]["scene_label"]], 1)
    assert (np.unique(pairs, axis=0, return_counts=True)[1] == 2).all() and len(pairs) == 18
    # commonality 0.3 of 3 scenes: the cat is the object of every image of scene 0, and only there
    np.testing.assert_array_equal(k["labels"], k["meta"]["scene_label"])
    in_cf = k["meta"]["scene_label"] == 0
    assert (k["meta"]["object_label"][in_cf] == 0).all() and (k["meta"]["object_label"][~in_cf] != 0).all()


def test_same_columns_and_attrs_as_procedural_sets(data, tiny_cfg):
    proc_plan, proc_attrs = build_plan(tiny_cfg, "bam_os_test")
    plan, attrs = build_plan(data["cfg"], "bam_os_test")
    p, c = proc_plan.chunk(0), plan.chunk(0)
    assert set(p["meta"]) <= set(c["meta"]) and set(p["masks"]) == set(c["masks"]) == {"object"}
    assert all(p["meta"][k].dtype == c["meta"][k].dtype for k in p["meta"])
    assert set(proc_attrs) <= set(attrs)
    assert attrs["class_names"] == OBJECTS and attrs["scene_class_names"] == SCENES and attrs["source"] == "coco"
    assert build_plan(data["cfg"], "bam_k030_test")[1]["class_names"] == SCENES
    for key in ("coco_annotations_sha256", "coco_images_listing_sha256", "scenes_listing_sha256"):
        assert re.fullmatch(r"[0-9a-f]{64}", attrs[key])
    assert attrs["pool_sizes"]["scenes"] == {s: 1 for s in SCENES}


def test_train_and_test_use_disjoint_instances_and_scenes(data, sets):
    te = collect(build_plan(data["cfg"], "bam_os_test")[0])["meta"]
    tr = sets["os"]["meta"]
    assert not set(te["coco_annotation_id"]) & set(tr["coco_annotation_id"])
    for s in range(len(SCENES)):
        assert not set(te["scene_image"][te["scene_label"] == s]) & set(tr["scene_image"][tr["scene_label"] == s])


def test_same_seed_same_bytes(data, tmp_path):
    a = write_imageset(tmp_path / "a.h5", *_plan_args(data["cfg"]))
    b = write_imageset(tmp_path / "b.h5", *_plan_args(data["cfg"]))
    assert a == b and (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    other = copy.deepcopy(data["cfg"])
    other["seed"] += 1
    assert write_imageset(tmp_path / "c.h5", *_plan_args(other)) != a
    ImageSet(tmp_path / "a.h5").verify()


def _plan_args(cfg, name="bam_os_test"):
    plan, attrs = build_plan(cfg, name)
    return plan.n, plan.chunks(), attrs


def _broken(data, tmp_path, edit):
    """A copy of the config whose inputs `edit(coco_dict, root)` broke."""
    cfg = copy.deepcopy(data["cfg"])
    root = tmp_path / "broken"
    shutil.copytree(data["root"], root)
    c = cfg["bam"]["coco"]
    c.update(
        annotations=str(root / "instances.json"), images=str(root / "coco_images"), scenes_dir=str(root / "scenes")
    )
    js = json.loads((root / "instances.json").read_text())
    if edit(js, root, cfg) == "delete":
        (root / "instances.json").unlink()
    else:
        (root / "instances.json").write_text(json.dumps(js))
    return cfg


def _drop_area(js, root, cfg):
    del js["annotations"][3]["area"]


def _corrupt_coco_images(js, root, cfg):
    for p in (root / "coco_images" / "sub").iterdir():
        p.write_bytes(b"\x89PNG\r\n\x1a\n broken")


def _corrupt_scenes(js, root, cfg):
    for p in (root / "scenes" / "forest").glob("*_*"):
        p.write_bytes(b"garbage")


def _empty_scene(js, root, cfg):
    for p in (root / "scenes" / "street").iterdir():
        p.unlink()


def _one_scene_image(js, root, cfg):
    for p in sorted((root / "scenes" / "beach").glob("*_*"))[1:]:
        p.unlink()


def _only_crowd_kites(js, root, cfg):
    for a in js["annotations"]:
        if a["category_id"] == 3:
            a["iscrowd"] = 1


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda js, root, cfg: js.pop("categories"), r"instances\.json: missing key 'categories'"),
        (_drop_area, r"instances\.json: annotations\[3\] \(id 104\): missing key 'area'"),
        (
            lambda js, root, cfg: cfg["bam"].update(objects=["cat", "horse", "kite"]),
            r"category 'horse' \(bam\.objects\[1\]\)",
        ),
        (_only_crowd_kites, r"instances\.json: category 'kite' has no usable instance"),
        (_empty_scene, r"scenes/street: empty scene folder"),
        (_one_scene_image, r"scenes/beach: scene folder \(images\) has only 1 usable; at least 2 are needed"),
        (_corrupt_coco_images, r"coco_images/sub/\d{12}\.png: cannot read image"),
        (_corrupt_scenes, r"scenes/forest/forest_\d\.(png|jpg): cannot read scene image"),
        (lambda js, root, cfg: "delete", r"instances\.json: COCO annotations file not found"),
    ],
)
def test_bad_inputs_give_one_line_errors(data, tmp_path, edit, pattern):
    cfg = _broken(data, tmp_path, edit)
    with pytest.raises(SpurlabError) as e:
        plan, _ = build_plan(cfg, "bam_os_train")
        collect(plan)
    assert "\n" not in str(e.value) and re.search(pattern, str(e.value)), str(e.value)


def test_cli_make_set_and_config(data, tmp_path, capsys):
    from spurlab.cli import main
    from spurlab.config import bam_source_inputs, section_for_set, validate_config

    cfg_path = tmp_path / "coco.yaml"
    cfg_path.write_text(yaml.safe_dump(data["cfg"]))
    out = tmp_path / "sets" / "bam_og_test.h5"
    assert main(["make-set", "--config", str(cfg_path), "--set", "bam_og_test", "--out", str(out), "--quiet"]) == 0
    with ImageSet(out) as s:
        assert len(s) == 9 and s.class_names == OBJECTS and s.attrs["source"] == "coco"
        assert s.attrs["generator_version"] == coco.GENERATOR_VERSION and s.mask_names == ["object"]
        s.verify()
    c = data["cfg"]["bam"]["coco"]
    assert bam_source_inputs(data["cfg"], "bam_os_train") == [c["annotations"], c["images"], c["scenes_dir"]]
    assert (
        bam_source_inputs(data["cfg"], "train") == []
        and bam_source_inputs(load_yaml("tiny.yaml"), "bam_os_train") == []
    )
    # the synthetic default's set hash does not see the (unused) coco keys
    assert "coco" not in section_for_set(load_yaml("tiny.yaml"), "bam_os_train")["bam"]
    assert "coco" in section_for_set(data["cfg"], "bam_os_train")["bam"]
    bad = copy.deepcopy(data["cfg"])
    bad["bam"]["coco"]["scenes_dir"] = None
    with pytest.raises(SpurlabError, match=r"config key bam\.coco\.scenes_dir: required when bam\.source is coco"):
        validate_config(bad)
    empty = tmp_path / "empty_scenes"
    for s in SCENES:
        (empty / s).mkdir(parents=True)
    bad = copy.deepcopy(data["cfg"])
    bad["bam"]["coco"]["scenes_dir"] = str(empty)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    capsys.readouterr()
    args = ["make-set", "--config", str(tmp_path / "bad.yaml"), "--set", "bam_os_test", "--out", str(tmp_path / "x.h5")]
    assert main(args + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty_scenes/beach: empty scene folder" in err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.workflow
def test_dry_run_plans_the_bam_target_on_coco_data(data, tmp_path, venv_env):
    """The `bam` target plans the same jobs as on the synthetic tiny config (same grid shape)."""
    cfg_path = tmp_path / "coco.yaml"
    cfg_path.write_text(yaml.safe_dump(data["cfg"]))

    def plan(config):
        cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "run"), "-n", "--cores", "2",
               "bam", "--configfile", str(config)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, env=venv_env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return r.stdout, dict(re.findall(r"^(\w+)\s+(\d+)$", r.stdout, flags=re.M))

    out, counts = plan(cfg_path)
    assert counts == plan(ROOT / "config" / "tiny.yaml")[1]
    assert int(counts["image_set"]) >= 8 and counts["bam_train"] == "4"
    # the COCO JSON, its images and the scene folder are inputs of every BAM image_set job
    c = data["cfg"]["bam"]["coco"]
    jobs = [j for j in out.split("rule image_set:")[1:] if "bam_" in j.split("output:")[1].split("\n")[0]]
    assert len(jobs) == int(counts["image_set"])
    assert all(c["annotations"] in j and c["images"] in j and c["scenes_dir"] in j for j in jobs)
