"""Human annotation of class-feature pairs (Singla & Feizi 2022, "Salient ImageNet", sec. 3.3 and
appendix C; docs/methods.md#annotation).

Each (class, feature) pair becomes one task page: the top images of the class that activate the
feature, their heatmaps, the feature-attack images and the class description, one question (is
the highlighted region the *main object*, a *separate object* or the *background*?), a confidence
1-5 and a reason.

Answers are read in the layout of the published Salient ImageNet MTurk results
(`mturk_results/discover_spurious_features.csv` in github.com/singlasahil14/salient_imagenet):
``WorkerId, Input.wordnet_id, Input.class_index, Input.feature_index, Input.feature_rank,
Answer.main, Answer.confidence, Answer.reasons``. `Answer.main` takes exactly the strings of
`ANSWERS` there; integral float confidences ("4.0", as published) are accepted.

Majority rule (reference `utils.MTurk_Results`): spurious when at least 3 of 5 answers are
`separate_object` or `background`, else core; spurious pairs are sub-listed `background`, else
`separate_object`, else `ambiguous` (the reference's order). With any number of answers
(`human_annotations`, threshold k): spurious or core when one side reaches k, else `undecided`;
fewer than 2k - 1 answers is flagged `few_answers`. Exported pairs nobody answered stay
`unannotated`; answers to pairs that were not exported are counted, not used.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.imagesets import ImageSet
from ..errors import SpurlabError
from ..io import atomic_path, sha256_file, write_json
from ..io.render import render
from ..io.tables import write_table
from .heatmap import heatmap
from .subsets_file import SalientSubsets

ANSWERS = ("main_object", "separate_object", "background")
VOTE_COUNTS = ("votes_main", "votes_separate", "votes_background", "n_votes")
# the annotations table's integer columns (pairs nobody answered have 0 votes, not NaN)
INT_COLUMNS = ("class_index", "feature_index", "feature_rank", *VOTE_COUNTS)
CSV_COLUMNS = (
    "WorkerId",
    "Input.wordnet_id",
    "Input.class_index",
    "Input.feature_index",
    "Input.feature_rank",
    "Answer.main",
    "Answer.confidence",
    "Answer.reasons",
)
VOTE_COLUMNS = (
    "row",
    "worker_id",
    "wordnet_id",
    "class_index",
    "class_name",
    "feature_index",
    "feature_rank",
    "answer",
    "confidence",
    "reasons",
)
ANNOTATION_COLUMNS = (
    "class_index",
    "class_name",
    "feature_index",
    "feature_rank",
    "label",
    "kind",
    "votes_main",
    "votes_separate",
    "votes_background",
    "n_votes",
    "mean_confidence",
    "source",
)
# the human table adds a flag: fewer answers than the 2k - 1 a k-of-(2k - 1) majority needs
HUMAN_COLUMNS = ANNOTATION_COLUMNS + ("few_answers",)
HUMAN_LABELS = ("spurious", "core", "undecided", "unannotated")
EXPORTED_COLUMNS = ("class_index", "class_name", "feature_index", "feature_rank")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
MANIFEST_COLUMNS = ("wordnet_id", "class_index", "class_name", "feature_index", "feature_rank", "page")
MIN_DISPLAY_PX = 128


# ----------------------------------------------------------------------------------------- import


def _as_int(text: str) -> int | None:
    """`text` as an int ("4" or an integral float such as "4.0"), else None."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return None
    return int(x) if math.isfinite(x) and x.is_integer() else None


def _delimiter(path: Path) -> str:
    """The answers file's delimiter, from its header: the one of comma, semicolon and tab whose split
    names the most required columns (a spreadsheet saves with semicolons in comma-decimal locales)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError as e:
        raise SpurlabError(f"{path}: not a readable CSV ({e})") from None
    if not first.strip():
        raise SpurlabError(f"{path}: empty file, expected the MTurk answers layout")
    hits = {}
    for d in DELIMITERS:
        fields = {f.strip() for f in next(csv.reader([first], delimiter=d), [])}
        hits[d] = sum(c in fields for c in CSV_COLUMNS)
    best = max(hits, key=lambda d: hits[d])  # ties: the first, comma
    if hits[best] == 0:
        try:
            found = csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
            found = f"delimiter {DELIMITERS.get(found, repr(found))}"
        except csv.Error:
            found = "no delimiter"
        line = first.strip()
        raise SpurlabError(
            f"{path}: header has none of the required columns ({', '.join(CSV_COLUMNS)}); found {found} in the "
            f"first line '{line[:80]}{'...' if len(line) > 80 else ''}'"
        )
    return best


def _answer_rows(path: Path) -> pd.DataFrame:
    """The answers file as text cells, with its delimiter, required columns and at least one row."""
    if not path.is_file():
        raise SpurlabError(f"{path}: no such answers file")
    sep = _delimiter(path)
    try:
        raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise SpurlabError(f"{path}: empty file, expected the MTurk answers layout") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SpurlabError(f"{path}: not a readable CSV ({e})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in CSV_COLUMNS:
        if col not in raw.columns:
            raise SpurlabError(f"{path}: required column '{col}' missing")
    if raw.empty:
        raise SpurlabError(f"{path}: no answer rows")
    return raw


def read_mturk_csv(
    path: str | os.PathLike, class_names: Sequence[str] | None = None, pairs: set[tuple[int, int]] | None = None
) -> pd.DataFrame:
    """Validated answers, one row per answer, columns `VOTE_COLUMNS`.

    `row` is the row a spreadsheet shows (header = row 1). With `class_names` (the model's classes)
    `class_name` is `class_names[class_index]` and a class index beyond them is an error; without
    (a standalone import) any class index >= 0 is taken and named by its `Input.wordnet_id`, else
    by the index as text. With `pairs` (a (class_index, feature_index) set) an answer to any other
    pair is an error; the annotation stages pass none and count such answers instead
    (`human_annotations`). The delimiter (comma, semicolon or tab) is taken from the header;
    `Input.wordnet_id` is kept as given (our benchmark has names, not WordNet ids); extra columns
    are ignored.
    """
    path = Path(path)
    raw = _answer_rows(path)
    n_classes = None if class_names is None else len(class_names)
    out: dict[str, list] = {c: [] for c in VOTE_COLUMNS}
    seen: dict[tuple[str, int, int], int] = {}
    rank_of: dict[tuple[int, int], tuple[int, int]] = {}
    cols = [raw[c].tolist() for c in CSV_COLUMNS]
    for i, (worker, wnid, c_txt, f_txt, r_txt, answer, conf_txt, reasons) in enumerate(zip(*cols)):
        row = i + 2
        where = f"{path}: row {row}"
        worker = worker.strip()
        if not worker:
            raise SpurlabError(f"{where}: empty WorkerId")
        c = _as_int(c_txt)
        if n_classes is None:
            if c is None or c < 0:
                raise SpurlabError(f"{where}: Input.class_index '{c_txt}' is not a non-negative integer")
        elif c is None or not 0 <= c < n_classes:
            raise SpurlabError(f"{where}: Input.class_index '{c_txt}' is not a class index in 0..{n_classes - 1}")
        f = _as_int(f_txt)
        if f is None or f < 0:
            raise SpurlabError(f"{where}: Input.feature_index '{f_txt}' is not a non-negative integer")
        if pairs is not None and (c, f) not in pairs:
            raise SpurlabError(f"{where}: unknown feature {f} for class {c} (not an exported pair)")
        r = _as_int(r_txt)
        if r is None or r < 1:
            raise SpurlabError(f"{where}: Input.feature_rank '{r_txt}' is not a positive integer")
        first = rank_of.setdefault((c, f), (r, row))
        if first[0] != r:
            raise SpurlabError(
                f"{where}: Input.feature_rank {r} for class {c} feature {f} differs from row {first[1]} ({first[0]})"
            )
        answer = answer.strip()
        if answer not in ANSWERS:
            raise SpurlabError(f"{where}: Answer.main '{answer}' is not one of {', '.join(ANSWERS)}")
        conf = _as_int(conf_txt)
        if conf is None or not 1 <= conf <= 5:
            raise SpurlabError(f"{where}: Answer.confidence '{conf_txt}' is not an integer in 1..5")
        prev = seen.setdefault((worker, c, f), row)
        if prev != row:
            raise SpurlabError(f"{where}: worker '{worker}' already answered class {c} feature {f} in row {prev}")
        name = class_names[c] if class_names is not None else (wnid.strip() or str(c))
        for key, value in (
            ("row", row),
            ("worker_id", worker),
            ("wordnet_id", wnid.strip()),
            ("class_index", c),
            ("class_name", name),
            ("feature_index", f),
            ("feature_rank", r),
            ("answer", answer),
            ("confidence", conf),
            ("reasons", reasons),
        ):
            out[key].append(value)
    df = pd.DataFrame(out)
    for col in ("row", "class_index", "feature_index", "feature_rank", "confidence"):
        df[col] = df[col].astype("int64")
    return df


def _threshold(min_spurious_votes) -> int:
    if (
        isinstance(min_spurious_votes, bool)
        or not isinstance(min_spurious_votes, (int, np.integer))
        or min_spurious_votes < 1
    ):
        raise SpurlabError(f"min_spurious_votes: {min_spurious_votes!r} is not a positive integer")
    return int(min_spurious_votes)


def exported_pairs(pair_table: pd.DataFrame) -> pd.DataFrame:
    """The exported pairs (`EXPORTED_COLUMNS`) of a subsets file's or NPCA pair table (columns
    class, class_name, feature, rank)."""
    return pd.DataFrame({
        "class_index": pair_table["class"].astype("int64").to_numpy(),
        "class_name": pair_table["class_name"].astype(str).to_numpy(),
        "feature_index": pair_table["feature"].astype("int64").to_numpy(),
        "feature_rank": pair_table["rank"].astype("int64").to_numpy(),
    })  # fmt: skip


def _pair_list(keys) -> list[str]:
    return [f"{c}/{f}" for c, f in sorted(keys)]


def _vote_counts(votes: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per answered (class_index, feature_index): the answer counts, mean confidence, first row,
    and the majority rule's label, kind and few_answers at threshold k."""
    need = ("class_index", "class_name", "feature_index", "feature_rank", "answer", "confidence")
    for col in need:
        if col not in votes.columns:
            raise SpurlabError(f"votes: column '{col}' missing")
    bad = ~votes["answer"].isin(ANSWERS)
    if bad.any():
        raise SpurlabError(f"votes: answer '{votes['answer'][bad].iloc[0]}' is not one of {', '.join(ANSWERS)}")
    v = votes.assign(
        _m=(votes["answer"] == "main_object").astype("int64"),
        _s=(votes["answer"] == "separate_object").astype("int64"),
        _b=(votes["answer"] == "background").astype("int64"),
        _c=votes["confidence"].astype("float64"),
        _r=votes["row"].astype("int64") if "row" in votes.columns else np.int64(-1),
    )
    agg = v.groupby(["class_index", "feature_index"], as_index=False, sort=True).agg(
        class_name=("class_name", "first"),
        feature_rank=("feature_rank", "first"),
        votes_main=("_m", "sum"),
        votes_separate=("_s", "sum"),
        votes_background=("_b", "sum"),
        n_votes=("answer", "size"),
        mean_confidence=("_c", "mean"),
        first_row=("_r", "min"),
    )
    agg["class_index"] = agg["class_index"].astype("int64")
    agg["feature_index"] = agg["feature_index"].astype("int64")
    spurious = (agg["votes_separate"] + agg["votes_background"]) >= k
    core = ~spurious & (agg["votes_main"] >= k)
    agg["label"] = np.select([spurious, core], ["spurious", "core"], default="undecided")
    agg["kind"] = np.select(
        [agg["votes_background"] >= k, agg["votes_separate"] >= k, spurious, core],
        ["background", "separate_object", "ambiguous", "main_object"],
        default="undecided",
    )
    agg["few_answers"] = agg["n_votes"] < 2 * k - 1
    return agg


def _pairs_table(agg: pd.DataFrame, exported: pd.DataFrame | None, answered: set) -> tuple[pd.DataFrame, set]:
    """The table's rows (every exported pair, unanswered ones "unannotated"; without `exported`
    every answered pair) in `HUMAN_COLUMNS`, and the exported keys."""
    if exported is None:
        table, exp_keys = agg, answered
    else:
        for col in EXPORTED_COLUMNS:
            if col not in exported.columns:
                raise SpurlabError(f"exported pairs: column '{col}' missing")
        exp = pd.DataFrame({
            "class_index": exported["class_index"].astype("int64").to_numpy(),
            "class_name": exported["class_name"].astype(str).to_numpy(),
            "feature_index": exported["feature_index"].astype("int64").to_numpy(),
            "feature_rank": exported["feature_rank"].astype("int64").to_numpy(),
        })  # fmt: skip
        dup = exp.duplicated(["class_index", "feature_index"])
        if dup.any():
            d = exp[dup].iloc[0]
            raise SpurlabError(f"exported pairs: class {d['class_index']} feature {d['feature_index']} listed twice")
        exp_keys = set(zip(exp["class_index"].tolist(), exp["feature_index"].tolist()))
        # the exported pair's name and rank are the ones this model and image set have
        table = exp.merge(agg.drop(columns=["class_name", "feature_rank"]), on=["class_index", "feature_index"],
                          how="left", validate="one_to_one")  # fmt: skip
        none = table["n_votes"].isna()
        for col in VOTE_COUNTS:
            table[col] = table[col].fillna(0)
        table.loc[none, ["label", "kind"]] = "unannotated"
        table["few_answers"] = table["few_answers"].eq(True)  # unanswered: NaN after the merge
    for col in INT_COLUMNS:
        table[col] = table[col].astype("int64")
    table["mean_confidence"] = table["mean_confidence"].astype("float64")
    table["source"] = "human"
    table = table.sort_values(["class_index", "feature_rank", "feature_index"], kind="stable")
    table = table[list(HUMAN_COLUMNS)].reset_index(drop=True)
    return table, exp_keys


def _coverage(votes: pd.DataFrame, agg: pd.DataFrame, table: pd.DataFrame, answered: set, exp_keys: set) -> dict:
    """How much of the exported pairs was answered, and which answers fall outside them."""
    outside = agg[[key not in exp_keys for key in zip(agg["class_index"], agg["feature_index"])]]
    both = answered & exp_keys
    return {
        "exported": len(exp_keys),
        "answered": len(answered),
        "answered_and_exported": len(both),
        "exported_unanswered": len(exp_keys - answered),
        "exported_unanswered_pairs": _pair_list(exp_keys - answered),
        "answered_not_exported": len(outside),
        "answered_not_exported_pairs": _pair_list(zip(outside["class_index"], outside["feature_index"])),
        "answered_not_exported_first_row": int(outside["first_row"].min())
        if len(outside) and "row" in votes.columns
        else None,
        "answers": int(len(votes)),
        "answers_not_exported": int(outside["n_votes"].sum()),
        "few_answers": _pair_list(
            zip(table.loc[table["few_answers"], "class_index"], table.loc[table["few_answers"], "feature_index"])
        ),  # fmt: skip
        "coverage": len(both) / len(exp_keys) if exp_keys else 0.0,
    }


def human_annotations(
    votes: pd.DataFrame, exported: pd.DataFrame | None = None, min_spurious_votes: int = 3
) -> tuple[pd.DataFrame, dict]:
    """The human annotations table (`HUMAN_COLUMNS`, source "human") and its coverage: the one
    majority rule of every human-annotation path (Singla & Feizi 2022, sec. 3.3).

    `votes`: `read_mturk_csv`'s frame (needs class_index, class_name, feature_index, feature_rank,
    answer, confidence; `row` names where unexported answers start). `exported`: the exported pairs
    (`EXPORTED_COLUMNS`, e.g. `exported_pairs(subsets.pair_table())`), or None for a standalone
    import, where every answered pair counts. With k = `min_spurious_votes` (paper 3): spurious when
    separate_object + background answers >= k (kind "background" / "separate_object" when that
    answer alone reaches k, background checked first, else "ambiguous"); core (kind "main_object")
    when main_object answers >= k; otherwise label and kind "undecided". `few_answers`: answered
    with fewer than 2k - 1 answers (every undecided pair is). Exported pairs without answers are
    kept with label and kind "unannotated", no votes; answered pairs that were not exported are
    left out of the table. Sorted by class_index, feature_rank, feature_index.

    Coverage (JSON-ready): exported, answered, answered_and_exported, exported_unanswered (+
    `_pairs`, "class_index/feature_index"), answered_not_exported (+ `_pairs`, `_first_row`, and
    `answers_not_exported`, their answer rows), few_answers (pairs), answers, coverage (the
    fraction of exported pairs answered).
    """
    k = _threshold(min_spurious_votes)
    agg = _vote_counts(votes, k)
    answered = set(zip(agg["class_index"].tolist(), agg["feature_index"].tolist()))
    table, exp_keys = _pairs_table(agg, exported, answered)
    return table, _coverage(votes, agg, table, answered=answered, exp_keys=exp_keys)


def check_coverage(coverage: dict, min_coverage: float, answers, key: str = "salient.annotation.min_coverage") -> None:
    """Refuse, naming config `key`, the counts and the answers file, when fewer than `min_coverage`
    of the exported pairs have answers."""
    if coverage["coverage"] + 1e-12 >= float(min_coverage):
        return
    msg = (f"config key {key}: {coverage['answered_and_exported']} of {coverage['exported']} exported pairs "
           f"({coverage['coverage']:.1%}) have answers in {answers}, below {float(min_coverage):g}")  # fmt: skip
    if coverage["exported_unanswered_pairs"]:
        msg += f"; first unanswered class/feature {coverage['exported_unanswered_pairs'][0]}"
    if coverage["answered_not_exported"]:
        # answers to other pairs usually mean the file was made for another model or top-k
        msg += f"; {coverage['answered_not_exported']} answered pair(s) were not exported"
        if coverage["answered_not_exported_first_row"] is not None:
            msg += f", the first at {answers}: row {coverage['answered_not_exported_first_row']}"
    raise SpurlabError(msg)


def majority_annotations(votes: pd.DataFrame, min_spurious_votes: int = 3) -> pd.DataFrame:
    """The annotations table (`ANNOTATION_COLUMNS`, source "human") of every answered pair: the
    rule of `human_annotations` without exported pairs (on 5 answers per pair and the paper's
    k = 3: spurious when separate_object + background answers >= k, core otherwise; kind
    "background" / "separate_object" when that answer alone reaches k, background checked first as
    in the reference, else "ambiguous"; core pairs have kind "main_object"). Sorted by
    class_index, feature_rank.
    """
    table, _ = human_annotations(votes, None, min_spurious_votes)
    return table[list(ANNOTATION_COLUMNS)]


def annotation_counts(table: pd.DataFrame) -> dict:
    """Pairs per label of an annotations table, and how many classes have a spurious pair."""
    label = table["label"]
    out = {"pairs": int(len(table))}
    out.update({lab: int((label == lab).sum()) for lab in HUMAN_LABELS})
    out["classes_with_spurious"] = int(table.loc[label == "spurious", "class_index"].nunique())
    return out


def run_import_annotations(csv_path, out, subsets_path=None, summary_path=None, min_spurious_votes: int = 3) -> dict:
    """`spurlab import-annotations`: an annotations table from answers in the MTurk layout (the
    published Salient ImageNet file or a partial one), standalone or against a subsets file's
    exported pairs (`subsets_path`: its pairs, class names and hash, so the table can stand in for
    the `annotations` rule's), with an optional JSON summary (label counts; coverage with subsets).
    """
    names, exported = None, None
    provenance = {"source": "human", "min_spurious_votes": min_spurious_votes}
    if subsets_path is not None:
        with SalientSubsets(subsets_path) as subsets:
            names, exported = subsets.class_names, exported_pairs(subsets.pair_table())
        provenance["subsets_sha256"] = sha256_file(subsets_path)
    votes = read_mturk_csv(csv_path, names)
    table, coverage = human_annotations(votes, exported, min_spurious_votes)
    provenance["human_csv_sha256"] = sha256_file(csv_path)
    if exported is not None:
        provenance["coverage"] = coverage
    write_table(table, out, provenance)
    info = annotation_counts(table)
    info["few_answers"] = len(coverage["few_answers"])
    info["answers"] = coverage["answers"]
    info["kinds"] = {str(k): int(n) for k, n in table.loc[table["label"] == "spurious", "kind"].value_counts().items()}
    info["min_spurious_votes"] = min_spurious_votes
    info["inputs"] = {"human_csv_sha256": provenance["human_csv_sha256"], "annotations_sha256": sha256_file(out)}
    if exported is not None:
        info["coverage"] = coverage
        info["inputs"]["subsets_sha256"] = provenance["subsets_sha256"]
    if summary_path is not None:
        write_json(summary_path, info)
    return info


# ----------------------------------------------------------------------------------------- export


@dataclass
class AnnotationTask:
    """One (class, feature) pair to annotate: T top images (uint8), their NAMs in [0, 1], attacks."""

    class_index: int
    class_name: str
    feature_index: int
    feature_rank: int
    images: np.ndarray  # uint8 (T, H, W, 3)
    nams: np.ndarray  # float (T, H, W) in [0, 1]
    attacks: np.ndarray | None = None  # uint8 (T, H, W, 3)
    wordnet_id: str = ""

    @property
    def page(self) -> str:
        return f"class{int(self.class_index):04d}_feature{int(self.feature_index):05d}.html"


def _check_task(task: AnnotationTask, where: str) -> None:
    for name, low in (("class_index", 0), ("feature_index", 0), ("feature_rank", 1)):
        x = getattr(task, name)
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
            raise SpurlabError(f"{where}: {name} {x!r} is not an integer >= {low}")
    if not isinstance(task.class_name, str) or not isinstance(task.wordnet_id, str):
        raise SpurlabError(f"{where}: class_name and wordnet_id must be strings")
    img, nam = np.asarray(task.images), np.asarray(task.nams)
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[-1] != 3 or img.shape[0] < 1:
        raise SpurlabError(f"{where}: images must be uint8 (T, H, W, 3) with T >= 1, got {img.dtype} {img.shape}")
    if nam.shape != img.shape[:3]:
        raise SpurlabError(f"{where}: nams shape {nam.shape} does not match images {img.shape[:3]}")
    if (
        not np.issubdtype(nam.dtype, np.floating)
        or not np.isfinite(nam).all()
        or nam.min() < -1e-6
        or nam.max() > 1 + 1e-6
    ):
        raise SpurlabError(f"{where}: nams must be finite floats in [0, 1]")
    if task.attacks is not None:
        att = np.asarray(task.attacks)
        if att.dtype != np.uint8 or att.shape != img.shape:
            raise SpurlabError(f"{where}: attacks must be uint8 {img.shape} like images, got {att.dtype} {att.shape}")


def _png_uri(rgb: np.ndarray) -> str:
    """Base64 PNG data URI of a uint8 (H, W, 3) image, upscaled (nearest) to >= MIN_DISPLAY_PX."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(rgb))
    s = max(1, math.ceil(MIN_DISPLAY_PX / max(1, min(im.size))))
    if s > 1:
        im = im.resize((im.width * s, im.height * s), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)  # no tIME/text chunks: same pixels -> same bytes
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render_page(task: AnnotationTask, description: str) -> str:
    images, nams = np.asarray(task.images), np.clip(np.asarray(task.nams, dtype=np.float64), 0, 1)
    return render(
        "tasks/task.html.j2", class_name=task.class_name, class_index=int(task.class_index),
        feature_index=int(task.feature_index), feature_rank=int(task.feature_rank), wordnet_id=task.wordnet_id,
        description=description, images=[_png_uri(a) for a in images],
        heatmaps=[_png_uri(heatmap(images[t], nams[t])) for t in range(len(images))],
        attacks=None if task.attacks is None else [_png_uri(a) for a in np.asarray(task.attacks)],
        stem=task.page[: -len(".html")],
    )  # fmt: skip


def _describe(descriptions, class_index: int) -> str:
    if descriptions is None:
        return ""
    if isinstance(descriptions, Mapping):
        return str(descriptions.get(class_index, "") or "")
    return str(descriptions[class_index]) if 0 <= class_index < len(descriptions) else ""


def export_tasks(
    out_dir: str | os.PathLike,
    tasks: Iterable[AnnotationTask],
    class_descriptions: Mapping[int, str] | Sequence[str] | None = None,
) -> None:
    """Write one self-contained HTML page per task, `index.html` and `manifest.csv` into `out_dir`.

    Tasks are streamed: each is validated, rendered in memory and written atomically before the next
    is read. `manifest.csv` and `index.html` from an earlier export are removed first and written
    last, so they exist only when every page was written. Same input -> same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("manifest.csv", "index.html"):
        (out_dir / stale).unlink(missing_ok=True)
    rows: list[dict] = []
    pages: dict[tuple[int, int], str] = {}
    for task in tasks:
        page = out_dir / task.page
        where = f"{page}: class {task.class_index} feature {task.feature_index}"
        _check_task(task, where)
        key = (int(task.class_index), int(task.feature_index))
        if key in pages:
            raise SpurlabError(f"{where}: exported twice")
        pages[key] = task.page
        text = _render_page(task, _describe(class_descriptions, key[0]))
        with atomic_path(page) as tmp:
            tmp.write_text(text, encoding="utf-8")
        rows.append(
            dict(
                wordnet_id=task.wordnet_id,
                class_index=key[0],
                class_name=str(task.class_name),
                feature_index=key[1],
                feature_rank=int(task.feature_rank),
                page=task.page,
            )
        )
    if not rows:
        raise SpurlabError(f"{out_dir}: no annotation tasks to export")
    rows.sort(key=lambda d: (d["class_index"], d["feature_rank"], d["feature_index"]))

    with atomic_path(out_dir / "manifest.csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)

    groups: dict[int, list[dict]] = {}
    for d in rows:
        groups.setdefault(d["class_index"], []).append(d)
    classes = [(c, group[0]["class_name"], group) for c, group in sorted(groups.items())]
    index = render("tasks/index.html.j2", n_pairs=len(rows), classes=classes)
    with atomic_path(out_dir / "index.html") as tmp:
        tmp.write_text(index, encoding="utf-8")


def run_annotation_tasks(subsets_path: str | os.PathLike, imageset_path: str | os.PathLike, out_dir) -> int:
    """Stage `annotation_tasks`: a task page per pair of a subsets file (its top images, NAMs,
    feature attacks), with the image set's WordNet ids where it has them."""
    imageset = ImageSet(imageset_path)
    wnids = imageset.attrs.get("wnids") or []
    with SalientSubsets(subsets_path) as subsets:
        if subsets.attrs["imageset_sha256"] != imageset.sha256:
            raise SpurlabError(f"{subsets_path}: built from another image set than {imageset_path}; rebuild it")
        top, names = int(subsets.attrs["top_images"]), subsets.class_names

        def tasks():
            for p, row in subsets.pair_table().iterrows():
                m = subsets.members(p)
                rows = m["row"][:top]
                images = imageset.images(np.sort(rows))[np.argsort(np.argsort(rows))]
                yield AnnotationTask(
                    int(row["class"]), names[int(row["class"])], feature_index=int(row["feature"]),
                                     feature_rank=int(row["rank"]),
                    images=images, nams=m["nam"][:top], attacks=subsets.attacks(p),
                    wordnet_id=wnids[int(row["class"])] if len(wnids) > int(row["class"]) else "",
                )  # fmt: skip

        export_tasks(out_dir, tasks())
    return len(subsets)
