"""What an image folder's files become (`spurlab.data.imagesets.decode_rgb`): every PIL mode a file
can decode to gives the intended 8-bit RGB pixels through indexing and reading, or is refused with
the reason; EXIF orientation, multi-frame files, tiny and extreme-aspect images; the names the
folder walk ignores by rule."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from spurlab.data.folders import index_image_folder, list_images
from spurlab.data.imagesets import ImageDecodeError, ImageSet, decode_rgb, to_rgb8
from spurlab.errors import SpurlabError

S = 8  # every file is S x S (unless the case says otherwise) and the set's image_size: no resize
WHITE = 255.0


def composite(rgb, alpha) -> np.ndarray:
    """Straight alpha over white, the intended pixels of a transparent image."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return rgb.astype(np.float64) * a + WHITE * (1 - a)


def grey_rgb(g) -> np.ndarray:
    return np.repeat(np.asarray(g, np.float64)[..., None], 3, axis=-1)


def ramp(lo=0, hi=255) -> np.ndarray:
    return np.linspace(lo, hi, S * S).reshape(S, S).round().astype(np.int64)


def make_cases(d):
    """{file name: (expected RGB float (H, W, 3), tolerance)}, each file written into `d`; the
    source modes are asserted so that each case really covers its mode."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    g = ramp().astype(np.uint8)
    alpha = rng.integers(0, 256, (S, S), dtype=np.uint8)
    alpha[0, 0], alpha[0, 1] = 0, 255
    cases = {}

    def save(name, im, expected, tol=1.0, mode=None, **kw):
        im.save(d / name, **kw)
        with Image.open(d / name) as back:
            assert back.mode == (mode or im.mode), (name, back.mode)
        cases[name] = (np.asarray(expected, np.float64), tol)

    save("rgb.png", Image.fromarray(rgb), rgb, 0)
    save("l.png", Image.fromarray(g, "L"), grey_rgb(g), 0)
    save("la.png", Image.fromarray(np.stack([g, alpha], -1), "LA"), composite(grey_rgb(g), alpha))
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), composite(rgb, alpha))
    save("rgba.webp", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), composite(rgb, alpha), lossless=True)
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    idx = rng.integers(0, 4, (S, S), dtype=np.uint8)
    idx[0, :4] = [0, 1, 2, 3]
    p = Image.fromarray(idx, "P")
    p.putpalette(palette.ravel().tolist())
    save("p.png", p, palette[idx], 0)
    save("p.bmp", p, palette[idx], 0)
    pt = p.copy()
    pt.info["transparency"] = 2  # palette entry 2 is transparent
    want = palette[idx].astype(np.float64)
    want[idx == 2] = WHITE
    save("p_transparent.png", pt, want, 0, transparency=2)
    save("p_transparent_gif.png", pt, want, 0, transparency=2, format="GIF")  # GIF content, .png name
    key = tuple(int(v) for v in rgb[0, 0])  # tRNS colour key on an RGB PNG
    want = rgb.astype(np.float64)
    want[(rgb == key).all(-1)] = WHITE
    save("rgb_colour_key.png", Image.fromarray(rgb), want, 0, transparency=key)
    cmyk_src = rng.integers(0, 256, (1, 1, 3), dtype=np.uint8).repeat(S, 0).repeat(S, 1)  # flat: JPEG keeps it
    save("cmyk.jpg", Image.fromarray(cmyk_src).convert("CMYK"), cmyk_src, 3, quality=100)
    bits = rng.integers(0, 2, (S, S)).astype(bool)
    save("bilevel.png", Image.fromarray(bits), grey_rgb(bits * 255.0), 0)
    save("bilevel.bmp", Image.fromarray(bits), grey_rgb(bits * 255.0), 0)
    v16 = ramp(0, 65535)
    v16[0, :3] = [257, 256, 65534]
    save("grey16.png", Image.fromarray(v16.astype(np.uint16)), grey_rgb(np.round(v16 / 257)), 0)
    # mode I (32-bit integers, 16-bit range): a TIFF under an image extension (the content decides)
    save("int32.png", Image.fromarray(v16.astype(np.int32)), grey_rgb(np.round(v16 / 257)), 0, format="TIFF")
    # a greyscale JPEG
    flat = np.full((S, S), 77, np.uint8)
    save("grey.jpg", Image.fromarray(flat, "L"), grey_rgb(flat), 1, quality=100)
    return cases


@pytest.fixture(scope="module")
def modes(tmp_path_factory):
    d = tmp_path_factory.mktemp("modes")
    root = d / "imgs"
    (root / "a").mkdir(parents=True)
    cases = make_cases(root / "a")
    info = index_image_folder(root, d / "idx.h5", S)
    return root, cases, info, d / "idx.h5"


def test_every_accepted_mode_gives_the_intended_pixels(modes):
    root, cases, info, idx = modes
    assert info["skipped"] == [] and info["n_images"] == len(cases)
    with ImageSet(idx) as s:
        names = [os.path.basename(p.decode()) for p in s.f["paths"][:]]
        assert names == sorted(cases)
        images = s.images()
    assert images.dtype == np.uint8 and images.shape == (len(cases), S, S, 3)
    for name, got in zip(names, images):
        want, tol = cases[name]
        diff = np.abs(got.astype(np.float64) - want).max()
        assert diff <= tol, f"{name}: max difference {diff} from the intended pixels"


def test_sixteen_bit_grey_is_scaled_not_clipped(modes):
    """Pillow's own convert('RGB') clips I;16 above 255 (a near-white image); the rule scales."""
    root, *_ = modes
    with Image.open(root / "a" / "grey16.png") as im:
        assert im.mode == "I;16"
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9  # what the rule avoids
    px = np.asarray(decode_rgb(root / "a" / "grey16.png"))
    assert px[0, 0, 0] == 1 and px[0, 1, 0] == 1 and px[0, 2, 0] == 255 and px[-1, -1, 0] == 255


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_at_index_and_read_time(tmp_path, fmt):
    """Orientation 6 (rotate 90 degrees clockwise to view): the set holds the upright pixels, at
    index time (a refused or accepted decision on the upright image) and read time alike."""
    src = np.zeros((S, 2 * S, 3), np.uint8)  # wide, left half red, right half blue
    src[:, :S] = (255, 0, 0)
    src[:, S:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    path = root / "a" / ("rot.jpg" if fmt == "JPEG" else "rot.png")
    Image.fromarray(src).save(
        path, format=fmt, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {})
    )
    upright = np.rot90(src, k=-1)  # tall: red on top
    got = np.asarray(decode_rgb(path)).astype(int)
    assert got.shape == upright.shape == (2 * S, S, 3)
    tol = 8 if fmt == "JPEG" else 0
    assert np.abs(got - upright).max() <= tol
    index_image_folder(root, tmp_path / "i.h5", 2 * S)
    with ImageSet(tmp_path / "i.h5") as s:
        img = s.images(0).astype(int)  # resized to 2S x 2S: red top half, blue bottom half
    assert img[: S - 1, :, 0].min() > 200 and img[: S - 1, :, 2].max() < 60
    assert img[S + 1 :, :, 2].min() > 200 and img[S + 1 :, :, 0].max() < 60


def test_multi_frame_files_give_their_first_frame(tmp_path):
    red, green = (Image.new("RGB", (S, S), c) for c in ((200, 0, 0), (0, 200, 0)))
    red.save(tmp_path / "anim.png", save_all=True, append_images=[green], duration=100)  # APNG
    red.save(tmp_path / "anim.webp", save_all=True, append_images=[green], duration=100, lossless=True)
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[green], duration=100)
    for name in ("anim.png", "anim.webp", "anim.gif"):
        with Image.open(tmp_path / name) as im:
            assert im.n_frames == 2, name
        px = np.asarray(decode_rgb(tmp_path / name)).astype(int)
        assert np.abs(px - (200, 0, 0)).max() <= 2, name


def test_tiny_and_extreme_aspect_images(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(root / "a" / "one.png")
    Image.new("RGB", (4000, 1), (40, 50, 60)).save(root / "a" / "wide.png")
    Image.new("L", (1, 3000), 90).save(root / "a" / "tall.png")
    index_image_folder(root, tmp_path / "i.h5", 16)
    with ImageSet(tmp_path / "i.h5") as s:
        imgs = s.images()
    assert imgs.shape == (3, 16, 16, 3)
    assert (imgs[0] == (10, 20, 30)).all() and (imgs[1] == (90, 90, 90)).all() and (imgs[2] == (40, 50, 60)).all()


def test_refused_modes_name_the_reason():
    with pytest.raises(ImageDecodeError, match="mode F"):
        to_rgb8(Image.fromarray(np.ones((2, 2), np.float32)))
    with pytest.raises(ImageDecodeError, match="outside 0..65535"):
        to_rgb8(Image.fromarray(np.full((2, 2), 70000, np.int32)))
    with pytest.raises(ImageDecodeError, match="outside 0..65535"):
        to_rgb8(Image.fromarray(np.full((2, 2), -1, np.int32)))
    with pytest.raises(ImageDecodeError, match="not an image format"):
        decode_rgb(io.BytesIO(b"GIF89a but not really"))
    grey = to_rgb8(Image.fromarray(np.array([[0, 65535]], np.int32)))  # mode I in range: 16-bit grey
    assert np.asarray(grey)[0, :, 0].tolist() == [0, 255]


def test_hidden_and_system_entries_are_ignored(tmp_path):
    """Ignored by rule, at every level: names starting with '.', Thumbs.db, desktop.ini, __MACOSX,
    @eaDir ...; a file whose content is not an image but whose name is ignored never fails."""
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        (root / cls / "sub").mkdir(parents=True)
        Image.new("RGB", (4, 4), (1, 2, 3)).save(root / cls / "x.png")
    junk = b"not an image"
    for rel in ("a/.DS_Store", "a/._x.png", "a/.hidden.jpg", "a/Thumbs.db", "a/THUMBS.DB", "a/desktop.ini",
                "a/sub/._y.jpg", "a/.thumbnails/t.jpg", "a/@eaDir/x.png/SYNOPHOTO_THUMB_M.jpg", "b/sub/.z.png",
                "__MACOSX/a/._x.png", ".Trash/n0/x.jpg", "b/notes.txt"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(junk)
    Image.new("RGB", (4, 4)).save(root / "a" / "sub" / "y.PNG")
    info = index_image_folder(root, tmp_path / "i.h5", 4)
    assert info["n_classes"] == 2 and info["skipped"] == []
    with ImageSet(tmp_path / "i.h5") as s:
        rel = [os.path.relpath(p.decode(), root) for p in s.f["paths"][:]]
    assert rel == ["a/x.png", "a/sub/y.PNG", "b/x.png"]


def test_walk_order_is_torchvision_order(tmp_path):
    """Folders in sorted order of their paths (sorted(os.walk(...))), not depth-first: 'sub-a' sorts
    between 'sub' and 'sub/x' because '-' < '/'."""
    for rel in ("sub/x/1.png", "sub/2.png", "sub-a/3.png", "0.png", "sub2/4.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (2, 2)).save(tmp_path / rel)
    want = []
    for dirpath, _, files in sorted(os.walk(tmp_path, followlinks=True)):
        rel_dir = os.path.relpath(dirpath, tmp_path)
        want += [f if rel_dir == "." else f"{rel_dir}/{f}" for f in sorted(files)]
    assert list_images(tmp_path) == want == ["0.png", "sub/2.png", "sub-a/3.png", "sub/x/1.png", "sub2/4.png"]


def test_links_are_followed_and_loops_refused(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(elsewhere / "real.png")
    os.symlink(elsewhere / "real.png", root / "a" / "linked.png")
    os.symlink(elsewhere, root / "a" / "more")  # a linked folder is walked
    assert list_images(root / "a") == ["linked.png", "more/real.png"]
    os.symlink(root / "a", root / "a" / "more" / "back")  # store/back -> a: a loop through two links
    with pytest.raises(SpurlabError, match=r"a/more/back: symbolic link to .* loops back to a folder above it"):
        list_images(root / "a")
