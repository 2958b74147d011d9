"""Static site to browse every (class, feature) pair of Salient ImageNet and every (class, component)
of Spurious ImageNet (docs/architecture.md, stage 7).

Plain files that open from disk: `index.html` with a client-side search over class names and
indices (plain JavaScript, data embedded in the page, no network), one page per pair under
`pages/`, images as PNG files under `img/`. `index.html?q=disk` opens with the search filled in.
The site is built in a temporary directory beside the output and renamed onto it. Pages come from
the templates in `spurlab/templates/site/` (docs/architecture.md#html-pages).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.imagesets import ImageSet
from ..discover.heatmap import heatmap
from ..discover.subsets_file import SalientSubsets
from ..errors import SpurlabError
from ..io.render import render, static_text
from .figures import read_rows


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


class _Writer:
    def __init__(self, root: Path):
        self.root = root
        (root / "img").mkdir(parents=True)
        (root / "pages").mkdir()
        self.n_images = 0

    def image(self, name: str, img: np.ndarray) -> str:
        """Write `img` (uint8 HxWx3) as img/<name>.png; the src relative to a page."""
        (self.root / "img" / f"{name}.png").write_bytes(_png(img))
        self.n_images += 1
        return f"../img/{name}.png"

    def page(self, name: str, template: str, **context) -> None:
        (self.root / "pages" / name).write_text(render(template, css="../style.css", **context))


def _kv(d: dict) -> list[tuple[str, str]]:
    return [(str(k), _fmt(v)) for k, v in d.items()]


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def _df(df: pd.DataFrame | None) -> dict | None:
    """A table for the `table` macro: header and rows as text; None when there are no rows."""
    if df is None or df.empty:
        return None
    return {"header": [str(c) for c in df.columns], "rows": [[_fmt(v) for v in r] for r in df.itertuples(index=False)]}


def _images(imageset, rows) -> np.ndarray:
    return read_rows(imageset, rows)


def feature_page_name(k: int, j: int) -> str:
    return f"feature_c{k}_f{j}.html"


def component_page_name(k: int, c: int) -> str:
    return f"component_c{k}_c{c}.html"


def _pair_tables(noise: pd.DataFrame | None, corruptions: pd.DataFrame | None, k: int, j: int) -> tuple:
    """Accuracy under noise (model x sigma) and accuracy change under corruption (model x
    corruption) of pair (k, j), each None without rows."""
    noise_t, corr_t = None, None
    if noise is not None:
        t = noise[(noise["class_index"] == k) & (noise["feature_index"] == j)]
        if len(t):
            noise_t = t.pivot_table(index="model", columns="sigma", values="acc").reset_index()
            noise_t.columns = ["model"] + [f"acc, sigma {c:g}" for c in noise_t.columns[1:]]
    if corruptions is not None:
        t = corruptions[(corruptions["class_index"] == k) & (corruptions["feature_index"] == j)]
        if len(t):
            corr_t = t.pivot_table(index="model", columns="corruption", values="delta").reset_index()
    return noise_t, corr_t


def _feature_page(w: _Writer, subsets, p: int, row: pd.Series, pairs: pd.DataFrame, annotation: dict, imageset,
                  tables: tuple, shared: list[int], n_show: int) -> dict:  # fmt: skip
    """Write the page of pair `p` (a row of the pair table); its index entry."""
    names = subsets.class_names
    k, j = int(row["class"]), int(row["feature"])
    m = subsets.members(p)
    rows, nams, act = m["row"], m["nam"], m["activation"]
    top, bottom = np.arange(min(n_show, len(rows))), np.arange(max(0, len(rows) - n_show), len(rows))
    imgs = _images(imageset, rows) if len(rows) else np.zeros((0,))
    tag = f"c{k}_f{j}"
    top_src = [(w.image(f"{tag}_top{i}", imgs[i]), f"top {i + 1}, phi {act[i]:.3g}") for i in top]
    heat_src = [(w.image(f"{tag}_nam{i}", heatmap(imgs[i], nams[i])), f"NAM top {i + 1}") for i in top]
    bot_src = [(w.image(f"{tag}_bottom{i}", imgs[i]), f"rank {i + 1} of {len(rows)}, phi {act[i]:.3g}") for i in bottom]
    attacks = subsets.attacks(p)[:n_show]
    att_src = [(w.image(f"{tag}_attack{i}", a), f"attack top {i + 1}") for i, a in enumerate(attacks)]
    label = str(annotation.get("label", "unannotated"))
    votes = {key: annotation[key] for key in ("kind", "votes_main", "votes_separate", "votes_background", "n_votes",
                                              "mean_confidence", "source") if key in annotation}  # fmt: skip
    metrics = {key: row[key] for key in pairs.columns if key not in ("class", "class_name", "feature", "start")}
    name = feature_page_name(k, j)
    w.page(name, "site/feature.html.j2", title=f"{names[k]} ({k}), feature {j}", label=label,
           rank=int(row["rank"]), class_name=names[k], n_images=len(rows), top=top_src, heatmaps=heat_src,
           attacks=att_src, bottom=bot_src, votes=_kv({"label": label, **votes}), metrics=_kv(metrics),
           noise=_df(tables[0]), corruptions=_df(tables[1]),
           shared=[(feature_page_name(c, j), f"{names[c]} ({c})") for c in shared])  # fmt: skip
    return {"class_index": k, "class_name": names[k], "kind": "feature", "key": j, "label": label,
            "href": f"pages/{name}"}  # fmt: skip


def _feature_pages(w: _Writer, subsets_path, annotations: pd.DataFrame, imageset, noise: pd.DataFrame | None,
                   corruptions: pd.DataFrame | None, n_show: int) -> list[dict]:  # fmt: skip
    """Salient ImageNet: one page per (class, feature) with top / bottom images of D(i,j), their
    NAM heatmaps, feature attacks, annotation and votes, metrics, and classes sharing the feature."""
    entries = []
    ann = {(int(r.class_index), int(r.feature_index)): r._asdict() for r in annotations.itertuples(index=False)}
    with SalientSubsets(subsets_path) as subsets:
        pairs = subsets.pair_table()
        by_feature = pairs.groupby("feature")["class"].apply(list).to_dict()
        for p, row in pairs.iterrows():
            k, j = int(row["class"]), int(row["feature"])
            shared = [c for c in by_feature.get(j, []) if c != k]
            entries.append(_feature_page(w, subsets, p=p, row=row, pairs=pairs, annotation=ann.get((k, j), {}),
                                         imageset=imageset,
                                         tables=_pair_tables(noise, corruptions, k, j), shared=shared,
                                         n_show=n_show))  # fmt: skip
    return entries


def _component_page(w: _Writer, comp: dict, i: int, names: list[str], row: pd.Series | None, imageset,
                    retrieval: pd.DataFrame | None, retrieved, spufix: pd.DataFrame | None, neurons: list[tuple],
                    n_show: int) -> dict:  # fmt: skip
    """Write the page of component `i` of `comp` (the components file's arrays); its index entry."""
    k, c = int(comp["class"][i]), int(comp["component"][i])
    tag = f"c{k}_k{c}"
    label = str(row["label"]) if row is not None else "unannotated"
    npfv_src = [(w.image(f"{tag}_npfv", comp["npfv"][i]), "NPFV"),
                (w.image(f"{tag}_npfv_cam", heatmap(comp["npfv"][i], comp["npfv_cam"][i] / 255.0)), "NPFV Grad-CAM")]  # fmt: skip
    rows = comp["top_rows"][i][:n_show]
    rows = rows[rows >= 0]
    imgs = _images(imageset, rows)
    top_src = [(w.image(f"{tag}_top{t}", im), f"top {t + 1}") for t, im in enumerate(imgs)]
    cam_src = [(w.image(f"{tag}_cam{t}", heatmap(im, comp["top_cam"][i][t] / 255.0)), f"Grad-CAM top {t + 1}")
               for t, im in enumerate(imgs)]  # fmt: skip
    ret_src = []
    if retrieval is not None and retrieved is not None:
        sel = np.flatnonzero((retrieval["class"].to_numpy() == k) & (retrieval["component"].to_numpy() == c))[:n_show]
        for t, im in enumerate(_images(retrieved, sel)):
            ret_src.append((w.image(f"{tag}_retrieved{t}", im), f"alpha {retrieval['alpha'].iloc[sel[t]]:.3g}"))
    metrics = {"prob": float(comp["prob"][i])}
    if row is not None:
        metrics.update({key: row[key] for key in row.index if key not in ("kind", "class_name", "rank")})
    spu = spufix[spufix["class"] == k].drop(columns=["class"]) if spufix is not None else None
    name = component_page_name(k, c)
    w.page(name, "site/component.html.j2", title=f"{names[k]} ({k}), component {c}", label=label, npfv=npfv_src,
           top=top_src, cams=cam_src, retrieved=ret_src, metrics=_kv({"label": label, **metrics}), spufix=_df(spu),
           neurons=[(feature_page_name(k, j), j, lab) for j, lab in neurons])  # fmt: skip
    return {"class_index": k, "class_name": names[k], "kind": "component", "key": c, "label": label,
            "href": f"pages/{name}"}  # fmt: skip


def _component_pages(w: _Writer, components_path, pairs: pd.DataFrame, imageset, retrieval: pd.DataFrame | None,
                     retrieved, spufix: pd.DataFrame | None, n_show: int, feature_pages: set) -> list[dict]:  # fmt: skip
    """Spurious ImageNet: one page per (class, component) with its NPFV, Grad-CAMs, top images,
    retrieved cue-only images, annotation, metrics and the class's SpuFix scores."""
    import h5py

    comp_rows = pairs[pairs["kind"] == "component"].set_index(["class", "feature"])
    neurons = pairs[pairs["kind"] != "component"]
    entries = []
    with h5py.File(components_path, "r") as f:
        names = json.loads(f.attrs["class_names"])
        comp = {key: f[key][()] for key in ("class", "component", "npfv", "npfv_cam", "top_rows", "top_cam", "prob")}
    for i, (k, c) in enumerate(zip(comp["class"], comp["component"])):
        k, c = int(k), int(c)
        row = comp_rows.loc[(k, c)] if (k, c) in comp_rows.index else None
        same_class = [(int(r.feature), str(r.label)) for r in neurons[neurons["class"] == k].itertuples()
                      if feature_page_name(k, int(r.feature)) in feature_pages]  # fmt: skip
        entries.append(_component_page(w, comp, i=i, names=names, row=row, imageset=imageset, retrieval=retrieval,
                                       retrieved=retrieved, spufix=spufix, neurons=same_class,
                                       n_show=n_show))  # fmt: skip
    return entries


def _read(path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path else None


def build_site(out: str | os.PathLike, *, subsets, annotations, imageset, components=None, npca_pairs=None,
               npca_imageset=None, retrieval=None, retrieved=None, spufix=None, noise=(), corruptions=(),
               n_show: int = 5) -> dict:  # fmt: skip
    """Write the site to `out` (a directory, replaced whole). Returns page and image counts."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        w = _Writer(tmp)
        noise_df = pd.concat([pd.read_parquet(p) for p in noise], ignore_index=True) if noise else None
        corr_df = pd.concat([pd.read_parquet(p) for p in corruptions], ignore_index=True) if corruptions else None
        with ImageSet(imageset) as ims:
            entries = _feature_pages(
                w,
                subsets,
                annotations=pd.read_parquet(annotations),
                imageset=ims,
                noise=noise_df,
                corruptions=corr_df,
                n_show=n_show,
            )
        feature_names = {Path(e["href"]).name for e in entries}
        if components:
            if not (npca_pairs and npca_imageset):
                raise SpurlabError(f"{components}: component pages need --npca-pairs and --npca-imageset")
            with ImageSet(npca_imageset) as ims:
                ret = ImageSet(retrieved) if retrieved else None
                try:
                    entries += _component_pages(w, components, pairs=pd.read_parquet(npca_pairs), imageset=ims,
                                                retrieval=_read(retrieval), retrieved=ret,
                                                spufix=_read(spufix), n_show=n_show,
                                                feature_pages=feature_names)  # fmt: skip
                finally:
                    if ret is not None:
                        ret.close()
        entries.sort(key=lambda e: (e["class_index"], e["kind"], e["key"]))
        (tmp / "style.css").write_text(static_text("site.css"))
        (tmp / "search.js").write_text(static_text("search.js"))
        n_feat = sum(e["kind"] == "feature" for e in entries)
        (tmp / "index.html").write_text(
            render(
                "site/index.html.j2",
                title="spurlab site",
                css="style.css",
                pages=entries,
                n_feature=n_feat,
                n_component=len(entries) - n_feat,
            )
        )
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"pages": len(entries) + 1, "feature_pages": n_feat, "component_pages": len(entries) - n_feat,
            "images": w.n_images, "bytes": size}  # fmt: skip
