"""TCAV (Kim et al. 2018) through captum, with the two fixes of docs/methods.md#attribution-methods.

- **CAV cache keyed by content.** captum stores activations and CAVs under
  ``<save_path>/<model_id>/`` and silently reuses them whenever `model_id` repeats, even after the
  model or the concept images changed. Here `model_id` is the sha256 of the checkpoint, the concept
  images, the settings and the code that runs (`cache_key`; `spurlab.io.code`), so a stale CAV can
  never be read, nor one of older code when a code change reruns the stage.
- **Significance by t-test over random concepts** (not built into captum): the concept's TCAV
  scores against R random counterpart sets are compared with the scores of random-vs-random CAVs by
  a two-sided t-test (scipy.stats.ttest_ind); Yang & Kim (app. F) keep a layer only when p <= 0.01
  and average the kept layers' scores.

CAVs are trained by a seeded logistic regression (scikit-learn) on a seeded 2/3 : 1/3 split,
instead of captum's default SGD classifier, whose split uses Python's global `random` and whose
SGD is unseeded: same inputs, same CAVs, same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SpurlabError
from ..io import code_provenance, sha256_json

TCAV_VERSION = "tcav-1"


def _classifier_base():
    from captum.concept._utils.classifier import Classifier

    return Classifier


class SeededLinearClassifier(_classifier_base()):
    """captum `Classifier`: logistic regression on activations with a seeded train/test split."""

    def __init__(self, seed: int = 0, test_split: float = 0.33):
        self.seed = int(seed)
        self.test_split = float(test_split)
        self._w = None
        self._classes = None

    def train_and_eval(self, dataloader, **kwargs):
        from sklearn.linear_model import LogisticRegression

        xs, ys = zip(*[(x, y) for x, y in dataloader])
        x = torch.cat(xs).reshape(sum(len(a) for a in xs), -1).double().cpu().numpy()
        y = torch.cat(ys).cpu().numpy()
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(y))
        n_test = int(self.test_split * len(y))
        test, train = order[:n_test], order[n_test:]
        lm = LogisticRegression(C=1.0, max_iter=2000, random_state=self.seed).fit(x[train], y[train])
        self._classes = [int(c) for c in lm.classes_]
        w = torch.from_numpy(lm.coef_).float()
        # binary case: one row; captum expects one weight row per class, [-w, w]
        self._w = torch.cat([-w, w]) if w.shape[0] == 1 else w
        acc = float((lm.predict(x[test]) == y[test]).mean()) if n_test else float("nan")
        return {"accs": torch.tensor(acc)}

    def weights(self):
        return self._w

    def classes(self):
        return self._classes


@dataclass(frozen=True)
class TCAVSettings:
    """`random_sets` R (Kim et al. use up to 500; Yang & Kim do not say), `alpha` the t-test level
    (Yang & Kim, app. F: 0.01), `seed` for the CAV classifiers' splits."""

    random_sets: int = 10
    alpha: float = 0.01
    seed: int = 0


def cache_key(model_sha256: str, concept_sha256: str, settings: TCAVSettings, layers: list[str]) -> str:
    """captum's `model_id`: every input the CAVs depend on, the running code included, hashed (see
    module docstring)."""
    return sha256_json({"model": model_sha256, "concepts": concept_sha256, "settings": settings.__dict__,
                        "layers": list(layers), "version": TCAV_VERSION,
                        "code": code_provenance()["code_sha256"]})[:32]  # fmt: skip


def _concept(cid: int, name: str, images: torch.Tensor):
    from captum.concept import Concept

    loader = torch.utils.data.DataLoader(images, batch_size=64, shuffle=False)
    return Concept(cid, name, loader)


def tcav_scores(model: torch.nn.Module, layers: list[str], concept: torch.Tensor, randoms: list[torch.Tensor],
                inputs: torch.Tensor, targets: torch.Tensor, model_id: str, save_path: str | os.PathLike,
                settings: TCAVSettings) -> list[dict]:  # fmt: skip
    """TCAV scores of `concept` (images, float (N, 3, H, W)) for `inputs` and their `targets`.

    `randoms` holds R + 1 random image sets: the concept is tested against sets 1..R, and set 0
    against sets 1..R gives the random-CAV scores of the t-test. Returns one row per layer:
    `score` (mean sign-count score over the R concept CAVs), `random_score`, `p_value`,
    `significant` (p <= alpha), and the per-run scores.
    """
    from captum.concept import TCAV
    from scipy import stats

    if len(randoms) < 3:
        raise SpurlabError("tcav: at least 2 random sets (plus one reference) are needed for the t-test")
    save_path = Path(save_path)
    save_path.mkdir(parents=True, exist_ok=True)
    tcav = TCAV(model, layers, model_id=model_id, classifier=SeededLinearClassifier(settings.seed),
                save_path=str(save_path) + os.sep)  # fmt: skip
    c = _concept(0, "concept", concept)
    rs = [_concept(i + 1, f"random{i}", r) for i, r in enumerate(randoms)]
    sets = [[c, r] for r in rs[1:]] + [[rs[0], r] for r in rs[1:]]
    res = tcav.interpret(inputs, experimental_sets=sets, target=targets.tolist())
    rows = []
    n_runs = len(rs) - 1
    for layer in layers:
        concept_scores = [float(res[f"0-{r.id}"][layer]["sign_count"][0]) for r in rs[1:]]
        random_scores = [float(res[f"{rs[0].id}-{r.id}"][layer]["sign_count"][0]) for r in rs[1:]]
        if np.allclose(concept_scores, random_scores):
            p = 1.0
        else:
            p = float(stats.ttest_ind(concept_scores, random_scores).pvalue)
        rows.append({
            "layer": layer,
            "score": float(np.mean(concept_scores)),
            "random_score": float(np.mean(random_scores)),
            "score_sd": float(np.std(concept_scores, ddof=1)) if n_runs > 1 else float("nan"),
            "p_value": p,
            "significant": bool(p <= settings.alpha),
            "concept_scores": concept_scores,
            "random_scores": random_scores,
        })  # fmt: skip
    return rows


def combine_layers(rows: list[dict]) -> dict:
    """Yang & Kim (app. F): the TCAV score is the mean over layers whose t-test passed; with no
    passing layer the concept is not shown to matter and the score is 0. The random-CAV score is
    combined the same way (the MCS baseline of app. G)."""
    kept = [r for r in rows if r["significant"]]
    return {
        "score": float(np.mean([r["score"] for r in kept])) if kept else 0.0,
        "random_score": float(np.mean([r["random_score"] for r in kept])) if kept else 0.0,
        "score_all_layers": float(np.mean([r["score"] for r in rows])),
        "random_score_all_layers": float(np.mean([r["random_score"] for r in rows])),
        "layers_kept": [r["layer"] for r in kept],
    }
