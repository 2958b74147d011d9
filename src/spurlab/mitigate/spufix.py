r"""SpuFix: remove the positive logit contribution of spurious neural-PCA components (docs/methods.md#spufix).

Neuhaus et al., "Spurious Features Everywhere", sec. 5, eqs. 8-11. With a_k(x) = W[k] * phi(x), class
k's basis (mean mu_k, eigenvectors V) and alpha_l(x) = <1, v_l> <a_k(x) - mu_k, v_l>
(`spurlab.discover.npca`), S_k the spurious components of class k:

    robust model (eq. 8):  f_k'(x) = f_k(x) - sum_{l in S_k} max(alpha_l(x), 0)

Transfer to another model g (eqs. 9-11), over class k's training images x_1..x_n in the same order
as the robust model's alphas: mu_g = mean of a_g(x_i), u_l = sum_i alpha_l(x_i) (a_g(x_i) - mu_g),
d_l = u_l / ||u_l||; at test time lambda(x) = solve(D^T D, D^T (a_g(x) - mu_g)), beta_l = lambda_l
<1, d_l> and f_k'(x) = f_k(x) - sum_{l in S_k} max(beta_l(x), 0).

Assumes the rows of V are eigenvectors of the covariance of a over the very images used for the
transfer; then the transfer to g = f reproduces eq. 8 exactly (paper, app. C.2; derivation in
docs/methods.md#spufix). Ours: float64 arithmetic, results in the logits' dtype; a class without
spurious components is left untouched bit for bit; a zero u_l or D^T D with condition number above
1e12 is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..data.feature_cache import model_checkpoint_sha256, open_features
from ..data.imagesets import ImageSet, planted_cue_masks
from ..discover.npca import NPCABases, alphas, weighted_features
from ..discover.retrieval import harmful_components
from ..errors import SpurlabError
from ..io import sha256_file
from ..io.tables import read_table, write_table
from ..measure.spurious_score import cue_only_negatives, mean_auc_ci, mean_scores, softmax, spurious_scores
from ..stats import mean_ci

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
        raise SpurlabError(f"SpuFix: logits, phi and W must be 2-d, got {logits.shape}, {phi.shape}, {W.shape}")
    if logits.shape[0] != phi.shape[0] or logits.shape[1] != W.shape[0] or phi.shape[1] != W.shape[1]:
        raise SpurlabError(f"SpuFix: shapes do not match: logits {logits.shape}, phi {phi.shape}, W {W.shape}")


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


def transfer_betas(k: int, centred: np.ndarray, Dmat: np.ndarray) -> np.ndarray:
    """Eq. 11's beta_l = lambda_l <1, d_l> of class k's centred weighted features (N, D) -> (N, S_k)."""
    try:
        lam = np.linalg.solve(_checked_gram(Dmat, k), Dmat @ centred.T).T  # (N, S_k)
    except np.linalg.LinAlgError as exc:
        raise SpurlabError(f"SpuFix transfer: class {k}: D^T D is singular ({exc})") from None
    return lam * Dmat.sum(axis=1)


def spufix_transfer_logits(
    logits_g: np.ndarray,
    phi_g: np.ndarray,
    W_g: np.ndarray,
    directions: Mapping[int, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Eq. 11 on model g with `directions` from `transfer_directions` -> (N, C)."""
    return _subtract_positive(logits_g, phi_g, W_g, directions, transfer_betas)


def transfer_fidelity(phi_g_train, labels_train, W_g: np.ndarray, directions: Mapping,
                      alphas_robust_train: Mapping[int, np.ndarray]) -> dict[int, float]:  # fmt: skip
    """Ours, a check of eqs. 9-11: per class k, the Pearson correlation over k's training images
    between the robust model's summed spurious alphas and model g's summed betas (before the
    truncation). 1 for the robust model itself (the transfer invariant); a low value says g's
    direction does not follow the robust component even where it was fitted. NaN where either
    side is constant."""
    labels = np.asarray(labels_train).reshape(-1)
    out = {}
    for k, (mu, Dmat) in directions.items():
        if not len(Dmat):
            continue
        idx = np.flatnonzero(labels == k)
        beta = transfer_betas(k, weighted_features(phi_g_train[idx], W_g, k) - mu, Dmat).sum(axis=1)
        alpha = np.asarray(alphas_robust_train[k], dtype=np.float64).reshape(len(idx), -1).sum(axis=1)
        out[int(k)] = float(np.corrcoef(alpha, beta)[0, 1]) if beta.std() > 0 and alpha.std() > 0 else float("nan")
    return out


def spufix_reach(before: np.ndarray, after: np.ndarray, k: int) -> dict:
    """Ours: how SpuFix reached class k on some images, from their logits before and after it:
    the share whose class-k logit it lowered (`corrected`) and the mean amount (`correction`,
    logit units; 0 for an image it left alone). On a class's cue-only images a share near 0
    means the fix cannot change the spurious score there, whatever it does to the test images."""
    drop = np.asarray(before, dtype=np.float64)[:, k] - np.asarray(after, dtype=np.float64)[:, k]
    if not len(drop):
        return {"corrected": float("nan"), "correction": float("nan")}
    return {"corrected": float((drop > 0).mean()), "correction": float(drop.mean())}


# ------------------------------------------------------------------------------------ stage `npca_spufix`


def robust_train_alphas(phi_train, labels_train, W: np.ndarray, bases, spurious: Mapping[int, list[int]]) -> dict:
    """{k: (n_k, S_k)} alphas of class k's spurious components on its training images (label order)."""
    labels = np.asarray(labels_train).reshape(-1)
    out = {}
    for k, comps in spurious.items():
        mu, V, _ = bases.get(k)
        idx = np.flatnonzero(labels == k)
        out[k] = alphas(weighted_features(phi_train[idx], W, k), mu.astype(np.float64), V[comps].astype(np.float64))
    return out


def _load_features(entry: dict, key: str, imageset=None) -> dict:
    """phi, logits, labels, image-set hash and class names of a model's feature cache entry[key]."""
    with open_features(entry[key], model_dir=entry["dir"], imageset=imageset) as fc:
        return {"phi": fc["features"], "logits": fc["logits"], "labels": fc["labels"],
                "imageset_sha256": fc.attrs["imageset_sha256"], "class_names": fc.class_names}  # fmt: skip


def _retrieved_negatives(retrieved, entry: dict) -> tuple[dict, dict]:
    """The model's phi and logits of the retrieved images (grouped by source set, in set-name
    order) and, per class, the positions of its retrieved images among them."""
    parts = []
    for set_name in sorted(retrieved["source_set"].unique()):
        data = _load_features(entry, set_name)
        sel = retrieved["source_set"].to_numpy() == set_name
        parts.append({key: data[key][retrieved["source_row"].to_numpy()[sel]] for key in ("phi", "logits")})
    order = np.concatenate([np.flatnonzero(retrieved["source_set"].to_numpy() == s)
                            for s in sorted(retrieved["source_set"].unique())])  # fmt: skip
    data = {key: np.concatenate([p[key] for p in parts]) for key in ("phi", "logits")}
    cls = retrieved["class"].to_numpy()[order]
    return data, {int(k): np.flatnonzero(cls == k) for k in np.unique(cls)}


def _reach_columns(classes, pos: tuple, neg: tuple) -> dict:
    """Per class k of `classes`: `spufix_reach` on its test images (`corrected_pos`,
    `correction_pos`; pos = (logits before, after, labels)) and on its negatives (`corrected_neg`,
    `correction_neg`; neg = (logits before, after, {k: rows}))."""
    cols = {f"{c}_{side}": [] for side in ("pos", "neg") for c in ("corrected", "correction")}
    for k in classes:
        rows = {"pos": np.flatnonzero(np.asarray(pos[2]) == k), "neg": np.asarray(neg[2][k], dtype=np.int64)}
        for side, (before, after, _) in (("pos", pos), ("neg", neg)):
            reach = spufix_reach(before[rows[side]], after[rows[side]], int(k))
            for c in ("corrected", "correction"):
                cols[f"{c}_{side}"].append(reach[c])
    return cols


def _ci_columns(metric: str, ci: list | None) -> dict:
    """`<metric>_ci_low`, `<metric>_ci_high` of a bootstrap interval (NaN without one)."""
    low, high = ci if ci else (float("nan"), float("nan"))
    return {f"{metric}_ci_low": low, f"{metric}_ci_high": high}


@dataclass
class _SpuFixRun:
    """What every model's SpuFix needs: the robust model's name, its training alphas and direct
    bases of the removed components, the cue-only set with its negatives, the retrieval table."""

    robust: str
    spurious: dict
    r_alphas: dict
    direct_bases: dict
    train_sha256: str  # the robust model's training images
    cue_set: ImageSet
    cue_only_set: str
    negatives: dict
    retrieved: object  # the retrieval table (DataFrame)
    seed: int = 0  # of the bootstrap intervals (docs/methods.md#bootstrap-intervals)

    @property
    def cue_source(self) -> str:
        return "folder_labels" if self.cue_set.kind == "index" else "planted_cues"

    def model(self, name: str, entry: dict) -> tuple[list, dict]:
        """Model `name`: its per-class score rows and its model row (accuracies, mean scores)."""
        from ..models.factory import load_model

        model, _ = load_model(entry["dir"])
        W = model.head()[0].detach().double().numpy()
        train = _load_features(entry, "train")
        if train["imageset_sha256"] != self.train_sha256:
            raise SpurlabError(
                f"{entry['train']}: not the robust model's training images; SpuFix transfer needs the same images"
            )
        dirs = transfer_directions(train["phi"], train["labels"], W, self.r_alphas)
        fidelity = transfer_fidelity(train["phi"], train["labels"], W, dirs, self.r_alphas)
        is_robust = name == self.robust

        def fixed(data):
            if is_robust:
                return spufix_logits(data["logits"], data["phi"], W, self.direct_bases)
            return spufix_transfer_logits(data["logits"], data["phi"], W, dirs)

        test = _load_features(entry, "test")
        if self.cue_source == "folder_labels" and test["class_names"] != self.cue_set.class_names:
            raise SpurlabError(
                f"{self.cue_only_set}: class names differ from those of {entry['test']}; index the "
                "cue-only folder with the model's class-name/synset file so that class indices agree"
            )
        after = {"test": fixed(test)}
        row = {"model": name, "transferred": not is_robust}
        for when, logits in (("before", test["logits"]), ("after", after["test"])):
            correct = (logits.argmax(1) == test["labels"]).astype(float)
            row[f"acc_{when}"] = float(correct.mean())
            row.update(_ci_columns(f"acc_{when}", mean_ci(correct, self.seed, f"acc-{when}-{name}")))
        if is_robust:
            row["transfer_invariant_max_abs_err"] = float(np.abs(
                spufix_transfer_logits(test["logits"], test["phi"], W, dirs) - after["test"]).max())  # fmt: skip
        neg_sets = {"cue_only": (_load_features(entry, "cue_only", self.cue_set), self.negatives["cue_only"])}
        if len(self.retrieved):
            neg_sets["retrieved"] = _retrieved_negatives(self.retrieved, entry)
        return self._scores(name, (test, after["test"]), neg_sets, fixed=fixed, row=row, fidelity=fidelity)

    def _scores(self, name, test_pair: tuple, neg_sets: dict, fixed, row: dict, fidelity: dict) -> tuple[list, dict]:
        """Spurious AUC and AP before / after per class and negatives set, with SpuFix's reach
        (`_reach_columns`) and the transfer's `fidelity` {class: r}; means into `row`.
        `test_pair`: the test features and the SpuFix logits of the test images."""
        test, test_after = test_pair
        pos_before, pos_after = softmax(test["logits"]), softmax(test_after)
        class_rows = []
        for neg_name, (data, neg) in neg_sets.items():
            neg_after = fixed(data)
            neg_probs = {"before": softmax(data["logits"]), "after": softmax(neg_after)}
            before = spurious_scores(pos_before, test["labels"], neg_probs["before"], neg)
            aft = spurious_scores(pos_after, test["labels"], neg_probs["after"], neg)
            t = before.merge(aft[["class", "spurious_auc", "spurious_ap"]], on="class", suffixes=("_before", "_after"))
            t.insert(0, "negatives", neg_name)
            t.insert(0, "model", name)
            t["spufix_components"] = [len(self.spurious.get(int(k), [])) for k in t["class"]]
            reach = _reach_columns(
                t["class"], (test["logits"], test_after, test["labels"]), (data["logits"], neg_after, neg)
            )
            class_rows.append(t.assign(**reach, transfer_corr=[fidelity.get(int(k), np.nan) for k in t["class"]]))
            mb, ma = mean_scores(before), mean_scores(aft)
            row.update({f"{neg_name}_auc_before": mb["spurious_auc"], f"{neg_name}_auc_after": ma["spurious_auc"],
                        f"{neg_name}_ap_before": mb["spurious_ap"], f"{neg_name}_ap_after": ma["spurious_ap"]})  # fmt: skip
            for when, p in (("before", pos_before), ("after", pos_after)):
                ci = mean_auc_ci(
                    p, test["labels"], neg_probs[when], neg, seed=self.seed, key=f"{neg_name}-auc-{when}-{name}"
                )
                row.update(_ci_columns(f"{neg_name}_auc_{when}", ci))
                if neg_name == "cue_only":
                    row.update(self._repaired_ci(name, when, (p, test["labels"]), neg_probs[when], neg))
        return class_rows, row

    def _repaired_ci(self, name: str, when: str, pos: tuple, probs_neg, neg: dict) -> dict:
        """`cue_only_auc_repaired_<when>_ci_low` / `_high`: the interval of the mean cue-only AUC
        over the classes SpuFix repairs (some harmful component removed: `spufix_components` > 0,
        the classes `npca_summary.repaired_scores` averages), each class's positives and negatives
        resampled within the class and side (`mean_auc_ci`, restricted to those classes)."""
        repaired = {k: v for k, v in neg.items() if self.spurious.get(int(k))}
        ci = mean_auc_ci(
            pos[0], pos[1], probs_neg, repaired, seed=self.seed, key=f"cue_only-auc-repaired-{when}-{name}"
        )
        return _ci_columns(f"cue_only_auc_repaired_{when}", ci)


@dataclass(frozen=True)
class SpuFixSettings(Settings):
    """Stage `npca_spufix`: the robust model the components come from (salient.model) and the seed
    of the bootstrap intervals of the accuracies and mean spurious AUCs (top-level `seed`)."""

    KEYS = {"robust": "salient.model", "seed": "seed"}
    robust: str = "robust"
    seed: int = 0


def run_spufix(models: dict, bases_path, pairs_path, cue_only_set, retrieval_path, harmful_path, out_classes,
               out_models, settings: SpuFixSettings = SpuFixSettings()) -> dict:  # fmt: skip
    """Stage `npca_spufix`: SpuFix on the robust model (eq. 8) and transferred to every other model
    (eqs. 9-11), from cached features only. `models`: {name: {"dir", "train", "test", "cue_only",
    and one entry per retrieval pool set}} (feature caches). Components removed: those the
    harmfulness table of `npca_retrieval` (`harmful_path`) marks harmful, i.e. annotated spurious
    (or published) and validated to trigger the class on their own. Writes per (model, class, negatives) the spurious AUC
    and AP before/after, SpuFix's reach on the class's test images and negatives (`spufix_reach`:
    `corrected_pos`, `correction_pos`, `corrected_neg`, `correction_neg`) and the transfer's
    fidelity on its training images (`transfer_fidelity`: `transfer_corr`) (`out_classes`), and
    per model the test accuracy before/after, the class means and, for the robust model, the transfer invariant (transfer to itself vs direct SpuFix,
    max |logit difference| on its test set) (`out_models`).

    `cue_only_set`: the generated `cue_only` set (class k's negatives: the rows with k's planted cue
    flag) or a cue-only folder set in the Spurious ImageNet layout, indexed with the model's class
    names (kind "index"; class k's negatives: the rows labelled k, whose folder shows k's spurious
    feature without k). The tables' provenance `cue_only_negatives` says which (`planted_cues`,
    `folder_labels`)."""
    import pandas as pd

    from ..models.factory import load_model

    robust = settings.robust
    bases_sha = sha256_file(bases_path)
    read_table(pairs_path, expect={"bases_sha256": bases_sha})  # the pair table must come from these bases
    retrieved = read_table(retrieval_path, expect={"bases_sha256": bases_sha})
    harmful = read_table(harmful_path, expect={"bases_sha256": bases_sha, "pairs_sha256": sha256_file(pairs_path)})
    spurious = {int(k): sorted(v) for k, v in harmful_components(harmful).items() if v}
    cue_set = ImageSet(cue_only_set)
    # a folder set (kind "index"): class k's negatives are its rows labelled k; the generated set:
    # the rows with k's planted cue flag (`cue_only_negatives`)
    negatives = {"cue_only": cue_only_negatives(cue_set, planted_cue_masks(cue_set))}
    r_entry = models[robust]
    r_sha = model_checkpoint_sha256(r_entry["dir"])
    r_model, _ = load_model(r_entry["dir"])
    W_r = r_model.head()[0].detach().double().numpy()
    r_train = _load_features(r_entry, "train")
    with NPCABases(bases_path, r_sha) as bases:
        r_alphas = robust_train_alphas(r_train["phi"], r_train["labels"], W_r, bases, spurious)
        direct_bases = {k: (bases.get(k)[0].astype(np.float64), bases.get(k)[1][c].astype(np.float64))
                        for k, c in spurious.items()}  # fmt: skip
    run = _SpuFixRun(robust=robust, spurious=spurious, r_alphas=r_alphas, direct_bases=direct_bases,
                     train_sha256=r_train["imageset_sha256"], cue_set=cue_set, cue_only_set=cue_only_set,
                     negatives=negatives, retrieved=retrieved, seed=settings.seed)  # fmt: skip
    class_rows, model_rows = [], []
    for name, entry in models.items():
        rows, row = run.model(name, entry)
        class_rows += rows
        model_rows.append(row)
    classes = pd.concat(class_rows, ignore_index=True) if class_rows else pd.DataFrame()
    provenance = {"bases_sha256": bases_sha, "pairs_sha256": sha256_file(pairs_path),
                  "retrieval_sha256": sha256_file(retrieval_path), "robust": robust, "cue_only_negatives": run.cue_source,
                  "seed": settings.seed,
                  "harmful_sha256": sha256_file(harmful_path), "spurious_components": {str(k): v for k, v in spurious.items()},
                  "features_sha256": {n: {k: sha256_file(p) for k, p in e.items() if k != "dir"} for n, e in models.items()}}  # fmt: skip
    write_table(classes, out_classes, provenance)
    write_table(pd.DataFrame(model_rows), out_models, provenance)
    return {"models": len(model_rows), "spurious_classes": len(spurious)}


def model_spufix(robust_dir, robust_train, model_dir, model_train, bases_path, harmful_path, pairs_path):
    """SpuFix for one model, as stage `npca_spufix` applies it: the harmful components of the
    harmfulness table, eq. 8 when `model_dir` holds the robust model itself, else the transfer of
    eqs. 9-11 fit on both models' caches of the same training images. Returns (fix, info): fix(logits,
    phi) -> SpuFix logits, info {"spurious_classes", "components"}."""
    from ..models.factory import load_model

    bases_sha = sha256_file(bases_path)
    harmful = read_table(harmful_path, expect={"bases_sha256": bases_sha, "pairs_sha256": sha256_file(pairs_path)})
    spurious = {int(k): sorted(v) for k, v in harmful_components(harmful).items() if v}
    info = {"spurious_classes": len(spurious), "components": int(sum(map(len, spurious.values())))}
    robust_sha = model_checkpoint_sha256(robust_dir)
    W_r = load_model(robust_dir)[0].head()[0].detach().double().numpy()
    with open_features(robust_train, model_dir=robust_dir) as fc:
        phi_r, labels_r, train_set = fc["features"], fc["labels"], fc.attrs["imageset_sha256"]
    with NPCABases(bases_path, robust_sha) as bases:
        r_alphas = robust_train_alphas(phi_r, labels_r, W_r, bases, spurious)
        direct = {k: (bases.get(k)[0].astype(np.float64), bases.get(k)[1][c].astype(np.float64))
                  for k, c in spurious.items()}  # fmt: skip
    if model_checkpoint_sha256(model_dir) == robust_sha:
        return (lambda logits, phi: spufix_logits(logits, phi, W_r, direct)), info
    W = load_model(model_dir)[0].head()[0].detach().double().numpy()
    with open_features(model_train, model_dir=model_dir) as fc:
        if fc.attrs["imageset_sha256"] != train_set:
            raise SpurlabError(
                f"{model_train}: not the robust model's training images; SpuFix transfer needs the same images"
            )
        dirs = transfer_directions(fc["features"], fc["labels"], W, r_alphas)
    return (lambda logits, phi: spufix_transfer_logits(logits, phi, W, dirs)), info
