"""Core and spurious accuracy under noise (Singla & Feizi 2022, sec. 5, eqs. 1-2; docs/methods.md#noise-corruption).

    x' = clip(x + sigma * (z * m), 0, 1),   z ~ N(0, I) per pixel and channel, m a soft mask

Noise on an image's *spurious* mask measures what the model gets from the rest (core accuracy,
over DS(i), the union of D(i, j) for the spurious features j of class i); noise on its *core* mask
gives spurious accuracy (over DC(i)). An image's spurious mask is the pixelwise max of the NAMs of
the spurious features whose D(i, j) holds it (eq. 2); likewise its core mask. Per feature, the
accuracy on D(i, j) with noise on that feature's NAM gives its accuracy drop.

z is drawn once per image from a generator seeded by (seed, image row) and scaled by every sigma,
so all models and sigmas see the same noise (paired comparisons; same seed, same numbers).
The consolidated masks come from the `salient_masks` stage (`spurlab.discover.subsets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256
from ..data.imagesets import ImageSet
from ..discover.subsets_file import ConsolidatedMasks, SalientSubsets
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, write_table
from ..shards import Shard, shard_attrs

SIGMAS = (0.0, 0.25, 0.5, 1.0, 2.0)  # paper's sweep; 0.25 is its headline sigma
L2_MATCH_SIGMAS = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60)  # paper, appendix L


def image_noise(seed: int, rows, shape: tuple[int, int, int]) -> np.ndarray:
    """z (n, 3, H, W) float32: image `row`'s noise depends only on (seed, row)."""
    return np.stack([np.random.default_rng([int(seed), int(r)]).standard_normal(shape, dtype=np.float32) for r in rows])


def corrupt(images: torch.Tensor, masks: torch.Tensor, sigma: float, z: torch.Tensor) -> torch.Tensor:
    """Eq. 1: images (B, 3, H, W) in [0, 1], masks (B, H, W) in [0, 1], z (B, 3, H, W)."""
    if sigma == 0:
        return images
    return (images + sigma * z * masks.unsqueeze(1)).clamp_(0.0, 1.0)


@torch.no_grad()
def accuracy_under_noise(model, images: np.ndarray, labels: np.ndarray, masks: np.ndarray, z: np.ndarray,
                         sigmas, device, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per sigma: (correct (S, n) bool, l2 (S, n) of the actual perturbation x' - x)."""
    from ..device import autocast

    n = len(images)
    correct = np.zeros((len(sigmas), n), dtype=bool)
    l2 = np.zeros((len(sigmas), n))
    for s in range(0, n, batch_size):
        x = torch.from_numpy(images[s : s + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        m = torch.from_numpy(masks[s : s + batch_size]).to(device).float()
        zz = torch.from_numpy(z[s : s + batch_size]).to(device)
        y = torch.from_numpy(labels[s : s + batch_size]).to(device)
        for q, sigma in enumerate(sigmas):
            xn = corrupt(x.clone(), m, float(sigma), zz)
            with autocast(device):
                pred = model.logits(xn).argmax(1)
            correct[q, s : s + len(x)] = (pred == y).cpu().numpy()
            l2[q, s : s + len(x)] = (xn - x).flatten(1).norm(dim=1).cpu().numpy()
    return correct, l2


def _rows(row: dict, sigmas, correct, l2):
    """Table rows of one noised region (`row`: model, class_index, class_name, feature, label,
    measure), one per sigma. `n_lost` / `n_gained`: the images right when clean and wrong at this
    sigma / wrong when clean and right (paired counts, the bootstrap's per-image drops of
    docs/methods.md#bootstrap-intervals; -1 when sigma 0 is not swept)."""
    n = correct.shape[1]
    zero = [q for q, sigma in enumerate(sigmas) if float(sigma) == 0.0]
    clean = correct[zero[0]] if zero else None
    for q, sigma in enumerate(sigmas):
        acc = float(correct[q].mean()) if n else float("nan")
        sem = float(correct[q].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        yield {
            "model": row["model"], "class_index": row["class_index"], "class_name": row["class_name"],
            "feature_index": row["feature"], "label": row["label"], "measure": row["measure"], "sigma": float(sigma),
            "acc": acc, "sem": sem, "n": n, "l2_mean": float(l2[q].mean()) if n else float("nan"),
            "n_lost": int((clean & ~correct[q]).sum()) if clean is not None else -1,
            "n_gained": int((~clean & correct[q]).sum()) if clean is not None else -1,
        }  # fmt: skip


@dataclass
class _ClassImages:
    """One class's images under test (rows `pos`-indexed), their labels and fixed noise `z`."""

    model: torch.nn.Module
    images: np.ndarray
    labels: np.ndarray
    z: np.ndarray
    pos: dict
    device: object
    batch_size: int

    def rows(self, rows: np.ndarray, masks, sigmas, row: dict) -> list[dict]:
        """Accuracy on `rows` with noise on `masks` at each sigma, as table rows."""
        sel = np.array([self.pos[r] for r in rows.tolist()], dtype=np.int64)
        correct, l2 = accuracy_under_noise(self.model, self.images[sel], labels=self.labels[sel], masks=masks,
                                           z=self.z[sel], sigmas=sigmas, device=self.device,
                                           batch_size=self.batch_size)  # fmt: skip
        return list(_rows(row, sigmas, correct, l2))


def noise_table(model, model_name: str, imageset, subsets, annotations, masks, seed: int, device,
                sigmas=SIGMAS, l2_sigmas=L2_MATCH_SIGMAS, batch_size: int = 256, progress: bool = True,
                classes=None):  # fmt: skip
    """One model's tidy noise table: rows per (class, feature or consolidated measure, sigma).

    measure "core_acc": noise on the spurious masks over DS(i); "spurious_acc": noise on the core
    masks over DC(i) (`masks`: a ConsolidatedMasks); their sigma = 0 rows are the clean accuracies.
    "feature" rows hold the accuracy on D(i, j) with noise on m(j), for the sweep and the
    l2-matching sigmas. `label` is the annotation of the noised feature(s). `classes`: only these
    (a shard's; the default: every class of the subsets).
    """
    import pandas as pd
    from tqdm import tqdm

    size = imageset.image_size
    pairs = subsets.pair_table()
    label_of = {(int(r.class_index), int(r.feature_index)): r.label for r in annotations.itertuples()}
    all_sigmas = sorted(set(map(float, sigmas)) | set(map(float, l2_sigmas)))
    out = []
    todo = sorted(set(pairs["class"].unique()) & set(classes) if classes is not None else pairs["class"].unique())
    for i in tqdm(todo, desc=f"noise {model_name}", unit="class", disable=not progress):
        cp = pairs[pairs["class"] == i]
        name = cp["class_name"].iloc[0]
        members = {}
        for p, j in zip(cp.index, cp["feature"]):
            m = subsets.members(p)
            members[int(j)] = (m["row"], m["nam"])
        union = np.unique(np.concatenate([r for r, _ in members.values()]))
        if not len(union):
            continue
        pos = {r: u for u, r in enumerate(union.tolist())}
        images = imageset.images(union)
        labels = np.full(len(union), i, dtype=np.int64)
        z = image_noise(seed, union, (3, size, size))
        ctx = _ClassImages(model, images, labels, z, pos, device=device, batch_size=batch_size)
        head = {"model": model_name, "class_index": int(i), "class_name": name}
        for j, (rows, nams) in members.items():
            row = {**head, "feature": j, "label": label_of.get((i, j), "unannotated"), "measure": "feature"}
            out += ctx.rows(rows, nams, sigmas=all_sigmas, row=row)
        for measure, noisy_label in (("core_acc", "spurious"), ("spurious_acc", "core")):
            rows, region = masks.get(noisy_label, int(i))
            if len(rows):
                row = {**head, "feature": -1, "label": noisy_label, "measure": measure}
                out += ctx.rows(rows, region, sigmas=sigmas, row=row)
    return pd.DataFrame(out)


def run_on_subsets(measure, model_dir, imageset_path, subsets_path, annotations_path, masks_path, out,
                   device: str = "auto", settings: dict | None = None) -> dict:  # fmt: skip
    """The stages that measure one model on the D(i, j) images and their soft masks (noise,
    corruptions): load the model, check that subsets, annotations and consolidated masks belong
    together and to the image set, build the table with
    ``measure(model, device, imageset, subsets, annotations, masks)``, and write it (`out`,
    .parquet + .csv) with every input hash and `settings` as provenance."""
    from ..device import pick_device
    from ..models.factory import load_model

    dev = pick_device(device)
    model, meta = load_model(model_dir, dev)
    imageset = ImageSet(imageset_path)
    subsets_sha, annotations_sha = sha256_file(subsets_path), sha256_file(annotations_path)
    annotations = read_table(annotations_path, expect={"subsets_sha256": subsets_sha})
    with SalientSubsets(subsets_path) as subsets, ConsolidatedMasks(masks_path, subsets_sha, annotations_sha) as masks:
        if subsets.attrs["imageset_sha256"] != imageset.sha256:
            raise SpurlabError(f"{subsets_path}: built from another image set than {imageset_path}; rebuild it")
        table = measure(model, dev, imageset=imageset, subsets=subsets, annotations=annotations, masks=masks)
    provenance = {
        "checkpoint_sha256": model_checkpoint_sha256(model_dir),
        "robust": bool(meta.get("robust")),  # trained adversarially, or an imported Madry checkpoint
        "imageset_sha256": imageset.sha256,
        "subsets_sha256": subsets_sha,
        "annotations_sha256": annotations_sha,
        **(settings or {}),
    }
    write_table(table, out, provenance)
    return {"rows": len(table)}


@dataclass(frozen=True)
class NoiseSettings(Settings):
    """Stage `noise` (config `salient.noise`): the noise seed, the sigmas swept, and the extra
    per-feature sigmas of the L2-matched comparison (appendix L)."""

    SECTION = "salient.noise"
    seed: int = 0
    sigmas: tuple = SIGMAS
    l2_match_sigmas: tuple = L2_MATCH_SIGMAS


def run_noise(model_dir, model_name: str, imageset_path, subsets_path, annotations_path, masks_path, out,
              settings: NoiseSettings = NoiseSettings(), device: str = "auto", batch_size: int = 256,
              progress: bool = True, shard: Shard = Shard()) -> dict:  # fmt: skip
    """Stage `noise`: one model's noise table (`out`, .parquet + .csv) with input hashes; only
    `shard`'s classes (merged by `spurlab.shards`)."""
    seed, sigmas, l2_sigmas = settings.seed, settings.sigmas, settings.l2_match_sigmas

    def measure(model, dev, imageset, subsets, annotations, masks):
        classes = shard.classes(len(imageset.class_names))
        return noise_table(model, model_name, imageset=imageset, subsets=subsets, annotations=annotations, masks=masks,
                           seed=seed, device=dev, sigmas=sigmas, l2_sigmas=l2_sigmas,
                           batch_size=batch_size, progress=progress, classes=classes)  # fmt: skip

    return run_on_subsets(measure, model_dir, imageset_path=imageset_path, subsets_path=subsets_path,
                          annotations_path=annotations_path, masks_path=masks_path, out=out, device=device,
                          settings={"seed": int(seed), "sigmas": [float(s) for s in sigmas],
                                    **shard_attrs(shard)})  # fmt: skip
