"""Bad values, config files and job failures (issue #31): non-finite or out-of-range numbers in a
config or a CLI float option, config files that are not UTF-8 or give a key twice, a model
directory given for another model, unreadable checkpoint files and bad --arch-args of
import-checkpoint, and training that fails part-way. Every case goes through the `spurlab` CLI
(and, where the rule applies while Snakemake builds the DAG, through `snakemake`) and must end
with a non-zero exit, exactly one line `spurlab: error: ...` naming the culprit (file, key or
option), no traceback, and nothing left where the output would have been.

Known limit: Snakemake reads --configfile files itself before the Snakefile runs and answers a
file that is not UTF-8 with its own traceback; `make run` / `make dry-run` validate the config
with `spurlab validate-config` first (one line), and the CLI cases below cover the message."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, load_yaml, salient_stages
from tests.reliability.test_bad_inputs import assert_refused, run_spurlab

TINY = ROOT / "config" / "tiny.yaml"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """tiny.yaml's test set, a seeded toy model ('m') and its Salient ImageNet files (as in
    test_bad_inputs.py); the same model's directory relabelled as robust_tiny; a valid
    state-dict checkpoint of cbr_tiny (width 8, 4 classes)."""
    import torch

    from spurlab.models.factory import create_model

    d = tmp_path_factory.mktemp("bad_values")
    salient_stages(d, top_k=1, max_images=2, top_images=1)
    other = d / "robust_tiny"
    shutil.copytree(d / "model", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(dict(meta, name="robust_tiny")))
    torch.save(create_model("cbr_tiny", 4, width=8).state_dict(), d / "good.pt")
    return d


def tiny_text(edit=None, extra: str = "") -> str:
    """tiny.yaml as YAML text, edited; `extra` is appended (a duplicate key's second line)."""
    cfg = load_yaml("tiny.yaml")
    if edit:
        edit(cfg)
    return yaml.safe_dump(cfg, sort_keys=True) + extra


def write_cfg(path: Path, edit) -> Path:
    path.write_text(tiny_text(edit))
    return path


def duplicate_train_lr() -> str:
    """train: written last, with lr given a second time."""
    cfg = load_yaml("tiny.yaml")
    train = cfg.pop("train")
    block = yaml.safe_dump({"train": train}, sort_keys=True)
    return yaml.safe_dump(cfg, sort_keys=True) + block + "  lr: 0.5\n"


def duplicate_in_flow_mapping() -> str:
    """A key twice inside a flow mapping, deep in the tree."""
    text = tiny_text()
    needle = "    cue_table:\n      cross:\n"
    assert needle in text
    return text.replace(needle, needle + "        p_in_class: 0.7\n", 1)


def _set(cfg: dict, path: tuple, value) -> None:
    *parents, last = path
    for k in parents:
        cfg = cfg[k]
    cfg[last] = value


def set_value(path: tuple, value):
    return lambda cfg: _set(cfg, path, value)


def append_value(path: tuple, value):
    def edit(cfg):
        node = cfg
        for k in path:
            node = node[k]
        node.append(value)

    return edit


# ------------------------------------------------------------------------------------------------
# Each case: (fx, tmp) -> (argv after `spurlab`, culprit text the one line must contain, output paths
# that must not exist afterwards).


def noise_argv(fx, cfg, model, model_dir, out) -> list:
    return ["noise", "--config", str(cfg), "--model", model, "--model-dir", str(model_dir), "--imageset", str(fx / "test.h5"),
            "--subsets", str(fx / "sub.h5"), "--annotations", str(fx / "ann.parquet"), "--masks", str(fx / "masks.h5"),
            "--out", str(out), "--device", "cpu", "--quiet"]  # fmt: skip


def _make_set_case(edit, culprit, set_name="train"):
    """A config value refused while the config is read: make-set writes no image set."""

    def case(fx, tmp):
        cfg = write_cfg(tmp / "c.yaml", edit)
        out = tmp / f"{set_name}.h5"
        return ["make-set", "--config", str(cfg), "--set", set_name, "--out", str(out), "--quiet"], culprit, [out]

    return case


# non-finite numbers: NaN passes jsonschema's minimum/maximum, inf its exclusiveMinimum
def case_nan_noise_sigma(fx, tmp):  # the example: noise wrote rows with sigma NaN
    cfg = write_cfg(tmp / "c.yaml", append_value(("salient", "noise", "sigmas"), NAN))
    out = tmp / "noise.parquet"
    return (
        noise_argv(fx, cfg, "m", fx / "model", out),
        "config key salient.noise.sigmas[3]: nan",
        [out, tmp / "noise.csv"],
    )


def case_inf_train_lr(fx, tmp):  # the example: passed validation, the train job failed
    cfg = write_cfg(tmp / "c.yaml", set_value(("train", "lr"), INF))
    out = tmp / "model"
    argv = ["train", "--config", str(cfg), "--model", "erm_tiny", "--train-set", str(fx / "test.h5"),
            "--val-set", str(fx / "test.h5"), "--out-dir", str(out), "--threads", "1"]  # fmt: skip
    return argv, "config key train.lr: inf is not a finite number", [out]


case_nan_blur_sigma = _make_set_case(set_value(("contamination", "signals", "blur", "sigma"), NAN),
                                     "config key contamination.signals.blur.sigma: nan", "contam_blur_train")  # fmt: skip
case_nan_probability = _make_set_case(set_value(("datasets", "cue_table", "disk", "p_in_class"), NAN),
                                      "config key datasets.cue_table.disk.p_in_class: nan")  # fmt: skip
case_nan_object_scale = _make_set_case(set_value(("datasets", "object", "scale"), [0.3, NAN]),
                                       "config key datasets.object.scale[1]: nan")  # fmt: skip
case_nan_tag_size = _make_set_case(set_value(("datasets", "cues", "hospital_tag", "size"), [NAN, 0.25]),
                                   "config key datasets.cues.hospital_tag.size[0]: nan")  # fmt: skip
case_minus_inf_pixel_noise = _make_set_case(
    set_value(("datasets", "pixel_noise"), -INF), "config key datasets.pixel_noise: -inf"
)
case_inf_lightweight_lr = _make_set_case(
    set_value(("lightweight", "head", "lr"), INF), "config key lightweight.head.lr: inf"
)
case_nan_l2_match_sigma = _make_set_case(set_value(("salient", "noise", "l2_match_sigmas"), [0.3, NAN]),
                                         "config key salient.noise.l2_match_sigmas[1]: nan")  # fmt: skip
case_inf_robust_eps = _make_set_case(set_value(("models", "robust_tiny", "robust", "eps_224"), INF),
                                     "config key models.robust_tiny.robust.eps_224: inf")  # fmt: skip
case_nan_model_lr_override = _make_set_case(set_value(("models", "erm_tiny", "train"), {"lr": NAN}),
                                            "config key models.erm_tiny.train.lr: nan")  # fmt: skip
# out of range
case_negative_noise_sigma = _make_set_case(set_value(("salient", "noise", "sigmas"), [0, -0.25]),
                                           "config key salient.noise.sigmas[1]: -0.25 is less than the minimum of 0")  # fmt: skip
case_negative_blur_sigma = _make_set_case(set_value(("contamination", "signals", "blur", "sigma"), -1.0),
                                          "config key contamination.signals.blur.sigma: -1.0", "contam_blur_train")  # fmt: skip
case_zero_tuning_lr = _make_set_case(set_value(("spuriosity", "tuning", "lr"), 0),
                                     "config key spuriosity.tuning.lr: 0 is less than or equal to the minimum of 0")  # fmt: skip


# config files
def _file_case(make_bytes, culprit_of):
    def case(fx, tmp):
        cfg = tmp / "c.yaml"
        cfg.write_bytes(make_bytes())
        out = tmp / "train.h5"
        return (
            ["make-set", "--config", str(cfg), "--set", "train", "--out", str(out), "--quiet"],
            culprit_of(cfg),
            [out],
        )

    return case


case_utf16_config = _file_case(
    lambda: tiny_text().encode("utf-16"), lambda p: f"{p}: not UTF-8 text (byte 0xff on line 1"
)
case_latin1_config = _file_case(lambda: (tiny_text() + "# caf\xe9 au lait\n").encode("latin-1"),
                                lambda p: f"{p}: not UTF-8 text (byte 0xe9 on line ")  # fmt: skip
case_binary_config = _file_case(lambda: gzip.compress(tiny_text().encode(), mtime=0), lambda p: f"{p}: not UTF-8 text")


def seed_lines() -> str:
    """The two lines of `seed` in tiny_text(extra="seed: 5")."""
    lines = tiny_text().splitlines()
    return f"(lines {lines.index('seed: 0') + 1} and {len(lines) + 1};"


case_duplicate_top_level_key = _file_case(lambda: tiny_text(extra="seed: 5\n").encode(),
                                          lambda p: f"{p}: duplicate key seed {seed_lines()}")  # fmt: skip
case_duplicate_nested_key = _file_case(
    lambda: duplicate_train_lr().encode(), lambda p: f"{p}: duplicate key train.lr (lines "
)
case_duplicate_key_in_flow_mapping = _file_case(lambda: duplicate_in_flow_mapping().encode(),
                                                lambda p: f"{p}: duplicate key lightweight.datasets.cue_table.cross.p_in_class")  # fmt: skip


def case_duplicate_key_in_second_config(fx, tmp):
    over = tmp / "over.yaml"
    over.write_text("train:\n  epochs: 2\n  epochs: 3\n")
    out = tmp / "train.h5"
    argv = ["make-set", "--config", str(TINY), str(over), "--set", "train", "--out", str(out), "--quiet"]
    return argv, f"{over}: duplicate key train.epochs (lines 2 and 3", [out]


# a model directory given for another model (meta.json's name)
def case_noise_model_dir_of_another_model(fx, tmp):
    out = tmp / "noise.parquet"
    return (
        noise_argv(fx, TINY, "erm_tiny", fx / "robust_tiny", out),
        f"{fx / 'robust_tiny'}: holds model 'robust_tiny'",
        [out],
    )


def case_corruptions_model_dir_of_another_model(fx, tmp):
    out = tmp / "corruptions.parquet"
    argv = noise_argv(fx, TINY, "erm_tiny", fx / "robust_tiny", out)
    argv[0] = "corruptions"
    return argv, f"{fx / 'robust_tiny'}: holds model 'robust_tiny'", [out]


def case_head_tuning_model_dir_of_another_model(fx, tmp):
    out = tmp / "tuning.parquet"
    argv = ["head-tuning", "--config", str(TINY), "--model", "erm_tiny", "--model-dir", str(fx / "robust_tiny"),
            "--rankings", str(tmp / "rankings.parquet"), "--train-features", str(fx / "f.h5"),
            "--val-features", str(fx / "f.h5"), "--out", str(out)]  # fmt: skip
    return argv, "as --model says", [out]


def case_spurious_gaps_model_dir_of_another_model(fx, tmp):
    outs = [tmp / "gaps.parquet", tmp / "gap_models.parquet", tmp / "gap_corr.parquet"]
    argv = ["spurious-gaps", "--config", str(TINY), "--rankings", str(tmp / "rankings.parquet"),
            "--models", "m", "erm_tiny", "--model-dirs", str(fx / "model"), str(fx / "robust_tiny"),
            "--features", str(fx / "f.h5"), str(fx / "f.h5"),
            "--out", str(outs[0]), "--out-models", str(outs[1]), "--out-correlations", str(outs[2])]  # fmt: skip
    return argv, f"{fx / 'robust_tiny'}: holds model 'robust_tiny' (meta.json name), not 'erm_tiny'", outs


def case_label_noise_model_dir_of_another_model(fx, tmp):
    out = tmp / "label_noise.parquet"
    argv = ["label-noise", "--config", str(TINY), "--rankings", str(tmp / "r.parquet"), "--gaps", str(tmp / "g.parquet"),
            "--annotations", str(fx / "ann.parquet"), "--imageset", str(fx / "test.h5"),
            "--discovery-dir", str(fx / "model"), "--models", "erm_tiny", "--model-dirs", str(fx / "robust_tiny"),
            "--out", str(out), "--figure", str(tmp / "label_noise.png")]  # fmt: skip
    return argv, f"{fx / 'robust_tiny'}: holds model 'robust_tiny'", [out, tmp / "label_noise.png"]


def case_npca_spufix_model_dir_of_another_model(fx, tmp):
    out = tmp / "spufix.parquet"
    f = str(fx / "f.h5")
    argv = ["npca-spufix", "--config", str(TINY), "--models", "erm_tiny", "--model-dirs", str(fx / "robust_tiny"),
            "--train-features", f, "--test-features", f, "--cue-only-features", f, "--pool-sets", "test",
            "--pool-features", f, "--cue-only-set", str(fx / "test.h5"), "--bases", str(tmp / "b.h5"),
            "--pairs", str(tmp / "p.parquet"), "--retrieval", str(tmp / "r.parquet"), "--harmful", str(tmp / "h.parquet"),
            "--out", str(out), "--out-models", str(tmp / "spufix_models.parquet")]  # fmt: skip
    return argv, f"{fx / 'robust_tiny'}: holds model 'robust_tiny'", [out, tmp / "spufix_models.parquet"]


def case_bam_verify_model_dir_of_another_model(fx, tmp):
    out = tmp / "verify.parquet"
    argv = ["bam-verify", "--config", str(TINY), "--models", "f_o", "--model-dirs", str(fx / "robust_tiny"),
            "--set-names", "bam_os_test", "--imagesets", str(fx / "test.h5"), "--out", str(out)]  # fmt: skip
    return argv, "not 'f_o' as --models says", [out]


def case_posthoc_scores_model_dir_of_another_model(fx, tmp):
    out = tmp / "scores.parquet"
    argv = ["posthoc-scores", "--config", str(TINY), "--models", "normal", "--model-dirs", str(fx / "robust_tiny"),
            "--set-names", "contam_clean_test", "--imagesets", str(fx / "test.h5"), "--out", str(out)]  # fmt: skip
    return argv, "not 'normal' as --models says", [out]


# import-checkpoint: unreadable files, --arch-args
def _import_case(make_file, culprit_of, *extra):
    def case(fx, tmp):
        ck = make_file(fx, tmp)
        out = tmp / "imported"
        argv = ["import-checkpoint", "--model", "m", "--checkpoint", str(ck), "--layout", "state_dict", "--arch", "cbr_tiny",
                "--num-classes", "4", "--input-size", "32", "--out-dir", str(out), *extra]  # fmt: skip
        return argv, culprit_of(ck), [out]

    return case


def _bytes_file(name, data: bytes):
    def make(fx, tmp):
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def _truncated_pt(fx, tmp):
    data = (fx / "good.pt").read_bytes()
    (tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp / "cut.pt"


def _good_pt(fx, tmp):
    return fx / "good.pt"


case_empty_checkpoint = _import_case(
    _bytes_file("empty.pt", b""), lambda p: f"{p}: cannot be read as a torch checkpoint: empty file"
)
case_text_checkpoint = _import_case(_bytes_file("notes.pt", b"weights are on the other disk\n"),
                                    lambda p: f"{p}: cannot be read as a torch checkpoint: not a torch file")  # fmt: skip
case_truncated_checkpoint = _import_case(
    _truncated_pt, lambda p: f"{p}: cannot be read as a torch checkpoint: damaged or truncated"
)
case_arch_args_bad_json = _import_case(_good_pt, lambda p: "--arch-args: not valid YAML", "--arch-args", '{"width": 8')
case_arch_args_checkpoint_path = _import_case(_good_pt, lambda p: "--arch-args.checkpoint_path: not an architecture argument",
                                              "--arch-args", '{"width": 8, "checkpoint_path": "w.pt"}')  # fmt: skip
case_arch_args_not_a_mapping = _import_case(_good_pt, lambda p: "--arch-args: must be a mapping", "--arch-args", "[8]")
case_arch_args_nan = _import_case(_good_pt, lambda p: "--arch-args.width: nan is not a finite number",
                                  "--arch-args", '{"width": .nan}')  # fmt: skip
case_arch_args_unknown_argument = _import_case(_good_pt, lambda p: "bad arch_args", "--arch-args", '{"widht": 8}')


def case_arch_args_with_config(fx, tmp):
    out = tmp / "imported"
    argv = ["import-checkpoint", "--config", str(TINY), "--model", "robust_tiny", "--out-dir", str(out),
            "--arch-args", '{"width": 8}']  # fmt: skip
    return argv, "--arch-args: not used with --config", [out]


def case_class_names_not_utf8(fx, tmp):
    names = tmp / "names.txt"
    names.write_bytes("caf\xe9\nthé\nb\nc\n".encode("latin-1"))
    out = tmp / "imported"
    argv = ["import-checkpoint", "--model", "m", "--checkpoint", str(fx / "good.pt"), "--arch", "cbr_tiny",
            "--num-classes", "4", "--input-size", "32", "--arch-args", "width: 8", "--class-names", str(names),
            "--out-dir", str(out)]  # fmt: skip
    return argv, f"{names}: class names file is not UTF-8", [out]


# CLI float options: finite, in range
def case_nan_alpha_option(fx, tmp):
    out = tmp / "study.json"
    argv = ["posthoc-study-analyse", "--responses", str(tmp / "r.csv"), "--out", str(out), "--alpha", "nan"]
    return argv, "argument --alpha: 'nan' is not a finite number", [out]


def case_alpha_option_out_of_range(fx, tmp):
    out = tmp / "study.json"
    argv = ["posthoc-study-analyse", "--responses", str(tmp / "r.csv"), "--out", str(out), "--alpha", "1.5"]
    return argv, "argument --alpha: 1.5 is not in (0, 1)", [out]


def case_inf_gap_target(fx, tmp):  # head tuning's stopping target, which the summary judges tuning by
    out = tmp / "summary.json"
    p = str(tmp / "x.parquet")
    cfg = write_cfg(tmp / "c.yaml", set_value(("spuriosity", "tuning", "gap_target"), INF))
    argv = ["spuriosity-summary", "--config", str(cfg), "--imageset", str(fx / "test.h5"), "--rankings", p, "--gaps", p,
            "--gap-models", p, "--gap-correlations", p, "--corruptions", p, "--tuning", p, "--label-noise", p,
            "--out", str(out), "--gaps-figure", str(tmp / "g.png"), "--tuning-figure", str(tmp / "t.png")]  # fmt: skip
    return argv, "config key spuriosity.tuning.gap_target: inf is not a finite number", [out]


# training that fails part-way removes what it wrote
def _diverging_config(tmp) -> Path:
    def edit(cfg):
        cfg["train"].update(lr=1e30, epochs=2, batch_size=8)  # finite, valid, and diverges in the first epoch

    return write_cfg(tmp / "c.yaml", edit)


def case_train_fails_in_existing_dir(fx, tmp):
    """As under Snakemake, which makes the output directory before the job: the job removes its
    checkpoints/ (and any epoch file) again; the directory it was given stays."""
    out = tmp / "model"
    out.mkdir()
    argv = ["train", "--config", str(_diverging_config(tmp)), "--model", "erm_tiny", "--train-set", str(fx / "test.h5"),
            "--val-set", str(fx / "test.h5"), "--out-dir", str(out), "--threads", "1"]  # fmt: skip
    return argv, "training diverged at epoch 1", [out / "checkpoints", out / "model.safetensors", out / "meta.json"]


def case_train_fails_in_new_dir(fx, tmp):
    out = tmp / "models" / "erm_tiny"
    argv = ["train", "--config", str(_diverging_config(tmp)), "--model", "erm_tiny", "--train-set", str(fx / "test.h5"),
            "--val-set", str(fx / "test.h5"), "--out-dir", str(out), "--threads", "1"]  # fmt: skip
    return argv, "lower train.lr", [tmp / "models"]


CASES = {name[len("case_") :]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}
# commands that print progress on stderr before failing: their last line is the error
PROGRESS = {"train_fails_in_existing_dir", "train_fails_in_new_dir"}
# run as a real `spurlab` process too (console script, argparse's exit, a real traceback)
SUBPROCESS_CASES = ("latin1_config", "nan_alpha_option", "duplicate_nested_key")


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES) + [f"{c}:subprocess" for c in SUBPROCESS_CASES])
def test_bad_value_through_cli(case, fx, tmp_path, venv_env, capsys):
    name, _, how = case.partition(":")
    argv, culprit, outputs = CASES[name](fx, tmp_path)
    r = run_spurlab(argv, venv_env, capsys, how == "subprocess")
    assert_refused(case, r, culprit, outputs, progress=name in PROGRESS)


def test_catalogue_size():
    assert len(CASES) >= 25


def test_arch_args_are_recorded_and_applied_at_load(fx, tmp_path, capsys):
    """The good path of --arch-args: the model imports, meta.json records the arguments, and
    load_model rebuilds the same architecture from them."""
    from spurlab.cli import main
    from spurlab.models import load_model

    out = tmp_path / "imported"
    assert main(["import-checkpoint", "--model", "m", "--checkpoint", str(fx / "good.pt"), "--layout", "state_dict",
                 "--arch", "cbr_tiny", "--num-classes", "4", "--input-size", "32", "--arch-args", '{"width": 8}',
                 "--out-dir", str(out)]) == 0  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    assert meta["arch_args"] == {"width": 8} and meta["name"] == "m"
    model, _ = load_model(out)
    assert model.arch_args == {"width": 8}


def test_model_dir_of_the_named_model_passes_the_check(fx):
    from spurlab.cli.args import check_model_dirs

    check_model_dirs(["m", "robust_tiny"], [fx / "model", fx / "robust_tiny"], "--models")


# ------------------------------------------------------------------------------------------------
# Through snakemake: a bad value or config file fails while the DAG is built (before any job), in
# one line naming the key or file; nothing is written under results/.
SNAKEMAKE_CASES = {
    "nan_noise_sigma": (lambda: tiny_text(append_value(("salient", "noise", "sigmas"), NAN)),
                        "spurlab: error: config key salient.noise.sigmas[3]: nan is not a finite number"),
    "inf_train_lr": (lambda: tiny_text(set_value(("train", "lr"), INF)), "spurlab: error: config key train.lr: inf"),
    "nan_blur_sigma": (lambda: tiny_text(set_value(("contamination", "signals", "blur", "sigma"), NAN)),
                       "spurlab: error: config key contamination.signals.blur.sigma: nan"),
    "minus_inf_pixel_noise": (lambda: tiny_text(set_value(("datasets", "pixel_noise"), -INF)),
                              "spurlab: error: config key datasets.pixel_noise: -inf"),
    "zero_tuning_lr": (lambda: tiny_text(set_value(("spuriosity", "tuning", "lr"), 0)),
                       "spurlab: error: config key spuriosity.tuning.lr: 0 is less than or equal"),
    "duplicate_top_level_key": (lambda: tiny_text(extra="seed: 5\n"), f"bad.yaml: duplicate key seed {seed_lines()}"),
    "duplicate_nested_key": (duplicate_train_lr, "bad.yaml: duplicate key train.lr (lines "),
}  # fmt: skip


def snakemake(work: Path, target: str, cfg: Path, env) -> subprocess.CompletedProcess:
    """Plain `snakemake` (no --workflow-profile: the default profile applies), as a person runs it."""
    cmd = ["snakemake", target, "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2",
           "--configfile", str(cfg)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SNAKEMAKE_CASES))
def test_bad_value_through_snakemake(case, tmp_path, venv_env):
    text_of, culprit = SNAKEMAKE_CASES[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text_of())
    work = tmp_path / "work"
    r = snakemake(work, "results/models/summary.json", cfg, venv_env)
    assert r.returncode != 0, r.stdout[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("spurlab: error:")]
    assert len(errors) == 1 and culprit in errors[0], (r.stdout + r.stderr)[-3000:]
    assert "Traceback" not in r.stderr
    assert not (work / "results").exists()


@pytest.mark.slow
def test_failed_job_shows_its_error_on_the_console_and_leaves_nothing(fx, tmp_path, venv_env):
    """Plain `snakemake` loads the default workflow profile (profiles/default), whose
    show-failed-logs prints the failed job's log: the one-line error is on the console, not only
    in logs/. The job (an import of a text file named .pt) leaves no model directory."""
    ck = tmp_path / "weights.pt"
    ck.write_text("weights are on the other disk\n")

    def edit(cfg):
        cfg["models"]["imp"] = {"arch": "cbr_tiny", "checkpoint": {"path": str(ck), "layout": "state_dict",
                                                                   "num_classes": 4, "input_size": 32}}  # fmt: skip

    cfg = write_cfg(tmp_path / "c.yaml", edit)
    work = tmp_path / "work"
    r = snakemake(work, "results/models/imp/model.safetensors", cfg, venv_env)
    console = r.stdout + r.stderr
    assert r.returncode != 0
    assert "profiles/default" in console, "the default workflow profile was not loaded"
    assert f"spurlab: error: {ck}: cannot be read as a torch checkpoint" in console, console[-3000:]
    assert not (work / "results/models/imp").exists()


@pytest.mark.slow
def test_failed_training_leaves_no_checkpoints_under_snakemake(tmp_path, venv_env):
    """A training job that diverges (a finite, valid, far too high lr): its error is on the
    console, and neither checkpoints/ nor the model directory stay behind; the image sets made
    before it (jobs that succeeded) do."""

    def edit(cfg):
        cfg["datasets"]["n_images"] = {"train": 32, "val": 16, "test": 16, "cue_only": 8}
        cfg["train"].update(lr=1e30, epochs=2, batch_size=16)

    cfg = write_cfg(tmp_path / "c.yaml", edit)
    work = tmp_path / "work"
    r = snakemake(work, "results/models/erm_tiny/model.safetensors", cfg, venv_env)
    console = r.stdout + r.stderr
    assert r.returncode != 0
    assert "spurlab: error: training diverged at epoch 1" in console, console[-3000:]
    assert not (work / "results/models").exists(), sorted(map(str, (work / "results/models").rglob("*")))
    assert (work / "results/datasets/train.h5").is_file()
