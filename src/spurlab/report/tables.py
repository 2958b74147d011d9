"""The aggregation of every stage summary and per-unit table into one tidy table (issue #9).

Stage tables are read and written with their provenance by `spurlab.io.tables`; this module only
turns them, and the stages' summary.json files, into rows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

from ..errors import SpurlabError
from ..stats import CI_SUFFIX

TIDY_COLUMNS = ["stage", "source", "model", "class_name", "feature", "method", "setting", "metric", "value", "n", "sem",
                "ci_low", "ci_high"]  # fmt: skip
_ID_COLUMNS = ["model", "class_name", "feature", "method", "setting"]
# keys whose children name a method (attribution methods, tuning methods, corruptions)
_METHOD_PARENTS = {"methods", "tuning", "mean_delta"}
_SKIP_KEYS = {"inputs"}
_KNOWN_METHODS = {"low_spuriosity", "random", "misclassified", "gray", "blur", "patch_rotate"}
_BAM_MODEL = re.compile(r"^f_(o|s|k\d+)$")  # BAM models f_o, f_s, f_kNNN


def _is_number_key(key: str) -> bool:
    try:
        float(key)
        return True
    except ValueError:
        return False


class Vocabulary:
    """Which summary keys name a model, a class or a method; the rest of a key path is the metric."""

    def __init__(self, models=(), classes=(), methods=()):
        self.models, self.classes = set(models), set(classes)
        self.methods = set(methods) | _KNOWN_METHODS

    @classmethod
    def from_config(cls, cfg: dict) -> Vocabulary:
        classes = list(cfg.get("datasets", {}).get("classes", []))
        classes += list((cfg.get("lightweight") or {}).get("datasets", {}).get("classes", []) or [])
        methods = list(((cfg.get("bam") or {}).get("benchmark") or {}).get("methods", []) or [])
        methods += list((cfg.get("posthoc") or {}).get("methods", []) or [])
        return cls(models=list(cfg.get("models", {})), classes=classes, methods=methods)

    def is_model(self, key: str) -> bool:
        return key in self.models or bool(_BAM_MODEL.match(key))


def _leaf_value(v):
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and v is not None:
        return float(v)
    return None


def _ci(node: dict, key: str) -> dict:
    """ci_low / ci_high of `key` from its sibling `<key>_ci` ([low, high], `spurlab.stats`); NaN without one."""
    ci = node.get(f"{key}{CI_SUFFIX}")
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_leaf_value(x) is not None for x in ci)
    return {"ci_low": float(ci[0]) if ok else None, "ci_high": float(ci[1]) if ok else None}


def _key_cis(node, cis):
    """A mapping ({kind: value}, {class: gap}) whose sibling `<key>_ci` holds its intervals per key
    ({kind: [low, high]}): the intervals moved beside each key's value, as `<kind>_ci`."""
    if not (isinstance(node, dict) and isinstance(cis, dict)):
        return node
    return {**node, **{f"{k}{CI_SUFFIX}": ci for k, ci in cis.items() if k in node}}


def _with_sem(n, sem, sd):
    """The SEM, or sd / sqrt(n) when only the SD is given."""
    import math

    if sem is None and sd is not None and n:
        sem = sd / math.sqrt(n)
    return sem


class _SummaryWalker:
    """`flatten_summary`'s walk: collects one row per numeric leaf in `rows`."""

    def __init__(self, summary: dict, vocab: Vocabulary):
        self.summary, self.vocab, self.rows = summary, vocab, []

    def walk(self, node, ids: dict, metric: list[str], parent: str) -> None:
        if isinstance(node, dict):
            if "mean" in node and ("sem" in node or "n" in node) and all(
                    _leaf_value(x) is not None or x is None for k, x in node.items() if k != f"mean{CI_SUFFIX}"):  # fmt: skip
                # an estimate record {mean, n, sem[, sd][, mean_ci]}: one row
                n, sem, sd = (_leaf_value(node.get(x)) for x in ("n", "sem", "sd"))
                if _leaf_value(node["mean"]) is not None:
                    self.rows.append({**ids, "metric": "/".join(metric) or parent, "value": _leaf_value(node["mean"]),
                                      "n": n, "sem": _with_sem(n, sem, sd), **_ci(node, "mean")})  # fmt: skip
                return
            self._mapping(node, ids, metric, parent)
        elif isinstance(node, list):
            self._list(node, ids, metric, parent)

    def _ids(self, k: str, v, ids: dict, metric: list[str], parent: str) -> tuple[dict, list[str]]:
        """The ids and metric path below key k: k names a model, a class (or class/feature), a
        method (or method/setting), a number (setting), or else extends the metric."""
        vocab = self.vocab
        sub, m = dict(ids), list(metric)
        head, _, tail = k.partition("/")
        if vocab.is_model(k) and "model" not in sub:
            sub["model"] = k
        elif k in vocab.classes and "class_name" not in sub:
            sub["class_name"] = k
        elif tail and head in vocab.classes and "class_name" not in sub:
            sub["class_name"], sub["feature"] = head, tail
        elif (parent in _METHOD_PARENTS or k in vocab.methods) and "method" not in sub and isinstance(v, dict):
            sub["method"] = k
        elif k in vocab.methods and "setting" not in sub and isinstance(v, dict):
            # a second method-like key (a signal, then an attribution method): the inner one is the method
            sub["setting"], sub["method"] = sub["method"], k
        elif tail and head in vocab.methods and "method" not in sub:
            sub["method"], sub["setting"] = head, tail
        elif _is_number_key(k) and "setting" not in sub:
            sub["setting"] = k
        else:
            m.append(k)
        return sub, m

    def _mapping(self, node: dict, ids: dict, metric: list[str], parent: str) -> None:
        keys = set(map(str, node))
        # a group's own count qualifies its siblings; the root's counts describe the stage only
        n_here = (
            None
            if node is self.summary
            else next(
                (node[k] for k in ("n", "n_classes", "n_pairs") if k in node and _leaf_value(node[k]) is not None), None
            )
        )
        for k, v in node.items():
            k = str(k)
            if (
                k in _SKIP_KEYS
                or k.endswith(("_sem", "_sd"))
                or (k.endswith("_n") and k[:-2] in keys)
                or (k.endswith(CI_SUFFIX) and k[: -len(CI_SUFFIX)] in keys)
            ):
                continue
            sub, m = self._ids(k, v, ids, metric, parent)
            if isinstance(v, (dict, list)):
                self.walk(_key_cis(v, node.get(f"{k}{CI_SUFFIX}")), sub, m, k)
                continue
            value = _leaf_value(v)
            if value is None:
                continue
            n = _leaf_value(node.get(f"{k}_n", n_here if k not in ("n", "n_classes", "n_pairs") else None))
            sem = _with_sem(n, _leaf_value(node.get(f"{k}_sem")), _leaf_value(node.get(f"{k}_sd")))
            self.rows.append({**sub, "metric": "/".join(m) or parent, "value": value, "n": n, "sem": sem,
                              **_ci(node, k)})  # fmt: skip

    def _list(self, node: list, ids: dict, metric: list[str], parent: str) -> None:
        import math

        import numpy as np

        nums = [_leaf_value(x) for x in node]
        if node and all(x is not None for x in nums):
            a = np.asarray(nums, float)
            sem = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None
            self.rows.append(
                {**ids, "metric": "/".join(metric) + "/mean", "value": float(a.mean()), "n": float(len(a)), "sem": sem}
            )
        elif node and all(isinstance(x, dict) for x in node):
            # a list of records: string fields identify the row (joined into setting), numbers are metrics
            for rec in node:
                sub, rest, labels = dict(ids), {}, []
                for k, v in rec.items():
                    if k in ("model", "class_name", "method", "feature"):
                        sub.setdefault(k, str(v))
                    elif k == "class" and "class_name" not in rec:
                        sub.setdefault("class_name", str(v))
                    elif isinstance(v, str):
                        labels.append(str(v))
                    else:
                        rest[k] = v
                if labels:
                    sub["setting"] = "|".join(([sub["setting"]] if "setting" in sub else []) + labels)
                self.walk(rest, sub, metric, parent)


def flatten_summary(stage: str, summary: dict, vocab: Vocabulary, source: str = "") -> pd.DataFrame:
    """One tidy row per numeric leaf of a stage's summary.json.

    Path components that name a model, a class ("class" or "class/feature"), a method (children of
    `methods`, `tuning`, ...) or a number (sigma, k) fill those columns; the rest, joined by '/',
    is the metric. A sibling `<metric>_n` / `n` / `n_classes` / `n_pairs` gives n, `<metric>_sem`
    or `<metric>_sd` / sqrt(n) the SEM. A list of numbers becomes its mean with n and SEM.
    Booleans are 0/1; strings and hashes are left out. A sibling `<metric>_ci` ([low, high], the
    95% bootstrap interval of `spurlab.stats`) gives ci_low and ci_high (NaN without one); beside a
    mapping ({kind: value}, {class: gap}) it is a mapping of the same keys to intervals.
    """
    walker = _SummaryWalker(summary, vocab)
    walker.walk(summary, {}, [], stage)
    df = pd.DataFrame(walker.rows)
    for c in TIDY_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df["stage"], df["source"] = stage, source
    return _typed(df[TIDY_COLUMNS])


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Id and metric columns as nullable strings, numbers as float (NaN where undefined)."""
    df = df.copy()
    for c in ("value", "n", "sem", "ci_low", "ci_high"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c in ["stage", "source", *_ID_COLUMNS, "metric"]:
        df[c] = df[c].astype("string")
    return df


def _sem(x) -> float:
    import numpy as np

    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _tidy(df: pd.DataFrame, stage: str, source: str, ids: dict, metrics: list[str], n=None, sem=None) -> pd.DataFrame:
    """Rows of a stage table as tidy rows: `ids` maps tidy id columns to table columns."""
    out = []
    for metric in metrics:
        t = pd.DataFrame({c: df[src].astype(str) if src in df.columns else None for c, src in ids.items()})
        t["metric"], t["value"] = metric, df[metric].astype(float).to_numpy()
        t["n"] = df[n].astype(float).to_numpy() if isinstance(n, str) else (float("nan") if n is None else float(n))
        t["sem"] = df[sem].astype(float).to_numpy() if sem else float("nan")
        out.append(t)
    res = pd.concat(out, ignore_index=True)
    for c in TIDY_COLUMNS:
        if c not in res.columns:
            res[c] = None
    res["stage"], res["source"] = stage, source
    return res[TIDY_COLUMNS]


def _group_mean(df: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean of each metric over the rows of each group, with n (rows) and SEM."""
    rows = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            vals = g[m].astype(float).dropna()
            rows.append({**dict(zip(by, key)), "metric": m, "value": float(vals.mean()) if len(vals) else float("nan"),
                         "n": float(len(vals)), "sem": _sem(vals)})  # fmt: skip
    return pd.DataFrame(rows)


def _as_tidy(df: pd.DataFrame, stage: str, source: str, rename: dict) -> pd.DataFrame:
    df = df.rename(columns=rename)
    for c in TIDY_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df["stage"], df["source"] = stage, source
    for c in _ID_COLUMNS:
        df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    return df[TIDY_COLUMNS]


def detail_rows(kind: str, path: str | os.PathLike) -> pd.DataFrame:
    """Per-unit rows (with n and SEM over units) of one stage table; `kind` names the table."""
    df = pd.read_parquet(path)
    src = str(path)
    if kind == "noise":  # Salient ImageNet eq. 3-4: per pair and sigma, acc with its own n and SEM
        per_pair = _tidy(df, "salient", src, {"model": "model", "class_name": "class_name", "feature": "feature_index",
                                              "method": "measure", "setting": "sigma"}, ["acc"], n="n", sem="sem")  # fmt: skip
        classes = _group_mean(df[df["feature_index"] == -1], ["model", "measure", "sigma"], ["acc"])
        return pd.concat([per_pair, _as_tidy(classes, "salient", src, {"measure": "method", "sigma": "setting"})])
    if kind == "gaps":  # Moayeri et al.: class-wise gap; the model mean over classes
        per_class = _tidy(df, "spuriosity", src, {"model": "model", "class_name": "class_name", "setting": "k"},
                          ["gap", "acc_high", "acc_low"], n="n")  # fmt: skip
        means = _group_mean(df, ["model"], ["gap", "acc_high", "acc_low"])
        means["metric"] = "mean_" + means["metric"]
        return pd.concat([per_class, _as_tidy(means, "spuriosity", src, {})])
    if kind == "corruptions":
        per_pair = _tidy(df, "spuriosity", src, {"model": "model", "class_name": "class_name", "feature": "feature_index",
                                                 "method": "corruption", "setting": "label"}, ["delta"], n="n", sem="sem")  # fmt: skip
        means = _group_mean(df, ["model", "corruption", "label"], ["delta"])
        return pd.concat([per_pair, _as_tidy(means, "spuriosity", src, {"corruption": "method", "label": "setting"})])
    if kind == "tuning":  # mean over trials
        df = df.assign(setting=df["split"] + "/" + df["when"])
        means = _group_mean(df, ["model", "method", "setting"], ["acc", "gap", "acc_high", "acc_low"])
        return _as_tidy(means, "spuriosity", src, {})
    if kind == "spufix":  # Neuhaus et al.: spurious score per class before/after SpuFix; mean over classes
        metrics = ["spurious_auc_before", "spurious_auc_after", "spurious_ap_before", "spurious_ap_after"]
        df = df.assign(class_name=df["class"].astype(str))
        means = _group_mean(df, ["model", "negatives"], metrics)
        return _as_tidy(means, "npca", src, {"negatives": "setting"})
    if kind == "bam_verification":
        df = df.assign(setting=df["set"] + "/" + df["rows"].astype(str))
        return _tidy(df, "bam", src, {"model": "model", "setting": "setting"}, ["accuracy"], n="n")
    if kind == "tcav":
        return _tidy(df, "bam", src, {"model": "model", "setting": "layer"}, ["score", "random_score", "p_value"],
                     sem="score_sd")  # fmt: skip
    raise SpurlabError(f"{path}: unknown detail table kind '{kind}'")


DETAIL_KINDS = ("noise", "gaps", "corruptions", "tuning", "spufix", "bam_verification", "tcav")


def aggregate(summaries: dict[str, str | os.PathLike], details: list[tuple[str, str | os.PathLike]],
              vocab: Vocabulary) -> pd.DataFrame:  # fmt: skip
    """The tidy table of every metric: flattened stage summaries plus per-unit rows of the detail
    tables. `summaries` maps a stage name to its summary.json: a new stage is one more entry."""
    frames = []
    for stage, path in summaries.items():
        path = Path(path)
        if not path.is_file():
            raise SpurlabError(f"{path}: stage summary of '{stage}' missing")
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SpurlabError(f"{path}: not valid JSON (line {e.lineno})") from None
        frames.append(flatten_summary(stage, summary, vocab, source=str(path)))
    for kind, path in details:
        frames.append(detail_rows(kind, path))
    df = _typed(pd.concat([_typed(f) for f in frames], ignore_index=True))
    return df.sort_values(["stage", "source", "metric"] + _ID_COLUMNS, kind="stable", na_position="first").reset_index(
        drop=True
    )
