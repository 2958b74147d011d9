"""SpuFix on the robust model and its transfer to another model (docs/methods.md#spufix; Neuhaus et al. eqs. 8-11)."""

import numpy as np
import pytest

from spurlab.discover.npca import alphas, weighted_features
from spurlab.errors import SpurlabError
from spurlab.measure.spurious_score import mean_auc_ci, mean_scores, spurious_scores
from spurlab.mitigate.spufix import (
    _SpuFixRun,
    spufix_logits,
    spufix_reach,
    spufix_transfer_logits,
    transfer_directions,
    transfer_fidelity,
)

C, D, N_PER = 5, 20, 60
SPURIOUS = {0: [0, 2], 2: [1], 3: [0, 3, 5], 4: []}  # class 1 has no entry, class 4 an empty list


def _eigbasis(a):
    """Class mean and covariance eigenvectors (rows), largest eigenvalue first."""
    mu = a.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(a - mu, rowvar=False))
    return mu, evecs[:, ::-1].T


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(C), N_PER))  # classes interleaved
    centres = rng.normal(size=(C, D))
    mixing = rng.normal(size=(D, D)) * np.linspace(1.5, 0.1, D)  # anisotropic: distinct eigenvalues
    phi = centres[labels] + rng.normal(size=(len(labels), D)) @ mixing.T
    W = rng.normal(size=(C, D))
    b = rng.normal(size=C)
    phi_test = centres[rng.integers(0, C, 200)] + rng.normal(size=(200, D)) @ mixing.T
    return phi, labels, W, b, phi_test


def _bases(phi, labels, W, spurious=SPURIOUS):
    bases = {}
    for k, comps in spurious.items():
        mu, V = _eigbasis(phi[labels == k] * W[k])
        bases[k] = (mu, V[comps])
    return bases


def _train_alphas(phi, labels, W, bases):
    return {k: alphas(weighted_features(phi[labels == k], W, k), mu, V) for k, (mu, V) in bases.items()}


def test_transfer_to_the_robust_model_itself_is_direct_spufix(model):
    phi, labels, W, b, phi_test = model
    logits = phi_test @ W.T + b
    bases = _bases(phi, labels, W)
    direct = spufix_logits(logits, phi_test, W, bases)
    dirs = transfer_directions(phi, labels, W, _train_alphas(phi, labels, W, bases))
    transferred = spufix_transfer_logits(logits, phi_test, W, dirs)
    assert np.abs(direct - logits).max() > 0.1  # the fix actually does something here
    assert np.abs(transferred - direct).max() < 1e-5
    # alpha, and so SpuFix, does not depend on the sign of v_l
    flipped = {k: (mu, -V) for k, (mu, V) in bases.items()}
    assert np.abs(spufix_logits(logits, phi_test, W, flipped) - direct).max() < 1e-12


def test_invariant_needs_eigenvectors(model):
    """The stated condition is real: random orthonormal 'components' break the identity."""
    phi, labels, W, b, phi_test = model
    logits = phi_test @ W.T + b
    rng = np.random.default_rng(1)
    bases = {}
    for k, comps in SPURIOUS.items():
        q, _ = np.linalg.qr(rng.normal(size=(D, D)))
        bases[k] = (phi[labels == k].mean(axis=0) * W[k], q.T[comps])
    direct = spufix_logits(logits, phi_test, W, bases)
    dirs = transfer_directions(phi, labels, W, _train_alphas(phi, labels, W, bases))
    assert np.abs(spufix_transfer_logits(logits, phi_test, W, dirs) - direct).max() > 1e-3


def test_classes_without_spurious_components_unchanged_and_logits_only_lowered(model):
    phi, labels, W, b, phi_test = model
    logits = (phi_test @ W.T + b).astype(np.float32)
    bases = _bases(phi, labels, W)
    dirs = transfer_directions(phi, labels, W, _train_alphas(phi, labels, W, bases))
    # a second model g: other features and head, same images
    rng = np.random.default_rng(2)
    P = rng.normal(size=(D, 12))
    phi_g, phi_g_test, W_g = phi @ P, phi_test @ P, rng.normal(size=(C, 12))
    logits_g = (phi_g_test @ W_g.T).astype(np.float32)
    dirs_g = transfer_directions(phi_g, labels, W_g, _train_alphas(phi, labels, W, bases))
    for before, after in [
        (logits, spufix_logits(logits, phi_test, W, bases)),
        (logits, spufix_transfer_logits(logits, phi_test, W, dirs)),
        (logits_g, spufix_transfer_logits(logits_g, phi_g_test, W_g, dirs_g)),
    ]:
        assert after.dtype == before.dtype and after is not before
        assert np.array_equal(after[:, [1, 4]], before[:, [1, 4]])  # bitwise
        assert np.all(after <= before)
        assert np.any(after[:, [0, 2, 3]] < before[:, [0, 2, 3]])


def _core_and_cue(rng, core, cue, m, d=8):
    """m feature rows (d dims): a core on dims 0-2 and a cue on dims 3-4, each scaled by `core` /
    `cue` (scalars or (m, 1)) with 10% jitter, over noise of sd 0.05."""
    x = 0.05 * rng.normal(size=(m, d))
    x[:, :3] += core * (1 + 0.1 * rng.normal(size=(m, 1)))
    x[:, 3:5] += cue * (1 + 0.1 * rng.normal(size=(m, 1)))
    return x


def test_cue_only_inputs_lose_their_spurious_logit():
    """Class 0 = core (dims 0-2) + a cue (dims 3-4) on 30% of its training images."""
    rng = np.random.default_rng(3)
    d, n = 8, 400

    def feats(core, cue, m):
        return _core_and_cue(rng, core, cue, m, d)

    cue_train = (rng.random(n) < 0.3)[:, None].astype(float)
    phi0 = feats(1.0, cue_train, n)
    W = np.zeros((2, d))
    W[0, :5] = 1.0
    W[1, 5:] = 1.0
    mu, V = _eigbasis(phi0 * W[0])
    cue_dir = np.zeros(d)
    cue_dir[3:5] = np.sqrt(0.5)
    spur = int(np.argmax(np.abs(V @ cue_dir)))
    assert abs(V[spur] @ cue_dir) > 0.95  # the cue is one component
    bases = {0: (mu, V[[spur]])}

    cue_only, no_cue = feats(0.0, 1.0, 100), feats(1.0, 0.0, 100)
    for x in (cue_only, no_cue):
        logits = x @ W.T
        fixed = spufix_logits(logits, x, W, bases)
        drop = logits[:, 0] - fixed[:, 0]
        if x is cue_only:
            assert drop.mean() > 1.0  # the cue's excess over the class mean (~2 * 0.7) is removed
        else:
            assert np.abs(drop).max() < 0.05  # cue absent: alpha < 0, nothing subtracted
        assert np.array_equal(fixed[:, 1], logits[:, 1])


def test_reach_shows_a_transfer_that_fits_the_training_images_but_misses_the_cue():
    """Class 0 = core (dims 0-2) + a cue (dims 3-4) on 70% of its training images. The robust model
    sees the cue on its own; model g has a feature that fires only for cue *and* core together
    (a conjunction, as the ERM models' water-on-disk features). On the training images, where the
    core is always there, g's feature tracks the cue, so the transfer fits them almost perfectly;
    but a cue-only image lacks the core, falls below g's class mean along the fitted direction and
    is never corrected, while the class's own test images with the cue are."""
    rng = np.random.default_rng(4)
    d, n = 8, 400

    def robust_feats(core, cue, m):
        return _core_and_cue(rng, core, cue, m, d)

    def g_feats(x):  # g: the core, and the cue only where the core is
        core = x[:, :3].mean(1, keepdims=True)
        return np.hstack([x[:, :3], x[:, 3:5] * np.clip(core, 0, None), x[:, 5:]])

    cue = (rng.random(n) < 0.7)[:, None].astype(float)
    phi = robust_feats(1.0, cue, n)
    labels = np.zeros(n, dtype=int)
    W = np.zeros((2, d))
    W[0, :5], W[1, 5:] = 1.0, 1.0
    mu, V = _eigbasis(phi * W[0])
    cue_dir = np.r_[0, 0, 0, np.sqrt(0.5), np.sqrt(0.5), 0, 0, 0]
    bases = {0: (mu, V[[int(np.argmax(np.abs(V @ cue_dir)))]])}
    r_alphas = {0: alphas(weighted_features(phi, W, 0), mu, bases[0][1])}

    own = transfer_directions(phi, labels, W, r_alphas)
    assert abs(transfer_fidelity(phi, labels, W, own, r_alphas)[0] - 1) < 1e-9  # the invariant
    dirs = transfer_directions(g_feats(phi), labels, W, r_alphas)
    assert transfer_fidelity(g_feats(phi), labels, W, dirs, r_alphas)[0] > 0.9

    cue_only, with_cue = robust_feats(0.0, 1.0, 100), robust_feats(1.0, 1.0, 100)
    reach = {}
    for name, x in (("cue_only", cue_only), ("with_cue", with_cue)):
        gx = g_feats(x)
        reach[name] = (spufix_reach(x @ W.T, spufix_logits(x @ W.T, x, W, bases), 0),
                       spufix_reach(gx @ W.T, spufix_transfer_logits(gx @ W.T, gx, W, dirs), 0))  # fmt: skip
    (robust_cue_only, g_cue_only), (robust_with_cue, g_with_cue) = reach["cue_only"], reach["with_cue"]
    assert robust_cue_only["corrected"] == 1.0 and robust_cue_only["correction"] > 0.3
    assert g_cue_only == {"corrected": 0.0, "correction": 0.0}
    assert robust_with_cue["corrected"] > 0.9 and g_with_cue["corrected"] > 0.9 and g_with_cue["correction"] > 0
    assert np.isnan(spufix_reach(np.zeros((0, 2)), np.zeros((0, 2)), 0)["corrected"])


def test_degenerate_directions_are_errors(model):
    phi, labels, W, b, phi_test = model
    mu, V = _eigbasis(phi[labels == 0] * W[0])
    alpha = alphas(weighted_features(phi[labels == 0], W, 0), mu, V[[0]])
    with pytest.raises(SpurlabError, match="class 0: the 2 transferred directions"):
        transfer_directions(phi, labels, W, {0: np.hstack([alpha, 2 * alpha])})
    with pytest.raises(SpurlabError, match="class 0: spurious component #1 has no covariance"):
        transfer_directions(phi, labels, W, {0: np.hstack([alpha, np.ones_like(alpha)])})
    with pytest.raises(SpurlabError, match=r"class 0: alphas of shape \(5, 1\)"):
        transfer_directions(phi, labels, W, {0: alpha[:5]})
    with pytest.raises(SpurlabError, match="class 9 outside"):
        spufix_logits(phi_test @ W.T, phi_test, W, {9: (mu, V[[0]])})


def _repaired_run(spurious) -> _SpuFixRun:
    """A SpuFix run holding only what `_repaired_ci` reads: the removed components and the seed."""
    return _SpuFixRun(robust="r", spurious=spurious, r_alphas={}, direct_bases={}, train_sha256="", cue_set=None,
                      cue_only_set="", negatives={}, retrieved=None, seed=5)  # fmt: skip


def _probs(rng, n_pos=30, n_neg=20, separated=(0, 1, 2)):
    """Probabilities of 3 classes for 30 test images per class and 20 cue-only images per class:
    the classes in `separated` put every test image above every cue-only image."""
    labels = np.repeat(np.arange(3), n_pos)
    pos, neg = rng.random((3 * n_pos, 3)), rng.random((3 * n_neg, 3))
    for k in separated:
        pos[labels == k, k] += 1.0
    return pos, labels, neg, {k: np.arange(k * n_neg, (k + 1) * n_neg) for k in range(3)}


def test_the_repaired_classes_mean_auc_has_its_interval_over_their_images():
    """The interval of the mean cue-only AUC over the classes SpuFix repairs (some harmful component
    removed), each class's images resampled within class and side: it holds the mean over those
    classes only, has no width where every resample separates them perfectly, and is seeded."""
    run = _repaired_run({0: [1], 2: [0, 3], 1: []})  # class 1: nothing removed, so not repaired
    pos, labels, neg_probs, neg = _probs(np.random.default_rng(0), separated=())
    cols = run._repaired_ci("m", "before", (pos, labels), neg_probs, neg)
    low, high = cols["cue_only_auc_repaired_before_ci_low"], cols["cue_only_auc_repaired_before_ci_high"]
    point = mean_scores(spurious_scores(pos, labels, neg_probs, {k: neg[k] for k in (0, 2)}))["spurious_auc"]
    assert low <= point <= high and low < high
    assert [low, high] == mean_auc_ci(pos, labels, neg_probs, {k: neg[k] for k in (0, 2)}, seed=5,
                                      key="cue_only-auc-repaired-before-m")  # fmt: skip
    assert run._repaired_ci("m", "before", (pos, labels), neg_probs, neg) == cols
    # the repaired classes separated perfectly (class 1 not): every resample's mean is 1
    pos, labels, neg_probs, neg = _probs(np.random.default_rng(1), separated=(0, 2))
    cols = run._repaired_ci("m", "after", (pos, labels), neg_probs, neg)
    assert (cols["cue_only_auc_repaired_after_ci_low"], cols["cue_only_auc_repaired_after_ci_high"]) == (1.0, 1.0)
    # no class repaired: no interval (NaN columns)
    none = _repaired_run({})._repaired_ci("m", "after", (pos, labels), neg_probs, neg)
    assert all(np.isnan(v) for v in none.values())
