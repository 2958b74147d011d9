"""Class-wise neural PCA (docs/methods.md#class-wise-neural-pca): the logit identity on a toy model's real logits, sign
invariance, the truncated route against the full-eigh reference, the stage file and its reader."""

import json

import h5py
import numpy as np
import pytest
import torch

from spurlab.data.feature_cache import column_sha256, model_checkpoint_sha256
from spurlab.discover.npca import (
    NPCABases,
    NpcaSettings,
    alphas,
    class_pca,
    fit_npca,
    residual,
    run_npca,
    weighted_features,
)
from spurlab.errors import SpurlabError
from spurlab.models.factory import build_classifier, save_model

C, SIZES = 4, (20, 45, 1, 0)  # D = 32: class 0 takes the Gram route, class 1 the covariance route


def reference_pca(a):
    """The reference route: full covariance, full numpy eigh, decreasing order."""
    x = a - a.mean(0)
    w, v = np.linalg.eigh(x.T @ x / len(a))
    return a.mean(0), v[:, ::-1].T, w[::-1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A seeded cbr_tiny, its directory, and a feature cache of random images (classes interleaved,
    one unlabelled row) with the model's real float32 phi and logits."""
    d = tmp_path_factory.mktemp("npca")
    torch.manual_seed(0)
    model = build_classifier("cbr_tiny", C, 16, {"width": 4}).eval()
    save_model(model, d / "model", {"name": "toy", "class_names": [f"c{k}" for k in range(C)]})
    labels = np.random.default_rng(0).permutation(np.r_[np.repeat(np.arange(C), SIZES), -1])
    with torch.no_grad():
        phi, logits = model.forward_with_features(torch.rand(len(labels), 3, 16, 16))
    phi, logits = phi.numpy(), logits.numpy()
    ids = np.array([f"toy-{i:07d}".encode() for i in range(len(labels))])
    with h5py.File(d / "f.h5", "w") as f:
        f["features"], f["logits"], f["labels"] = phi, logits, labels
        f["preds"], f["index"] = logits.argmax(1), ids
        f.attrs.update(format="spurlab.features", checkpoint_sha256=model_checkpoint_sha256(d / "model"),
                       imageset="toy", imageset_sha256="1" * 64, n_rows=len(labels), num_features=phi.shape[1],
                       num_classes=C, class_names=json.dumps([f"c{k}" for k in range(C)]),
                       labels_sha256=column_sha256(labels), index_sha256=column_sha256(ids))  # fmt: skip
    w, b = (t.detach().double().numpy() for t in model.head())
    return d, phi, logits, labels, w, b


@pytest.mark.parametrize("n_components", [5, 128])
def test_logit_identity_on_real_logits(toy, n_components):
    _, phi, logits, labels, w, b = toy
    fits = {r.k: r for r in fit_npca(phi, labels, w, b, n_components, progress=False, buffer_bytes=2000)}
    assert [k for k, r in fits.items() if r.mu is None] == [2, 3]
    for k in (0, 1):
        r, rows = fits[k], labels == k
        a = weighted_features(phi[rows], w, k)
        # float32 storage, as in the stage file
        mu, V = r.mu.astype(np.float32), r.V.astype(np.float32)
        recon = alphas(a, mu, V).sum(1) + residual(a, mu, V) + mu.astype(np.float64).sum() + b[k]
        np.testing.assert_allclose(recon.astype(np.float32), logits[rows, k], rtol=0, atol=1e-4)
        np.testing.assert_allclose(r.offset, r.mu.sum() + b[k])
        assert len(V) <= min(n_components, 32, rows.sum() - 1)
        np.testing.assert_allclose(r.V @ r.V.T, np.eye(len(V)), atol=1e-9)
        if n_components == 128:  # every direction the class spans is kept: nothing is left over
            assert np.abs(residual(a, r.mu, r.V)).max() < 1e-6 * np.abs(a).sum(1).max()
        else:  # the residual is exactly the discarded components of the full decomposition
            mu_ref, v_ref, _ = reference_pca(a)
            np.testing.assert_allclose(residual(a, r.mu, r.V), alphas(a, mu_ref, v_ref[len(V) :]).sum(1), atol=1e-9)


def test_alpha_is_invariant_to_the_sign_of_v():
    a = np.random.default_rng(1).random((30, 12))
    mu, V, _ = class_pca(a, 6)
    signs = np.array([1, -1, -1, 1, -1, 1.0])[:, None]
    np.testing.assert_allclose(alphas(a, mu, V * signs), alphas(a, mu, V), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(residual(a, mu, V * signs), residual(a, mu, V), atol=1e-12)
    assert (V.sum(1) >= 0).all()


@pytest.mark.parametrize("n", [60, 400])  # n < D: Gram route; n > D: covariance route
def test_truncated_route_agrees_with_full_eigh(n):
    rng = np.random.default_rng(n)
    d, top = 150, 20
    factors = rng.standard_normal((40, d)) * (np.arange(1, 41) ** -1.0)[:, None]
    a = np.maximum(rng.standard_normal((n, 40)) @ factors + 0.05 * rng.standard_normal((n, d)), 0)
    mu, V, ev = class_pca(a, top)
    mu_ref, v_ref, ev_ref = reference_pca(a)
    np.testing.assert_allclose(mu, mu_ref)
    np.testing.assert_allclose(ev, ev_ref[:top], rtol=1e-6)
    assert np.linalg.norm(V @ v_ref[:top].T) ** 2 / top == pytest.approx(1.0, abs=1e-8)
    assert np.abs(np.linalg.det(V @ v_ref[:top].T)) == pytest.approx(1.0, abs=1e-6)


def test_stage_file_round_trip_and_checkpoint_check(toy):
    d, phi, logits, labels, w, b = toy
    summary = run_npca(d / "f.h5", d / "model", d / "npca.h5", NpcaSettings(components=8), progress=False)
    assert summary == {"classes": 2, "skipped": [2, 3]}
    sha = model_checkpoint_sha256(d / "model")
    with NPCABases(d / "npca.h5", sha) as nb:
        assert nb.classes == [0, 1] and nb.skipped == [2, 3]
        assert nb.attrs["n_components"] == 8 and nb.attrs["format"] == "spurlab.npca"
        assert len(nb.attrs["features_sha256"]) == 64
        for k in (0, 1):
            mu, V, ev = nb.get(k)
            ref = class_pca(weighted_features(phi[labels == k], w, k), 8)
            assert mu.dtype == np.float32 and V.shape == (8, 32) and nb.count(k) == SIZES[k]
            for got, want in zip((mu, V, ev), ref):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
            a = weighted_features(phi[labels == k], w, k)
            f_k = alphas(a, mu, V).sum(1) + residual(a, mu, V) + nb.offset(k)
            np.testing.assert_allclose(f_k, logits[labels == k, k], atol=1e-4)
        with pytest.raises(SpurlabError, match="class 2 .fewer than 2 images"):
            nb.get(2)
    with pytest.raises(SpurlabError, match="checkpoint"):
        NPCABases(d / "npca.h5", "0" * 64)
    with pytest.raises(SpurlabError, match="not a spurlab NPCA basis file"):
        NPCABases(d / "f.h5")
    with h5py.File(d / "npca.h5") as f:
        assert json.loads(f.attrs["skipped_classes"]) == [2, 3] and f.attrs["checkpoint_sha256"] == sha


def test_streaming_does_not_depend_on_buffer_or_block_size(toy):
    _, phi, _, labels, w, b = toy
    one = list(fit_npca(phi, labels, w, b, 6, progress=False))
    many = list(fit_npca(phi, labels, w, b, 6, progress=False, buffer_bytes=1, block_rows=7))
    assert [r.k for r in one] == [r.k for r in many] == list(range(C))
    for r, s in zip(one, many):
        assert r.n == s.n and (r.mu is None) == (s.mu is None)
        if r.mu is not None:
            np.testing.assert_array_equal(r.V, s.V)


@pytest.mark.parametrize("n", [300, 900])  # n < D: Gram route; n > D: covariance route
def test_randomized_route_agrees_with_full_eigh_and_keeps_the_identity(n):
    """The pipeline's default solver on a decaying spectrum: the top subspace matches the full
    eigh, V is orthonormal to float64 rounding, and eq. 6 holds exactly through the residual."""
    from spurlab.discover.npca import class_pca_randomized, fit_class

    rng = np.random.default_rng(n)
    d, top = 500, 20
    factors = rng.standard_normal((60, d)) * (np.arange(1, 61) ** -1.0)[:, None]
    phi = np.maximum(rng.standard_normal((n, 60)) @ factors + 0.05 * rng.standard_normal((n, d)), 0)
    w_k = rng.standard_normal(d)
    mu, V, ev = class_pca_randomized(phi.astype(np.float16), w_k, top, oversample=20, power_iterations=2, seed=3)
    a = phi.astype(np.float16).astype(np.float64) * w_k
    mu_ref, v_ref, ev_ref = reference_pca(a)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(V @ V.T, np.eye(top), atol=1e-12)
    assert np.linalg.norm(V @ v_ref[:top].T) ** 2 / top > 0.999  # the bench's goal
    np.testing.assert_allclose(ev, ev_ref[:top], rtol=5e-3)  # Ritz values approach from below
    assert (ev <= ev_ref[:top] * (1 + 1e-6)).all()
    np.testing.assert_allclose(alphas(a, mu, V).sum(1) + residual(a, mu, V), (a - mu).sum(1), rtol=0, atol=1e-9)
    # auto: randomised only where it saves work; same seed, same bytes
    again = fit_class(phi.astype(np.float16), w_k, top, "auto", 20, 2, 3)
    np.testing.assert_array_equal(again[1], V)
    small = fit_class(phi[:, :30], w_k[:30], top, "auto", 20, 2, 3)  # min(n, D) <= top + p: exact
    np.testing.assert_allclose(small[1], class_pca(phi[:, :30] * w_k[:30], top)[1])
    with pytest.raises(ValueError, match="solver"):
        fit_class(phi, w_k, top, "lanczos")


def test_workers_give_the_same_bases(toy):
    _, phi, _, labels, w, b = toy
    one = list(fit_npca(phi, labels, w, b, 6, progress=False, solver="randomized", oversample=4))
    two = list(fit_npca(phi, labels, w, b, 6, progress=False, solver="randomized", oversample=4, workers=2))
    for r, s in zip(one, two):
        if r.mu is not None:
            np.testing.assert_array_equal(r.V, s.V)
