"""Static site to browse every (class, feature) pair of Salient ImageNet and every (class, component)
of Spurious ImageNet (docs/architecture.md, stage 7).

Plain files that open from disk: `index.html` with a client-side search over class names and
indices (plain JavaScript, data embedded in the page, no network), one page per pair under
`pages/`, images as PNG files under `img/`. `index.html?q=disk` opens with the search filled in.
The site is built in a temporary directory beside the output and renamed onto it.
"""

from __future__ import annotations

import html
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.imagesets import ImageSet
from ..errors import SpurlabError
from .figures import read_rows

STYLE = """
body { font-family: sans-serif; margin: 1.2em; color: #222; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
img.px { width: 128px; height: 128px; image-rendering: pixelated; margin: 2px; border: 1px solid #ccc; }
figure { display: inline-block; margin: 0 4px 4px 0; text-align: center; font-size: 0.75em; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
.spurious { color: #b00; font-weight: bold; } .core { color: #070; font-weight: bold; }
#q { font-size: 1.1em; padding: 4px; width: 22em; }
#results li { margin: 2px 0; } .muted { color: #777; }
"""

SEARCH_JS = """
// Client-side search over class names and indices; PAGES is defined in index.html.
function matches(p, q) {
  if (!q) return true;
  q = q.trim().toLowerCase();
  if (/^[0-9]+$/.test(q)) return String(p.class_index) === q;
  return p.class_name.toLowerCase().indexOf(q) >= 0;
}
function render(q) {
  var list = document.getElementById('results');
  list.innerHTML = '';
  var shown = 0;
  PAGES.forEach(function (p) {
    if (!matches(p, q)) return;
    var li = document.createElement('li');
    var a = document.createElement('a');
    a.href = p.href;
    a.textContent = p.class_name + ' (' + p.class_index + ') ' + p.kind + ' ' + p.key;
    li.appendChild(a);
    var s = document.createElement('span');
    s.className = p.label === 'spurious' ? 'spurious' : (p.label === 'core' ? 'core' : 'muted');
    s.textContent = ' ' + p.label;
    li.appendChild(s);
    list.appendChild(li);
    shown += 1;
  });
  document.getElementById('count').textContent = shown + ' of ' + PAGES.length + ' pages';
}
window.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('q');
  var q = new URLSearchParams(window.location.search).get('q') || '';
  box.value = q;
  box.addEventListener('input', function () { render(box.value); });
  render(q);
});
"""


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

    def page(self, name: str, title: str, body: str) -> None:
        (self.root / "pages" / name).write_text(_html(title, body, css="../style.css"))


def _html(title: str, body: str, css: str, script: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<link rel="stylesheet" href="{css}">{script}</head>\n<body>\n{body}\n</body></html>\n')  # fmt: skip


def _figures(srcs: list[tuple[str, str]]) -> str:
    return "".join(f'<figure><img class="px" src="{s}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
                   for s, c in srcs) or '<p class="muted">none</p>'  # fmt: skip


def _kv(d: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4g}"
    return str(v)


def _df(df: pd.DataFrame) -> str:
    if df is None or df.empty:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def _label_span(label: str) -> str:
    cls = label if label in ("spurious", "core") else "muted"
    return f'<span class="{cls}">{html.escape(label)}</span>'


def _images(imageset, rows) -> np.ndarray:
    return read_rows(imageset, rows)


def feature_page_name(k: int, j: int) -> str:
    return f"feature_c{k}_f{j}.html"


def component_page_name(k: int, c: int) -> str:
    return f"component_c{k}_c{c}.html"


def _feature_pages(w: _Writer, subsets_path, annotations: pd.DataFrame, imageset, noise: pd.DataFrame | None,
                   corruptions: pd.DataFrame | None, n_show: int) -> list[dict]:  # fmt: skip
    """Salient ImageNet: one page per (class, feature) with top / bottom images of D(i,j), their
    NAM heatmaps, feature attacks, annotation and votes, metrics, and classes sharing the feature."""
    from ..discover.nam import heatmap
    from ..discover.subsets import SalientSubsets

    entries = []
    ann = {(int(r.class_index), int(r.feature_index)): r._asdict() for r in annotations.itertuples(index=False)}
    with SalientSubsets(subsets_path) as subsets:
        pairs = subsets.pair_table()
        by_feature = pairs.groupby("feature")["class"].apply(list).to_dict()
        names = subsets.class_names
        for p, row in pairs.iterrows():
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
            a = ann.get((k, j), {})
            label = str(a.get("label", "unannotated"))
            votes = {key: a[key] for key in ("kind", "votes_main", "votes_separate", "votes_background", "n_votes",
                                             "mean_confidence", "source") if key in a}  # fmt: skip
            metrics = {key: row[key] for key in pairs.columns if key not in ("class", "class_name", "feature", "start")}
            noise_t = None
            if noise is not None:
                t = noise[(noise["class_index"] == k) & (noise["feature_index"] == j)]
                if len(t):
                    noise_t = t.pivot_table(index="model", columns="sigma", values="acc").reset_index()
                    noise_t.columns = ["model"] + [f"acc, sigma {c:g}" for c in noise_t.columns[1:]]
            corr_t = None
            if corruptions is not None:
                t = corruptions[(corruptions["class_index"] == k) & (corruptions["feature_index"] == j)]
                if len(t):
                    corr_t = t.pivot_table(index="model", columns="corruption", values="delta").reset_index()
            shared = [c for c in by_feature.get(j, []) if c != k]
            links = " ".join(f'<a href="{feature_page_name(c, j)}">{html.escape(names[c])} ({c})</a>' for c in shared)
            title = f"{names[k]} ({k}), feature {j}"
            body = (f'<p><a href="../index.html">index</a></p><h1>{html.escape(title)}: {_label_span(label)}</h1>'
                    f"<p>Feature rank {int(row['rank'])} of class {html.escape(names[k])}; {len(rows)} images in D(i,j).</p>"
                    f"<h2>Top images</h2>{_figures(top_src)}<h2>Neural activation maps (heatmaps)</h2>{_figures(heat_src)}"
                    f"<h2>Feature attacks</h2>{_figures(att_src)}<h2>Bottom images of D(i,j)</h2>{_figures(bot_src)}"
                    f"<h2>Annotation and votes</h2>{_kv({'label': label, **votes})}<h2>Metrics</h2>{_kv(metrics)}"
                    f"<h2>Accuracy under noise on this feature's region</h2>{_df(noise_t)}"
                    f"<h2>Accuracy change under corruption of this feature's region</h2>{_df(corr_t)}"
                    f"<h2>Other classes with this feature among their top features</h2><p>{links or 'none'}</p>")  # fmt: skip
            name = feature_page_name(k, j)
            w.page(name, title, body)
            entries.append({"class_index": k, "class_name": names[k], "kind": "feature", "key": j, "label": label,
                            "href": f"pages/{name}"})  # fmt: skip
    return entries


def _component_pages(w: _Writer, components_path, pairs: pd.DataFrame, imageset, retrieval: pd.DataFrame | None,
                     retrieved, spufix: pd.DataFrame | None, n_show: int, feature_pages: set) -> list[dict]:  # fmt: skip
    """Spurious ImageNet: one page per (class, component) with its NPFV, Grad-CAMs, top images,
    retrieved cue-only images, annotation, metrics and the class's SpuFix scores."""
    import h5py

    from ..discover.nam import heatmap

    comp_rows = pairs[pairs["kind"] == "component"].set_index(["class", "feature"])
    neurons = pairs[pairs["kind"] != "component"]
    entries = []
    with h5py.File(components_path, "r") as f:
        names = json.loads(f.attrs["class_names"])
        comp = {key: f[key][()] for key in ("class", "component", "npfv", "npfv_cam", "top_rows", "top_cam", "prob")}
    for i, (k, c) in enumerate(zip(comp["class"], comp["component"])):
        k, c = int(k), int(c)
        tag = f"c{k}_k{c}"
        row = comp_rows.loc[(k, c)] if (k, c) in comp_rows.index else None
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
        spu = None
        if spufix is not None:
            spu = spufix[spufix["class"] == k].drop(columns=["class"])
        same_class = [(int(r.feature), str(r.label)) for r in neurons[neurons["class"] == k].itertuples()
                      if feature_page_name(k, int(r.feature)) in feature_pages]  # fmt: skip
        links = " ".join(f'<a href="{feature_page_name(k, j)}">feature {j}</a> {_label_span(lab)}' for j, lab in same_class)
        title = f"{names[k]} ({k}), component {c}"
        body = (f'<p><a href="../index.html">index</a></p><h1>{html.escape(title)}: {_label_span(label)}</h1>'
                f"<h2>NPFV</h2>{_figures(npfv_src)}<h2>Top images</h2>{_figures(top_src)}"
                f"<h2>Grad-CAM heatmaps of the top images</h2>{_figures(cam_src)}"
                f"<h2>Retrieved images (highest alpha, no class object)</h2>{_figures(ret_src)}"
                f"<h2>Annotation and metrics</h2>{_kv({'label': label, **metrics})}"
                f"<h2>Spurious score before / after SpuFix for this class</h2>{_df(spu)}"
                f"<h2>Neurons of this class</h2><p>{links or 'none'}</p>")  # fmt: skip
        # no links to other classes here: component c of one class and of another are unrelated
        # directions (each class has its own PCA), unlike neuron j, which is one feature for all
        name = component_page_name(k, c)
        w.page(name, title, body)
        entries.append({"class_index": k, "class_name": names[k], "kind": "component", "key": c, "label": label,
                        "href": f"pages/{name}"})  # fmt: skip
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
            entries = _feature_pages(w, subsets, pd.read_parquet(annotations), ims, noise_df, corr_df, n_show)
        feature_names = {Path(e["href"]).name for e in entries}
        if components:
            if not (npca_pairs and npca_imageset):
                raise SpurlabError(f"{components}: component pages need --npca-pairs and --npca-imageset")
            with ImageSet(npca_imageset) as ims:
                ret = ImageSet(retrieved) if retrieved else None
                try:
                    entries += _component_pages(w, components, pd.read_parquet(npca_pairs), ims, _read(retrieval), ret,
                                                _read(spufix), n_show, feature_names)  # fmt: skip
                finally:
                    if ret is not None:
                        ret.close()
        entries.sort(key=lambda e: (e["class_index"], e["kind"], e["key"]))
        (tmp / "style.css").write_text(STYLE.lstrip())
        (tmp / "search.js").write_text(SEARCH_JS.lstrip())
        n_feat = sum(e["kind"] == "feature" for e in entries)
        body = ('<h1>spurlab: spurious features by class</h1>'
                f'<p>{n_feat} (class, feature) pages (Salient ImageNet) and {len(entries) - n_feat} (class, component) '
                'pages (Spurious ImageNet). Search by class name or class index.</p>'
                '<p><input id="q" type="search" placeholder="class name or index" autofocus> '
                '<span id="count" class="muted"></span></p><ul id="results"></ul>')  # fmt: skip
        data = json.dumps(entries, sort_keys=True).replace("</", "<\\/")
        script = f'<script>var PAGES = {data};</script><script src="search.js"></script>'
        (tmp / "index.html").write_text(_html("spurlab site", body, css="style.css", script=script))
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
