"""The `mitigation` target's subcommands (rules/mitigation.smk; `spurlab.mitigate.group_robustness`,
docs/methods.md#group-robustness-and-last-layer-retraining): one per rule. Registered by
`spurlab.cli.build_parser`."""

from __future__ import annotations

from pathlib import Path

from ..errors import SpurlabError
from .args import check_model_dirs


def cmd_group_robustness(args) -> int:
    import torch
    from threadpoolctl import threadpool_limits

    from ..config import load_config
    from ..mitigate.group_robustness import DFRSettings, JTTSettings, run_group_robustness
    from ..mitigate.head_tuning import TuningSettings

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    mit, sp = cfg.get("mitigation") or {}, cfg["spuriosity"]
    if not mit:
        raise SpurlabError("config key mitigation: missing; the group-robustness stage needs its settings")
    check_model_dirs([args.model, args.robust], [args.model_dir, args.robust_dir])
    features = {"train": args.train_features, "val": args.val_features, "test": args.test_features,
                "counterfactual": args.counterfactual_features, "tuning_val": args.tuning_val_features}  # fmt: skip
    settings = {"dfr": DFRSettings(**mit["dfr"], seed=mit["seed"]), "jtt": JTTSettings(**mit["jtt"]),
                "tuning": TuningSettings.from_config(cfg)}  # fmt: skip
    spuriosity = {"rankings": args.rankings, "tuning": args.tuning, "k": sp["k"],
                  "sets": {"train": sp["stats_set"], "tuning_val": sp["gap_set"], "test": mit["test_set"]}}  # fmt: skip
    spufix = {"robust_dir": args.robust_dir, "robust_train": args.robust_train_features, "bases": args.bases,
              "pairs": args.pairs, "harmful": args.harmful}  # fmt: skip
    # BLAS (numpy, sklearn's lbfgs) at the job's thread count: unlimited, it oversubscribes a shared machine
    with threadpool_limits(limits=args.threads):
        info = run_group_robustness(args.model, args.model_dir, features=features,
                                    imagesets={"val": args.val_set, "counterfactual": args.counterfactual_set},
                                    spuriosity=spuriosity, spufix=spufix, settings=settings, out=args.out,
                                    out_groups=args.out_groups)  # fmt: skip
    for method, e in info.items():
        print(f"{args.model} {method}: acc {e['acc']:.3f}, worst group {e['worst_group_acc']:.3f}, gap {e['gap']:.3f}")
    return 0


def cmd_mitigation_summary(args) -> int:
    from ..mitigate.mitigation_summary import run_mitigation_summary

    if not len(args.models) == len(args.tables) == len(args.groups):
        raise SpurlabError(f"--models, --tables and --groups need one entry each: got {len(args.models)}, "
                           f"{len(args.tables)}, {len(args.groups)}")  # fmt: skip
    s = run_mitigation_summary(dict(zip(args.models, args.tables)), dict(zip(args.models, args.groups)), args.out,
                               args.out_table, args.figure, svg=args.svg)  # fmt: skip
    raises = s["acceptance"]["dfr_raises_worst_group"]
    print(f"{args.out}: DFR raises the worst-group accuracy of {sum(raises.values())} of {len(raises)} audited models")
    return 0


def add_mitigation_parsers(sub, config_arg) -> None:
    p = sub.add_parser("group-robustness", help="ERM head, DFR, JTT, low-spuriosity tuning and SpuFix of one audited "
                                                "model: accuracy, worst group, spurious gap (rule group_robustness)")  # fmt: skip
    config_arg(p)
    p.add_argument("--model", required=True, help="the audited model's name")
    p.add_argument("--model-dir", required=True, type=Path)
    for role, what in (("train", "its training set (JTT, low-spuriosity tuning, SpuFix transfer)"),
                       ("val", "mitigation.val_set (DFR; the choices of DFR and JTT)"),
                       ("test", "mitigation.test_set (mean accuracy, spurious gap)"),
                       ("counterfactual", "the counterfactual set (group accuracy)"),
                       ("tuning-val", "spuriosity.gap_set (low-spuriosity tuning's early stopping)")):  # fmt: skip
        p.add_argument(f"--{role}-features", required=True, type=Path, help=f"the model's feature cache of {what}")
    p.add_argument("--val-set", required=True, type=Path, help="image set of mitigation.val_set (its cue flags)")
    p.add_argument("--counterfactual-set", required=True, type=Path, help="the counterfactual image set")
    p.add_argument("--rankings", required=True, type=Path, help="results/spuriosity/rankings.parquet")
    p.add_argument("--tuning", required=True, type=Path, help="the model's head-tuning table")
    p.add_argument("--robust", required=True, help="salient.model, whose neural PCA SpuFix uses")
    p.add_argument("--robust-dir", required=True, type=Path)
    p.add_argument("--robust-train-features", required=True, type=Path, help="its cache of salient.importance_set")
    p.add_argument("--bases", required=True, type=Path, help="results/npca/bases.h5")
    p.add_argument("--pairs", required=True, type=Path, help="results/npca/pairs.parquet")
    p.add_argument("--harmful", required=True, type=Path, help="results/npca/harmful.parquet")
    p.add_argument("--out", required=True, type=Path, help="one row per method and trial (.parquet; a .csv twin)")
    p.add_argument("--out-groups", required=True, type=Path, help="the group accuracies behind them (.parquet)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (low-spuriosity tuning)")
    p.set_defaults(func=cmd_group_robustness)

    p = sub.add_parser("mitigation-summary", help="results/mitigation/summary.json, the mitigation table and its "
                                                  "figure (rule mitigation_summary)")  # fmt: skip
    p.add_argument("--models", required=True, nargs="+", help="the audited models")
    p.add_argument("--tables", required=True, nargs="+", type=Path, help="one group-robustness table per model")
    p.add_argument("--groups", required=True, nargs="+", type=Path, help="one group table per model")
    p.add_argument("--out", required=True, type=Path, help="summary.json")
    p.add_argument("--out-table", required=True, type=Path, help="the mitigation table (.parquet; a .csv twin)")
    p.add_argument("--figure", required=True, type=Path, help="PNG")
    p.add_argument("--svg", type=Path, help="the same figure as SVG")
    p.set_defaults(func=cmd_mitigation_summary)
