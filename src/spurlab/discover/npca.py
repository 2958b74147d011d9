"""Class-wise neural PCA (Neuhaus et al. 2023, "Spurious Features Everywhere", sec. 4, eqs. 1-6).

For class k, over its training images: a(x) = W[k] * phi(x) (elementwise), its class mean mu_k,
the eigenvectors v_l of the covariance of a, and alpha_l(x) = <1, v_l> <a(x) - mu_k, v_l> (eq. 5,
invariant to v_l -> -v_l), so that f_k(x) = sum_l alpha_l(x) + <1, mu_k> + b_k (eq. 6).

Only the leading L components are kept (default 128, the paper's; at most D and N_k - 1). So that
eq. 6 stays exact, the part of the centred logit outside the kept subspace is one residual term,
residual(x) = <1, (I - V^T V)(a(x) - mu_k)>: the summed alphas of the discarded components.

Solvers (ours; the paper runs a full D x D eigendecomposition per class):
- `class_pca` (exact): the top L eigenpairs of the smaller of X X^T (N_k x N_k) and X^T X
  (D x D), X = a - mu_k, by LAPACK's subset eigensolver; exact up to rounding.
- `class_pca_randomized` (`npca.solver: auto`, the default when min(N_k, D) > L + oversample):
  float32 subspace iteration with a Gaussian start seeded by (seed, k) and LU-normalised power
  steps, then float64 Rayleigh-Ritz (Halko, Martinsson & Tropp 2011, alg. 4.4). V is orthonormal
  to float64 rounding, so the residual keeps eq. 6 exact; only which subspace is found is
  approximate.
Directions with lambda_l <= 1e-10 lambda_1 are dropped into the residual (a class can keep fewer
than L). Eigenvalues are stored as variances (C / N_k); each v_l is signed so that <1, v_l> >= 0.

`fit_npca` streams the feature cache: classes are packed into groups whose rows fit
`buffer_bytes`, each group one sequential pass over the cache. Measured costs and subspace
agreement: docs/performance.md#class-wise-neural-pca. Method: docs/methods.md#class-wise-neural-pca.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import Settings
from ..data.feature_cache import open_features
from ..errors import SpurlabError
from ..io import atomic_path, create_h5, open_h5, sha256_file
from ..shards import Shard, shard_attrs

FORMAT = "spurlab.npca"
NULL_RTOL = 1e-10  # eigenvalues below this fraction of the largest are numerically zero


def weighted_features(phi: np.ndarray, W: np.ndarray, k: int) -> np.ndarray:
    """a = psi_k(phi) = W[k] * phi (eq. 1), float64, (n, D)."""
    return np.asarray(phi, dtype=np.float64) * np.asarray(W[k], dtype=np.float64)


def class_pca(a: np.ndarray, n_components: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading principal components of one class's weighted features a (n, D), n >= 2.

    Returns (mu (D,), V (L, D) orthonormal rows by decreasing variance, eigvals (L,) variances),
    float64, L <= min(n_components, D, n - 1) (numerically null directions dropped).
    """
    from scipy.linalg import eigh

    a = np.asarray(a, dtype=np.float64)
    n, d = a.shape
    if n < 2:
        raise ValueError(f"neural PCA needs at least 2 images of the class, got {n}")
    mu = a.mean(0)
    x = a - mu
    gram = n < d
    m = x @ x.T if gram else x.T @ x
    size, top = m.shape[0], min(n_components, d, n - 1)
    if top < 1:
        return mu, np.zeros((0, d)), np.zeros(0)
    w, u = eigh(m, subset_by_index=[size - top, size - 1], driver="evr", overwrite_a=True, check_finite=False)
    w, u = w[::-1], u[:, ::-1]
    keep = w > NULL_RTOL * max(w[0], 0.0)
    w, u = w[keep], u[:, keep]
    v = (x.T @ u / np.sqrt(w)).T if gram else u.T.copy()
    v *= np.where(v.sum(1) < 0, -1.0, 1.0)[:, None]
    return mu, v, w / n


SOLVERS = ("auto", "exact", "randomized")


def _orth(y: np.ndarray) -> np.ndarray:
    """Orthonormal basis of y's columns (economic QR; LAPACK through scipy, ~2x numpy's here)."""
    import scipy.linalg

    return scipy.linalg.qr(y, mode="economic", check_finite=False)[0]


def _lu_normalise(y: np.ndarray) -> np.ndarray:
    """A well-conditioned basis of y's columns for the inner power steps (the permuted L factor; as
    scikit-learn's randomized_range_finder): ~4x cheaper than QR and as good for the next product."""
    import scipy.linalg

    return scipy.linalg.lu(y, permute_l=True, check_finite=False)[0]


def class_pca_randomized(
    phi: np.ndarray,
    w_k: np.ndarray,
    n_components: int = 128,
    oversample: int = 96,
    power_iterations: int = 2,
    seed=0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`class_pca` of a = w_k * phi by randomised subspace iteration (module docstring).

    `phi` (n, D) any float dtype (float16 caches are not copied to float64), `w_k` (D,) the class's
    head row; `seed` (int or sequence) seeds the Gaussian start. Returns (mu, V, eigvals) float64
    like `class_pca`; V has orthonormal rows to float64 rounding.
    """
    n, d = phi.shape
    if n < 2:
        raise ValueError(f"neural PCA needs at least 2 images of the class, got {n}")
    w_k = np.asarray(w_k, dtype=np.float64)
    mu = np.mean(phi, axis=0, dtype=np.float64) * w_k  # the mean is linear: mean(phi) * W[k]
    top = min(n_components, d, n - 1)
    x = np.asarray(phi, dtype=np.float32) * w_k.astype(np.float32)
    x -= mu.astype(np.float32)
    gram = n < d
    m = x @ x.T if gram else x.T @ x  # numpy runs a @ a.T as one syrk
    size = m.shape[0]
    k = min(size, top + oversample)
    q = np.random.default_rng(seed).standard_normal((size, k), dtype=np.float32)
    for i in range(power_iterations + 1):
        q = _orth(m @ q) if i == power_iterations else _lu_normalise(m @ q)
    del m
    if gram:
        z = (x.T @ q).astype(np.float64)  # (D, k): X^T Q
        w, u = np.linalg.eigh(z.T @ z)
        w, u = w[::-1][:top], u[:, ::-1][:, :top]
        keep = w > NULL_RTOL * max(w[0], 0.0)
        w, u = w[keep], u[:, keep]
        v = (z @ u / np.sqrt(w)).T
    else:
        q = _orth(q.astype(np.float64))  # exactly orthonormal columns, so V is too
        z = x.astype(np.float64) @ q  # (n, k): X Q
        w, u = np.linalg.eigh(z.T @ z)
        w, u = w[::-1][:top], u[:, ::-1][:, :top]
        keep = w > NULL_RTOL * max(w[0], 0.0)
        w, u = w[keep], u[:, keep]
        v = (q @ u).T
    v *= np.where(v.sum(1) < 0, -1.0, 1.0)[:, None]
    return mu, np.ascontiguousarray(v), w / n


def fit_class(
    phi: np.ndarray,
    w_k: np.ndarray,
    n_components: int = 128,
    solver: str = "auto",
    oversample: int = 96,
    power_iterations: int = 2,
    seed=0,
):
    """(mu, V, eigvals) of one class by `solver`: exact (`class_pca`), randomized, or auto
    (randomised only when min(n, D) > n_components + oversample, i.e. when it saves work)."""
    if solver not in SOLVERS:
        raise ValueError(f"neural PCA solver must be one of {SOLVERS}, not {solver!r}")
    n, d = phi.shape
    if solver == "randomized" or (solver == "auto" and min(n, d) > n_components + oversample):
        return class_pca_randomized(
            phi, w_k, n_components=n_components, oversample=oversample, power_iterations=power_iterations, seed=seed
        )
    return class_pca(np.asarray(phi, dtype=np.float64) * np.asarray(w_k, dtype=np.float64), n_components)


def alphas(a: np.ndarray, mu: np.ndarray, V: np.ndarray) -> np.ndarray:
    """alpha_l(x) = <1, v_l> <a(x) - mu, v_l> (eq. 5) for the rows of a: (n, L) float64."""
    V = np.asarray(V, dtype=np.float64)
    return ((np.asarray(a, dtype=np.float64) - mu) @ V.T) * V.sum(1)


def residual(a: np.ndarray, mu: np.ndarray, V: np.ndarray) -> np.ndarray:
    """<1, a - mu> - sum_l alpha_l: the centred logit outside span(V), (n,) float64."""
    return (np.asarray(a, dtype=np.float64) - mu).sum(1) - alphas(a, mu, V).sum(1)


class ClassNPCA(NamedTuple):
    """One class's fit; mu, V, eigvals and offset are None when n < 2 (the class is skipped)."""

    k: int
    n: int
    mu: np.ndarray | None
    V: np.ndarray | None
    eigvals: np.ndarray | None
    offset: float | None  # <1, mu_k> + b_k: the constant of eq. 6


def _groups(classes: np.ndarray, counts: np.ndarray, row_bytes: int, budget: int) -> list[list[int]]:
    groups, cur, size = [], [], 0
    for k in classes:
        need = int(counts[k]) * row_bytes if counts[k] >= 2 else 0
        if cur and size + need > budget:
            groups.append(cur)
            cur, size = [], 0
        cur.append(int(k))
        size += need
    return groups + [cur] if cur else groups


def fit_npca(
    features,
    labels: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    n_components: int = 128,
    classes=None,
    progress: bool = True,
    buffer_bytes: int = 1 << 30,
    block_rows: int = 16384,
    solver: str = "auto",
    oversample: int = 96,
    power_iterations: int = 2,
    seed: int = 0,
    workers: int = 1,
) -> Iterator[ClassNPCA]:
    """Neural PCA of every class in `classes` (default: all rows of W), yielded in ascending order.

    `features`: (N, D) rows in any order, anything sliceable by row ranges (an h5py dataset is read
    in `block_rows` blocks, never whole); `labels` (N,): rows with a label outside [0, C) are
    ignored. Streaming and memory: see the module docstring. `solver`, `oversample`,
    `power_iterations`: see `fit_class`; class k's random start is seeded by (seed, k), so results
    do not depend on grouping. `workers` > 1 fits that many classes at once in threads (numpy
    releases the GIL), each with one BLAS thread.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    labels = np.asarray(labels, dtype=np.int64)
    n_rows, d = features.shape
    num_classes = W.shape[0]
    if W.shape[1] != d or len(labels) != n_rows:
        raise ValueError(f"features {features.shape}, labels {labels.shape} and W {W.shape} do not match")
    classes = np.arange(num_classes) if classes is None else np.unique(np.asarray(classes, dtype=np.int64))
    if len(classes) and (classes[0] < 0 or classes[-1] >= num_classes):
        raise ValueError(f"classes must lie in [0, {num_classes}), got {classes[0]}..{classes[-1]}")
    lab = np.where((labels >= 0) & (labels < num_classes), labels, num_classes)  # C: no class
    counts = np.bincount(lab, minlength=num_classes + 1)
    order = np.argsort(lab, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(n_rows, dtype=np.int64)  # rank of each row within its class, in file order
    pos[order] = np.arange(n_rows) - starts[lab[order]]
    row_bytes = d * np.dtype(features.dtype).itemsize
    with tqdm(total=len(classes), desc="npca", unit="class", disable=not progress, mininterval=5.0) as bar:
        for group in _groups(classes, counts, row_bytes, buffer_bytes):
            fit = [k for k in group if counts[k] >= 2]
            base = np.full(num_classes + 1, -1, dtype=np.int64)
            base[fit] = np.concatenate([[0], np.cumsum(counts[fit])[:-1]]) if fit else []
            buf = np.empty((int(counts[fit].sum()), d), dtype=features.dtype)
            if fit:  # one sequential pass scatters this group's rows, class by class
                dest = np.where(base[lab] >= 0, base[lab] + pos, -1)
                for s in range(0, n_rows, block_rows):
                    dst = dest[s : s + block_rows]
                    sel = dst >= 0
                    if sel.any():
                        buf[dst[sel]] = features[s : s + block_rows][sel]

            def one(k: int, buf=buf, base=base) -> ClassNPCA:  # this group's rows (bound now)
                n = int(counts[k])
                if n < 2:
                    return ClassNPCA(k, n, mu=None, V=None, eigvals=None, offset=None)
                mu, V, ev = fit_class(buf[base[k] : base[k] + n], W[k], n_components=n_components, solver=solver,
                                      oversample=oversample,
                                      power_iterations=power_iterations, seed=(seed, k))  # fmt: skip
                return ClassNPCA(k, n, mu=mu, V=V, eigvals=ev, offset=float(mu.sum() + b[k]))

            if workers > 1:
                from threadpoolctl import threadpool_limits

                with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
                    for r in pool.map(one, group):
                        yield r
                        bar.update(1)
            else:
                for k in group:
                    yield one(k)
                    bar.update(1)
            del buf


@dataclass(frozen=True)
class NpcaSettings(Settings):
    """Stage `npca_bases` (config `npca`): `components` kept per class, the solver and, for the
    randomised one, its oversampling, power iterations and seed."""

    SECTION = "npca"
    KEYS = {"seed": None}
    components: int = 128  # the paper's
    solver: str = "auto"
    oversample: int = 96
    power_iterations: int = 2
    seed: int = 0


def run_npca(features_path, model_dir, out, settings: NpcaSettings = NpcaSettings(), progress: bool = True,
             workers: int = 1, shard: Shard = Shard()) -> dict:  # fmt: skip
    """Stage `npca`: per-class bases of the model in `model_dir` from its cached (train) features
    (only `shard`'s classes, merged by `spurlab.shards`).

    Writes `out` (HDF5): groups class_<k>/{mu (D,), V (L, D), eigvals (L,)} float32, n (int),
    offset (<1, mu_k> + b_k, float64); attrs format, checkpoint_sha256, features_sha256,
    imageset(_sha256), n_components, solver (JSON: solver, oversample, power_iterations, seed),
    num_classes, num_features, skipped_classes (JSON list: fewer than 2 images), spurlab_version,
    code_sha256 (`spurlab.io.create_h5`).
    """
    from ..models.factory import load_model

    s = settings
    n_components, solver, oversample, power_iterations, seed = (s.components, s.solver, s.oversample, s.power_iterations,
                                                                s.seed)  # fmt: skip
    model, _ = load_model(model_dir)
    W, b = (t.detach().cpu().double().numpy() for t in model.head())
    skipped = []
    with open_features(features_path, model_dir=model_dir) as fc:
        feats = fc.rows("features")  # read in blocks by fit_npca, each refused unless finite
        if feats.shape[1] != W.shape[1]:
            raise SpurlabError(f"{features_path}: {feats.shape[1]} features, the model's head has {W.shape[1]}")
        attrs = {k: fc.attrs[k] for k in ("checkpoint_sha256", "imageset", "imageset_sha256")}
        attrs["features_sha256"] = sha256_file(features_path)
        with atomic_path(out) as tmp, create_h5(tmp) as f:
            fits = fit_npca(feats, fc["labels"], W=W, b=b, n_components=n_components, classes=shard.classes(W.shape[0]),
                            progress=progress, solver=solver,
                            oversample=oversample, power_iterations=power_iterations, seed=seed, workers=workers)  # fmt: skip
            for r in fits:
                if r.mu is None:
                    skipped.append(r.k)
                    continue
                g = f.create_group(f"class_{r.k}")
                for name, arr in (("mu", r.mu), ("V", r.V), ("eigvals", r.eigvals)):
                    g.create_dataset(name, data=arr.astype(np.float32), track_times=False)
                g.create_dataset("n", data=r.n)
                g.create_dataset("offset", data=r.offset)
            f.attrs.update(
                format=FORMAT,
                n_components=n_components,
                solver=json.dumps(
                    {"solver": solver, "oversample": oversample, "power_iterations": power_iterations, "seed": seed}
                ),  # fmt: skip
                num_classes=W.shape[0],
                num_features=W.shape[1],
                skipped_classes=json.dumps(skipped),
                **attrs,
                **shard_attrs(shard),
            )
    return {"classes": len(shard.classes(W.shape[0])) - len(skipped), "skipped": skipped}


class NPCABases:
    """Read access to a `run_npca` file; with `expect_checkpoint_sha256`, refuses another model's."""

    def __init__(self, path, expect_checkpoint_sha256: str | None = None):
        self.path = Path(path)
        self.f = open_h5(self.path, FORMAT, "NPCA basis file")
        self.attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.f.attrs.items()}
        got = self.attrs["checkpoint_sha256"]
        if expect_checkpoint_sha256 and got != expect_checkpoint_sha256:
            self.close()
            raise SpurlabError(
                f"{self.path}: computed for checkpoint {got[:12]}..., not {expect_checkpoint_sha256[:12]}...; recompute it"
            )
        self.classes = sorted(int(name.removeprefix("class_")) for name in self.f if name.startswith("class_"))
        self.skipped = json.loads(self.attrs["skipped_classes"])

    def _group(self, k: int):
        if f"class_{k}" not in self.f:
            why = " (fewer than 2 images)" if k in self.skipped else ""
            raise SpurlabError(f"{self.path}: no neural PCA basis for class {k}{why}")
        return self.f[f"class_{k}"]

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu (D,), V (L, D), eigvals (L,)) of class k, float32."""
        g = self._group(k)
        return g["mu"][:], g["V"][:], g["eigvals"][:]

    def count(self, k: int) -> int:
        return int(self._group(k)["n"][()])

    def offset(self, k: int) -> float:
        """<1, mu_k> + b_k, the constant of eq. 6."""
        return float(self._group(k)["offset"][()])

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
