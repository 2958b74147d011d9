"""Utilities: check configs, list a config's image sets, look at a file, merge class shards."""

from __future__ import annotations

from .table import CONFIG, Command, arg, path


def validate_config(cfg: dict, a) -> int:
    from ..config import check_paths

    if a.check_paths:
        check_paths(cfg)
    found = ", and the folders and files it names exist" if a.check_paths else ""
    print(f"ok: {' + '.join(a.config)} is a valid spurlab config{found}")
    return 0


def list_sets(cfg: dict, a) -> int:
    from ..config import set_names

    print("\n".join(set_names(cfg)))
    return 0


def inspect(_, a) -> int:
    from ..inspect import describe

    print(describe(a.file, verify=a.verify))
    return 0


def merge_shards(_, a) -> int:
    from ..shards import merge_shards

    info = merge_shards(a.shards, a.out, a.tables, a.table_out)
    print(f"{a.out}: merged {info['shards']} shard(s)")
    return 0


COMMANDS = (
    Command("validate-config", "utilities", "check config file(s) against the schema and cross-key rules", validate_config, (
        arg("--check-paths", action="store_true",
            help="also check that the folders and files it names exist (image folder roots, synset maps, val labels, "
                 "class names, checkpoints; not human answer files), as the Snakefile does; relative paths are "
                 "relative to the working directory"),
    ), settings=CONFIG),
    Command("list-sets", "utilities", "print the names of the image sets a config defines", list_sets, settings=CONFIG),
    Command("inspect", "utilities", "print a summary of a spurlab file (image set or feature cache)", inspect, (
        path("file"),
        arg("--verify", action="store_true", help="also recompute the content hash"),
    )),
    Command("merge-shards", "utilities", "merge the class-shard outputs of one job into its whole output (rules *_merge)",
            merge_shards, (
        path("shards", "shard files 0..n-1, in order (HDF5 or .parquet)", many=True),
        path("--out"),
        path("--tables", "NPCA components only: the shards' pair tables", required=False, many=True),
        path("--table-out", "NPCA components only: the merged pair table", required=False),
    )),
)  # fmt: skip
