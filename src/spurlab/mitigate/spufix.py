r"""SpuFix: remove the positive logit contribution of spurious neural-PCA components (SPEC 6.2).

Neuhaus et al., "Spurious Features Everywhere", sec. 5, eqs. 8-11. Notation (SPEC 4.5): phi(x) the
penultimate features (N, D), head W (C, D), b (C,); the weighted features of class k are
a_k(x) = W[k] * phi(x) (elementwise), so f_k(x) = <1, a_k(x)> + b_k. Class k's neural PCA basis is
the mean mu_k of a_k over its training images and the covariance eigenvectors v_l (rows of V, unit
norm); alpha_l(x) = <1, v_l> <a_k(x) - mu_k, v_l>. S_k is the set of spurious components of class k.

Robust model (eq. 8):

    f_k'(x) = f_k(x) - sum_{l in S_k} max(alpha_l(x), 0)

Transfer to another model g with weighted features a_g = W_g[k] * phi_g (eqs. 9-11). Over class k's
training images x_1..x_n (the same images, in the same order, as the robust model's alphas):

    mu_g = (1/n) sum_i a_g(x_i)
    u_l  = sum_i alpha_l(x_i) (a_g(x_i) - mu_g)      d_l = u_l / ||u_l||     (eq. 10)

d_l maximises the covariance of <d, a_g - mu_g> with alpha_l (eq. 9). The d_l are not orthogonal, so
at test time the centred features are expressed in the basis D = [d_l] (columns) by least squares,

    lambda(x) = solve(D^T D, D^T (a_g(x) - mu_g))     beta_l(x) = lambda_l(x) <1, d_l>
    f_k'(x)   = f_k(x) - sum_{l in S_k} max(beta_l(x), 0)                     (eq. 11)

Why the transfer to g = f itself reproduces eq. 8 exactly (paper, app. C.2). Write c_i = a(x_i) - mu,
o_l = <1, v_l>, Sigma = (1/n) sum_i c_i c_i^T. Then

    u_l = sum_i o_l <c_i, v_l> c_i = o_l n Sigma v_l = o_l n sigma_l v_l

*provided v_l is an eigenvector of Sigma* (eigenvalue sigma_l). So d_l = sign(o_l) v_l: the d_l are
orthonormal, D^T D = I, lambda_l = sign(o_l) <v_l, a - mu>, and beta_l = lambda_l sign(o_l) o_l =
o_l <v_l, a - mu> = alpha_l. Conditions: the rows of V are eigenvectors of the covariance of a over
the very training images used for the transfer, with mu their mean (normalisation 1/n or 1/(n-1)
does not matter), and sigma_l > 0, o_l != 0. If o_l = 0 or sigma_l = 0, alpha_l vanishes on every
training image, u_l = 0 and `transfer_directions` raises. For an arbitrary orthonormal V the
identity fails, because Sigma v_l is then not parallel to v_l. With a truncated eigensolver the
identity holds to the solver's accuracy.

Defaults and choices (ours, not the paper's): all arithmetic in float64, results in the dtype of the
logits passed in; a class is left untouched, bit for bit, when it has no entry or no spurious
components; D^T D with condition number above 1e12 (two d_l nearly parallel) is an error, as is a
zero u_l.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spurlab.discover.npca import alphas, weighted_features
from spurlab.errors import SpurlabError

MAX_GRAM_COND = 1e12


def _subtract_positive(logits, phi, W, entries: Mapping, contributions) -> np.ndarray:
    """f_k' = f_k - sum_l max(c_l, 0) for every class k of `entries` {k: (mu, M)} with rows in M,
    c = contributions(k, a_k - mu, M) (N, S_k); other classes untouched, in the logits' dtype."""
    logits, phi, W = np.asarray(logits), np.asarray(phi), np.asarray(W)
    _check_shapes(logits, phi, W)
    out = logits.copy()
    for k, (mu, M) in entries.items():
        k = _class_index(k, W.shape[0])
        M = np.asarray(M, dtype=np.float64).reshape(-1, W.shape[1])
        if M.shape[0]:
            out[:, k] -= np.maximum(contributions(k, weighted_features(phi, W, k) - mu, M), 0.0).sum(axis=1)
    return out


def _check_shapes(logits: np.ndarray, phi: np.ndarray, W: np.ndarray) -> None:
    if logits.ndim != 2 or phi.ndim != 2 or W.ndim != 2:
        raise SpurlabError(
            f"SpuFix: logits, phi and W must be 2-d, got {logits.shape}, {phi.shape}, {W.shape}"
        )
    if logits.shape[0] != phi.shape[0] or logits.shape[1] != W.shape[0] or phi.shape[1] != W.shape[1]:
        raise SpurlabError(
            f"SpuFix: shapes do not match: logits {logits.shape}, phi {phi.shape}, W {W.shape}"
        )


def _class_index(k, n_classes: int) -> int:
    if not 0 <= int(k) < n_classes:
        raise SpurlabError(f"SpuFix: class {k} outside the head's {n_classes} classes")
    return int(k)


def spufix_logits(
    logits: np.ndarray,
    phi: np.ndarray,
    W: np.ndarray,
    bases: Mapping[int, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Eq. 8 on the model whose neural PCA gave `bases`: {k: (mu_k (D,), V_spurious (S_k, D))} -> (N, C)."""
    return _subtract_positive(logits, phi, W, bases, lambda k, centred, V: alphas(centred, 0.0, V))


def _checked_gram(Dmat: np.ndarray, k: int) -> np.ndarray:
    gram = Dmat @ Dmat.T
    cond = np.linalg.cond(gram)
    if not np.isfinite(cond) or cond > MAX_GRAM_COND:
        raise SpurlabError(
            f"SpuFix transfer: class {k}: the {Dmat.shape[0]} transferred directions are (nearly) linearly "
            f"dependent (cond(D^T D) = {cond:.3g} > {MAX_GRAM_COND:.0e}); drop or merge components"
        )
    return gram


def transfer_directions(
    phi_g_train: np.ndarray,
    labels_train: np.ndarray,
    W_g: np.ndarray,
    alphas_robust_train: Mapping[int, np.ndarray],
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Eq. 10 for model g: {k: (mu_g (D,), Dmat (S_k, D) with unit rows d_l)}.

    `alphas_robust_train[k]` is (n_k, S_k): the robust model's alphas of class k's spurious
    components on the training images with label k, in the order they appear in `labels_train`
    (the rows of `phi_g_train` must be the same images). `phi_g_train` may be any array-like that
    supports integer-array row indexing (e.g. an h5py dataset); only class k's rows are read.
    """
    labels = np.asarray(labels_train).reshape(-1)
    W_g = np.asarray(W_g, dtype=np.float64)
    if len(labels) != phi_g_train.shape[0] or phi_g_train.shape[1] != W_g.shape[1]:
        raise SpurlabError(
            f"SpuFix transfer: phi {phi_g_train.shape}, labels ({len(labels)},) and W_g {W_g.shape} do not match"
        )
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k, A in alphas_robust_train.items():
        k = _class_index(k, W_g.shape[0])
        idx = np.flatnonzero(labels == k)
        A = np.asarray(A, dtype=np.float64)
        A = A[:, None] if A.ndim == 1 else A
        if A.ndim != 2 or A.shape[0] != len(idx):
            raise SpurlabError(
                f"SpuFix transfer: class {k}: alphas of shape {A.shape}, expected ({len(idx)}, S_k) "
                f"(one row per training image with that label)"
            )
        if len(idx) == 0:
            raise SpurlabError(f"SpuFix transfer: class {k} has no training images")
        a = weighted_features(phi_g_train[idx], W_g, k)
        mu = a.mean(axis=0)
        U = A.T @ (a - mu)
        if U.shape[0] == 0:
            out[k] = (mu, U)
            continue
        norms = np.linalg.norm(U, axis=1)
        tol = 1e-12 * np.linalg.norm(A) * np.linalg.norm(a - mu)  # Cauchy-Schwarz bound on ||u_l||
        zero = np.flatnonzero(norms <= tol)
        if zero.size:
            raise SpurlabError(
                f"SpuFix transfer: class {k}: spurious component #{int(zero[0])} has no covariance with "
                f"model g's features (u_l = 0; alpha constant on the training images?)"
            )
        Dmat = U / norms[:, None]
        _checked_gram(Dmat, k)
        out[k] = (mu, Dmat)
    return out


def spufix_transfer_logits(
    logits_g: np.ndarray,
    phi_g: np.ndarray,
    W_g: np.ndarray,
    directions: Mapping[int, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Eq. 11 on model g with `directions` from `transfer_directions` -> (N, C)."""

    def betas(k, centred, Dmat):
        try:
            lam = np.linalg.solve(_checked_gram(Dmat, k), Dmat @ centred.T).T  # (N, S_k)
        except np.linalg.LinAlgError as exc:
            raise SpurlabError(f"SpuFix transfer: class {k}: D^T D is singular ({exc})") from None
        return lam * Dmat.sum(axis=1)

    return _subtract_positive(logits_g, phi_g, W_g, directions, betas)
