"""NPFV: neural PCA feature visualisation, and Grad-CAM of a component (Neuhaus et al. 2023,
"Spurious Features Everywhere", sec. 4.2; docs/methods.md#npfv).

For class k and its neural PCA component l (`spurlab.discover.npca`), with alpha_l(x) =
<1, v_l> <W[k] * phi(x) - mu_k, v_l> (eq. 5), the NPFV is

    z = g + argmax_{||delta||_2 <= eps, g + delta in [0, 1]} alpha_l(g + delta)        (eq. 7)

from a gray image g = 0.5, found with L2 APGD (Croce & Hein 2020, alg. 1), written here
(`apgd_l2`): normalised-gradient steps with momentum 0.75, initial step 2 eps, step halving and a
restart from the best point at the checkpoints w_j when too few steps improved (rho = 0.75) or
nothing changed, and the best iterate returned. The projection goes onto the L2 ball around g,
then clips to [0, 1] (g lies in the box, so clipping only shortens delta). Defaults (the
paper's): eps = 30 at 224x224, scaled by sqrt(H W) / 224, 200 steps.

Selection: NPFVs of the top-B components by eigenvalue (paper text 128, its code 16 / 32; default
16, `npca.npfv.top_b`), ranked by the model's probability of class k on the NPFV; the first `keep`
(10) are kept. Grad-CAM uses alpha_l as the score (captum `LayerGradCam`, ReLU applied, upsampled,
divided by its maximum like a NAM so the automatic annotator reads it unchanged), on the NPFV and
on the top-5 images of the class by alpha_l.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet, planted_cue_masks
from ..errors import SpurlabError
from ..io import atomic_path, create_h5, sha256_file
from ..io.tables import write_table
from ..shards import Shard, shard_attrs
from ..tensor_ops import l2_norms
from .auto_annotate import background_cues, cue_switched_off
from .importance import read_importance
from .nam import activation_maps, feature_map_size, neural_activation_maps
from .npca import NPCABases, alphas, weighted_features
from .npca_annotate import FORMAT, annotate_pairs, images_u8
from .subsets_file import imageset_region_masks, object_margin_px, pair_region_stats, subset_size

GRAY = 0.5
EPS_224 = 30.0  # paper
STEPS = 200  # paper
MOMENTUM = 0.75  # Croce & Hein
RHO = 0.75  # Croce & Hein


def apgd_checkpoints(steps: int) -> list[int]:
    """Croce & Hein's checkpoint iterations w_j = ceil(p_j N) (p_0 = 0, p_1 = 0.22, ...), j >= 1."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = [math.ceil(round(q * steps, 9)) for q in p[1:]]  # round: 0.57 * 100 is 57.000000000000007
    return sorted({x for x in w if x < steps})


def _project(x: torch.Tensor, center: torch.Tensor, eps: float) -> torch.Tensor:
    d = x - center
    d = d * (eps / l2_norms(d)).clamp(max=1.0)
    return (center + d).clamp(0.0, 1.0)


def apgd_l2(objective, x0: torch.Tensor, eps: float, steps: int = STEPS, momentum: float = MOMENTUM,
            rho: float = RHO) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Maximise `objective` (x (B, ...) -> (B,), one independent problem per row) over the L2 ball
    of radius `eps` around x0, intersected with [0, 1]. Returns (best x, best value (B,), history
    of the best value (steps + 1, B)). Per-row step sizes, as in Croce & Hein."""

    def value_and_grad(x):
        x = x.detach().requires_grad_(True)
        f = objective(x)
        (g,) = torch.autograd.grad(f.sum(), x)
        return f.detach(), g.detach()

    b = x0.shape[0]
    shape = (b,) + (1,) * (x0.dim() - 1)
    eta = torch.full(shape, 2.0 * eps, dtype=x0.dtype, device=x0.device)
    x_prev = x0.clone()
    f0, g = value_and_grad(x0)
    x_best, f_best, f_prev = x0.clone(), f0.clone(), f0.clone()
    history = [f_best.clone()]
    x = _project(x0 + eta * g / l2_norms(g), x0, eps)
    checkpoints = set(apgd_checkpoints(steps))
    last_w, success = 0, torch.zeros(b, device=x0.device)
    eta_at_last, best_at_last = eta.clone(), f_best.clone()
    for k in range(1, steps + 1):
        f, g = value_and_grad(x)
        better = f > f_best
        x_best[better], f_best[better] = x[better], f[better]
        success += (f > f_prev).float()
        history.append(f_best.clone())
        if k == steps:
            break
        z = _project(x + eta * g / l2_norms(g), x0, eps)
        x_new = _project(x + momentum * (z - x) + (1 - momentum) * (x - x_prev), x0, eps)
        x_prev, f_prev = x, f
        if k in checkpoints:
            cond1 = success < rho * (k - last_w)
            cond2 = (eta.view(-1) == eta_at_last.view(-1)) & (f_best == best_at_last)
            halve = cond1 | cond2
            eta_at_last, best_at_last = eta.clone(), f_best.clone()
            eta[halve] /= 2.0
            x_new[halve] = x_best[halve]
            x_prev[halve] = x_best[halve]  # restart without momentum
            success.zero_()
            last_w = k
        x = x_new
    return x_best.detach(), f_best, torch.stack(history)


class ComponentScore(torch.nn.Module):
    """alpha_l(x) per row: row b scores component (k_b, v_b) of its class; (B, 3, H, W) -> (B,).

    The feature map passes through `self.fmap` (an identity) so that Grad-CAM can hook it for any
    architecture."""

    def __init__(self, model, w_rows: torch.Tensor, mu: torch.Tensor, v: torch.Tensor):
        super().__init__()
        self.model = model
        self.fmap = torch.nn.Identity()
        self.register_buffer("w_rows", w_rows)  # (B, D) W[k_b]
        self.register_buffer("mu", mu)  # (B, D)
        self.register_buffer("v", v)  # (B, D)

    def forward(self, x):
        phi = self.model.net.forward_head(self.fmap(self.model.feature_map(x)), pre_logits=True)
        a = phi * self.w_rows[: len(x)]
        return ((a - self.mu[: len(x)]) * self.v[: len(x)]).sum(1) * self.v[: len(x)].sum(1)


def component_score(model, W: np.ndarray, ks, mus, vs, device="cpu") -> ComponentScore:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return ComponentScore(model, t(W[np.asarray(ks)]), t(mus), t(vs)).to(device)


def npfv(model, W: np.ndarray, ks, mus, vs, image_size: int, eps: float, steps: int = STEPS,
         device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """NPFVs of components (k_b, mu_b, v_b) from gray: (images (B, 3, S, S), alpha at the NPFV (B,),
    alpha at gray (B,))."""
    score = component_score(model, W, ks=ks, mus=mus, vs=vs, device=device)
    x0 = torch.full((len(ks), 3, image_size, image_size), GRAY, device=device)
    with torch.no_grad():
        start = score(x0)
    x, best, _ = apgd_l2(score, x0, eps, steps)
    return x, best, start


def gradcam(score: ComponentScore, images: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of alpha_l (captum LayerGradCam on the feature map, ReLU applied), upsampled to the
    image and divided by its per-image maximum (all-zero maps stay zero): (B, H, W) in [0, 1]."""
    from captum.attr import LayerGradCam

    cam = LayerGradCam(score, score.fmap).attribute(images, relu_attributions=True)  # (B, 1, h, w)
    return activation_maps(cam[:, 0].detach(), images.shape[-2:])


def select_components(probs: np.ndarray, keep: int = 10) -> np.ndarray:
    """Positions of the `keep` NPFVs with the highest probability of their class, stable order."""
    return np.argsort(-np.asarray(probs), kind="stable")[:keep]


# ------------------------------------------------------------------------------ stage `npca_components`


def _softmax_prob(model, images: torch.Tensor, k: int) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model.logits(images), 1)[:, k].cpu().numpy()


def _class_masks(imageset, rows: np.ndarray, cues: list[str], margin_px: int = 0) -> dict | None:
    if "object" not in imageset.mask_names or not len(rows):
        return None
    return imageset_region_masks(imageset, rows, cues, margin_px)


def _images(imageset, rows: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """uint8 (n, H, W, 3) and float (n, 3, H, W) of `rows` (any order)."""
    u8 = images_u8(imageset, rows)
    return u8, torch.from_numpy(u8).permute(0, 3, 1, 2).float().div_(255.0)


COMPONENT_KEYS = ("class", "component", "rank", "prob", "npfv", "npfv_cam", "top_rows", "top_cam")


@dataclass
class _ClassPairs:
    """What one class's components and top neurons are computed from (stage npca_components):
    the model and its head, the shown image set with its planted truth, the model's features on
    it, neuron importance and the NPFV settings."""

    model: Any
    W: np.ndarray
    imageset: ImageSet
    planted: dict
    phi: np.ndarray
    labels: np.ndarray
    iv: np.ndarray
    cues: tuple  # background_cues(imageset): flags, owners
    eps: float
    npfv_settings: dict
    top_images: int
    device: Any
    batch_size: int
    margin_px: int = 0  # the annotator's object region grown by this much (salient.annotation.auto_object_margin)

    def switched_off(self, k: int, ids, activations) -> list[str | None]:
        """The planted truth's second kind (auto_annotate.cue_switched_off) for class k's features
        `ids`; `activations()` gives their activations on every image of the set, a column per id
        (only called for a generated set with a background cue)."""
        import pandas as pd

        flags, owners = self.cues
        if not flags:
            return [None] * len(ids)
        a = activations()
        cols = {int(i): a[:, c] for c, i in enumerate(ids)}
        return cue_switched_off(pd.DataFrame({"class": k, "feature": list(cols)}), cols, self.labels, flags, owners)

    def _stats(self, maps: np.ndarray, k: int, top: np.ndarray) -> dict:
        """The maps' statistics inside the object, the planted cues and the rest (what the
        automatic annotator reads)."""
        cues = self.planted.get(self.imageset.class_names[k], [])
        return pair_region_stats(maps, _class_masks(self.imageset, top, cues, self.margin_px))

    def _batched(self, x: torch.Tensor, n: int, maps) -> np.ndarray:
        """maps(batch on the device) over x in batches of batch_size, concatenated (numpy)."""
        bs = self.batch_size
        return np.concatenate([maps(x[s : s + bs].to(self.device)).cpu().numpy() for s in range(0, n, bs)])

    def components(self, k: int, rows: np.ndarray, n_ann: int, basis) -> tuple[list[dict], list[dict]]:
        """NPFVs of class k's top-B components, the `keep` most confident with their top images by
        alpha and Grad-CAMs: (pair rows, component entries with COMPONENT_KEYS)."""
        mu, V, ev = (x.astype(np.float64) for x in basis)
        s, size, dev, W = self.npfv_settings, self.imageset.image_size, self.device, self.W
        b = min(int(s["top_b"]), len(V))
        z, best, start = npfv(self.model, W, ks=[k] * b, mus=[mu] * b, vs=V[:b], image_size=size, eps=self.eps,
                              steps=s["steps"], device=dev)  # fmt: skip
        probs = _softmax_prob(self.model, z, k)
        al = alphas(weighted_features(self.phi[rows], W, k), mu, V[:b])  # (n, b)
        kept = select_components(probs, s["keep"])
        # a component's activation is max(alpha, 0), what SpuFix removes (eq. 8)
        off = self.switched_off(k, kept, lambda: np.maximum(alphas(weighted_features(self.phi, W, k), mu, V[kept]), 0))
        pairs, entries = [], []
        for rank, pos in enumerate(kept, 1):
            top = rows[np.argsort(-al[:, pos], kind="stable")[:n_ann]]
            _, x = _images(self.imageset, top)
            score = component_score(
                self.model, W, ks=[k] * len(top), mus=[mu] * len(top), vs=[V[pos]] * len(top), device=dev
            )
            cams = self._batched(x, len(top), lambda xb, score=score: gradcam(score, xb))
            stats = self._stats(cams, k, top)
            cam_z = gradcam(component_score(self.model, W, ks=[k], mus=[mu], vs=[V[pos]], device=dev),
                            z[pos : pos + 1]).cpu().numpy()[0]  # fmt: skip
            pairs.append(dict(kind="component", **{"class": k}, class_name=self.imageset.class_names[k], feature=int(pos),
                              rank=rank, score=float(ev[pos]), prob=float(probs[pos]), alpha_gray=float(start[pos]),
                              alpha_npfv=float(best[pos]), switched_off=off[rank - 1], **stats))  # fmt: skip
            entries.append(
                self._entry(k, rank=rank, pos=pos, prob=float(probs[pos]), images=(z[pos], cam_z, top, cams))
            )
        return pairs, entries

    def _entry(self, k: int, rank: int, pos: int, prob: float, images: tuple) -> dict:
        """One selected component's datasets: its NPFV and Grad-CAM, top rows and their Grad-CAMs
        (padded to top_images with -1 / zeros)."""
        z_pos, cam_z, top, cams = images
        n_top, size = self.top_images, self.imageset.image_size
        t = np.full(n_top, -1, np.int64)
        t[: min(n_top, len(top))] = top[:n_top]
        tc = np.zeros((n_top, size, size), np.uint8)
        tc[: min(n_top, len(top))] = np.round(cams[:n_top] * 255)
        return {"class": k, "component": int(pos), "rank": rank, "prob": prob,
                "npfv": np.round(z_pos.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8),
                "npfv_cam": np.round(cam_z * 255).astype(np.uint8), "top_rows": t, "top_cam": tc}  # fmt: skip

    def neurons(self, k: int, rows: np.ndarray, n_ann: int, neurons_top: int) -> list[dict]:
        """The class's top neurons by importance on the same images, with their NAMs, for the same
        annotator (docs/methods.md#neural-feature-importance, #neural-activation-maps)."""
        order = np.argsort(-self.iv[k], kind="stable")[:neurons_top]
        off = self.switched_off(k, order, lambda: self.phi[:, order])
        out = []
        for rank, j in enumerate(order, 1):
            top = rows[np.argsort(-self.phi[rows, j], kind="stable")[:n_ann]]
            _, x = _images(self.imageset, top)
            nams = self._batched(
                x, len(top), lambda xb, j=j: neural_activation_maps(self.model, xb, [int(j)] * len(xb))
            )
            stats = self._stats(nams, k, top)
            out.append(dict(kind="neuron", **{"class": k}, class_name=self.imageset.class_names[k], feature=int(j),
                            rank=rank, score=float(self.iv[k, j]), prob=np.nan, alpha_gray=np.nan, alpha_npfv=np.nan,
                            switched_off=off[rank - 1], **stats))  # fmt: skip
        return out


def _write_components(out, comp: dict[str, list], attrs: dict) -> None:
    """The components HDF5 file: one dataset per COMPONENT_KEYS entry (images gzipped), attrs."""

    n = len(comp["class"])
    with atomic_path(out) as tmp, create_h5(tmp) as f:
        for key, v in comp.items():
            arr = np.asarray(v) if n else np.zeros((0,))
            big = arr.ndim >= 3
            f.create_dataset(key, data=arr, compression="gzip" if big else None, track_times=False)
        f.attrs.update(**attrs)


def _load_class_pairs(
    model_dir, imageset_path, features_path, importance_path, settings: dict
) -> tuple[_ClassPairs, str]:
    """The model (frozen, on its device), the image set, features and importance of the stage, and
    the checkpoint hash. `settings`: npfv, top_images, device, batch_size, object_margin (feature-map
    cells)."""
    from ..device import pick_device
    from ..models.factory import load_model
    from ..models.robust import scale_eps

    dev = pick_device(settings["device"])
    model, _ = load_model(model_dir, dev)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sha = model_checkpoint_sha256(model_dir)
    W = model.head()[0].detach().cpu().double().numpy()
    imageset = ImageSet(imageset_path)
    size = imageset.image_size
    planted = planted_cue_masks(imageset)
    imp = read_importance(importance_path, sha)
    eps = scale_eps(settings["npfv"]["eps_224"], size, size)
    with open_features(features_path, model_dir=model_dir, imageset=imageset) as fc:
        phi, labels = fc["features"], fc["labels"]
    ctx = _ClassPairs(model=model, W=W, imageset=imageset, planted=planted, phi=phi, labels=labels, iv=imp["iv"],
                      cues=background_cues(imageset), eps=eps, npfv_settings=settings["npfv"],
                      top_images=settings["top_images"], device=dev, batch_size=settings["batch_size"],
                      margin_px=object_margin_px(size, feature_map_size(model, size, dev), settings["object_margin"]))  # fmt: skip
    return ctx, sha


@dataclass(frozen=True)
class ComponentSettings(Settings):
    """Stage `npca_components` (config `npca`): `npfv` (top_b, keep, eps_224, steps), the top
    images shown per component, the neurons compared; `subset` (salient.subset) sizes the
    annotator's images, `annotation` (salient.annotation) is its automatic rule: human answers and
    published lists are applied by `npca_annotations`, after the task pages exist."""

    SECTION = "npca"
    KEYS = {"subset": "salient.subset", "annotation": "salient.annotation"}
    npfv: dict
    subset: dict
    annotation: dict
    top_images: int = 5  # the paper's
    neurons_top: int = 10

    @classmethod
    def from_config(cls, cfg: dict) -> ComponentSettings:
        s = super().from_config(cfg)
        return replace(s, annotation=dict(s.annotation, human_csv=None, source="auto"))


def run_npca_components(model_dir, bases_path, imageset_path, features_path, importance_path, out, out_table,
                        settings: ComponentSettings, device: str = "cpu", batch_size: int = 64,
                        progress: bool = True, shard: Shard = Shard()) -> dict:  # fmt: skip
    """Stage `npca_components`: NPFVs of each class's top-B components, the `keep` most confident
    (sec. 4.2), their top images by alpha with Grad-CAM maps, and for comparison the top
    `neurons_top` neurons by importance (docs/methods.md#neural-feature-importance) with their NAMs, all annotated by the same
    annotator (docs/methods.md#annotation: automatic from the maps' object-mask statistics, or human answers).

    `settings.npfv`: top_b, keep, eps_224, steps. `settings.subset` (salient.subset): how many top
    images of a class feed the annotator's statistics (`subsets_file.subset_size`), as for the neurons of #4.
    Writes `out` (HDF5: per selected component its NPFV, Grad-CAMs, top rows) and `out_table`
    (one row per component or neuron pair: kind, class, feature, rank, map statistics, label).
    Only `shard`'s classes; `spurlab.shards` merges the shards.
    """
    import pandas as pd
    from tqdm import tqdm

    npfv_settings, subset, annotation = settings.npfv, settings.subset, settings.annotation
    top_images, neurons_top = settings.top_images, settings.neurons_top
    ctx, sha = _load_class_pairs(model_dir, imageset_path, features_path, importance_path,
                                 {"npfv": npfv_settings, "top_images": top_images, "device": device, "batch_size": batch_size,
                                  "object_margin": annotation.get("auto_object_margin", 0.0)})  # fmt: skip
    imageset, labels = ctx.imageset, ctx.labels
    names = imageset.class_names
    rows_out, comp = [], {k: [] for k in COMPONENT_KEYS}
    with NPCABases(bases_path, sha) as bases:
        mine = set(shard.classes(len(names)))
        classes = [k for k in bases.classes if k in mine]
        for k in tqdm(classes, desc="npca components", unit="class", disable=not progress):
            rows = np.flatnonzero(labels == k)
            if not len(rows):
                raise SpurlabError(f"{imageset_path}: no image of class {k} ({names[k]}) to show its components")
            n_ann = subset_size(len(rows), subset["fraction"], subset["min_images"], subset["max_images"])
            pairs, entries = ctx.components(k, rows, n_ann, bases.get(k))
            rows_out += pairs
            for entry in entries:
                for key in COMPONENT_KEYS:
                    comp[key].append(entry[key])
            rows_out += ctx.neurons(k, rows, n_ann, neurons_top)
        bases_sha = sha256_file(bases_path)
    pairs = pd.DataFrame(rows_out)
    pairs = annotate_pairs(pairs, annotation, names, has_masks="object" in imageset.mask_names)
    _write_components(out, comp, dict(
        format=FORMAT, checkpoint_sha256=sha, bases_sha256=bases_sha,
        imageset=imageset.attrs.get("set_name", imageset.path.stem), imageset_sha256=imageset.sha256,
        features_sha256=sha256_file(features_path), importance_sha256=sha256_file(importance_path),
        class_names=json.dumps(names), planted_cues=json.dumps(ctx.planted, sort_keys=True),
        eps=ctx.eps, npfv=json.dumps(npfv_settings, sort_keys=True), top_images=top_images,
        **shard_attrs(shard)))  # fmt: skip
    provenance = {"components_sha256": sha256_file(out), "bases_sha256": bases_sha, "checkpoint_sha256": sha,
                  "imageset_sha256": imageset.sha256, "annotation": annotation, "planted_cues": ctx.planted,
                  **shard_attrs(shard)}  # fmt: skip
    write_table(pairs, out_table, provenance)
    comps = pairs[pairs["kind"] == "component"]
    return {"components": len(comps), "spurious": int((comps["label"] == "spurious").sum()),
            "neurons": int((pairs["kind"] == "neuron").sum())}  # fmt: skip
