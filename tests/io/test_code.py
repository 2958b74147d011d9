"""Code changes rerun (docs/architecture.md#code-provenance): every output records the version and
the hash of the package source that wrote it, every rule carries that hash as a param, and a change
of it makes Snakemake plan the rule again, while a change elsewhere in the package does not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from spurlab import __version__
from spurlab.errors import SpurlabError
from spurlab.io import code
from spurlab.io.code import code_sha256, command_handlers, rule_code_sha256, running, source_files
from tests.conftest import ROOT, load_yaml

PACKAGE = ROOT / "src" / "spurlab"


def copy_package(dest: Path) -> Path:
    """A copy of the package source at dest/spurlab (no bytecode)."""
    shutil.copytree(PACKAGE, dest / "spurlab", ignore=shutil.ignore_patterns("__pycache__"))
    return dest / "spurlab"


def fresh(command, package_dir: Path) -> str:
    """The hash of `command` after the files changed (the hashes are cached per process)."""
    code._graph.cache_clear()
    code_sha256.cache_clear()
    return code_sha256(command, package_dir)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# --- which files a command runs, and their hash ---------------------------------------------------


def test_every_command_is_found_in_the_parser_code():
    """The handlers read from the source are the ones the parser runs, for every subcommand: the
    command table's (with their settings classes) and the registrars' (argparse's `func`)."""
    from spurlab.cli import COMMANDS, make_parser

    parser = make_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    handlers = command_handlers(PACKAGE)
    assert set(handlers) == set(subcommands)
    table = {c.name: c for c in COMMANDS}
    for name, sub in subcommands.items():
        if name in table:
            c = table[name]
            spec = c.settings.partition(":")[0] if c.settings and ":" in c.settings else None
            expected = (
                c.handler.__module__,
                c.handler.__name__,
                spec if spec and not spec.startswith("section") else None,
            )
        else:
            func = sub.get_default("func")
            expected = (func.__module__, func.__name__, None)
        assert handlers[name] == expected, name


def test_a_command_runs_its_imports_not_the_other_commands():
    make_set = source_files(PACKAGE, "make-set")
    assert {"spurlab/data/synth.py", "spurlab/data/imagesets.py", "spurlab/config.py",
            "spurlab/schemas/config.schema.yaml", "spurlab/cli/__init__.py", "spurlab/__init__.py",
            "spurlab/io/code.py"} <= set(make_set)  # fmt: skip
    assert not [f for f in make_set if f.startswith(("spurlab/report/", "spurlab/discover/", "spurlab/templates/"))]
    site = source_files(PACKAGE, "report-site")
    assert "spurlab/report/site.py" in site and "spurlab/templates/site/base.html.j2" in site
    assert "spurlab/io/render.py" in site
    # a package's __init__ runs before its modules: models/__init__ registers the local architectures
    assert {"spurlab/models/__init__.py", "spurlab/models/cbr.py"} <= set(source_files(PACKAGE, "features"))
    everything = source_files(PACKAGE)
    assert set(make_set) < set(everything) and set(site) < set(everything)
    assert all(f.endswith(".py") or f.startswith(("spurlab/schemas/", "spurlab/templates/")) for f in everything)


def test_every_package_file_is_source():
    """Files other than modules are data of a module (`DATA_DIRS`), so that a command that reads
    them hashes them: a new kind of package file must be placed there."""
    others = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]  # fmt: skip
    assert others and all(o.split("/")[0] in code.DATA_DIRS for o in others), others


def test_no_import_by_name_at_run_time():
    """The closure follows import statements: a module loaded by a computed name would escape it.
    The one exception is the command table's settings class ("module:Class", imported on use by
    cli/table.py), which `command_handlers` reads from the table and adds to the command's closure."""
    found = [f"{p.relative_to(PACKAGE)}: {word}" for p in PACKAGE.rglob("*.py")
             for word in ("importlib", "__import__", "import_module", "pkgutil", "runpy") if word in p.read_text()]  # fmt: skip
    assert found == ["cli/table.py: importlib", "cli/table.py: import_module"]
    assert "spurlab/discover/importance.py" in source_files(PACKAGE, "importance")  # its ImportanceSettings


def test_hash_follows_exactly_the_files_a_command_runs(tmp_path):
    pkg = copy_package(tmp_path / "a")
    base = {c: fresh(c, pkg) for c in ("make-set", "report-site", None)}
    other = copy_package(tmp_path / "b")
    assert base == {c: fresh(c, other) for c in base}  # the same tree gives the same hash anywhere
    assert base["make-set"] == code_sha256("make-set", PACKAGE)

    append(pkg / "report" / "site.py", "# a comment\n")  # not run by make-set
    after = {c: fresh(c, pkg) for c in base}
    assert after["make-set"] == base["make-set"]
    assert after["report-site"] != base["report-site"] and after[None] != base[None]

    append(pkg / "data" / "synth.py", "# a comment\n")
    assert fresh("make-set", pkg) != base["make-set"]

    before = fresh("report-site", pkg)
    append(pkg / "templates" / "static" / "site.css", "/* a rule */\n")
    assert fresh("report-site", pkg) != before
    before = fresh("make-set", pkg)
    append(pkg / "schemas" / "config.schema.yaml", "# a comment\n")
    assert fresh("make-set", pkg) != before

    # bytecode, hidden files and other non-source files are not source
    before = {c: fresh(c, pkg) for c in base}
    (pkg / "data" / "__pycache__").mkdir()
    (pkg / "data" / "__pycache__" / "synth.cpython-311.pyc").write_bytes(b"\0")
    (pkg / "templates" / ".synth.swp").write_bytes(b"\0")
    (pkg / "notes.txt").write_text("x")
    assert {c: fresh(c, pkg) for c in base} == before
    code._graph.cache_clear()
    code_sha256.cache_clear()


def test_import_graph_cache(tmp_path, monkeypatch):
    """The graph is parsed once per source tree: a warm cache gives the hashes of a fresh parse,
    an edit of a module is a new graph, and a cache folder that cannot be written is only slower."""
    pkg = copy_package(tmp_path / "src")
    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path / "cache"))
    commands = ("make-set", None)
    cold = {c: fresh(c, pkg) for c in commands}
    files = list((tmp_path / "cache").glob("import-graph-spurlab-*.json"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary left
    imports, handlers = code._parse_graph(pkg)
    assert code._cached_graph(pkg, code.module_names(pkg)) == (imports, handlers)  # read back exactly
    assert {c: fresh(c, pkg) for c in commands} == cold  # warm

    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path / "cold"))  # parsed again
    assert {c: fresh(c, pkg) for c in commands} == cold
    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path / "cache"))

    append(pkg / "data" / "synth.py", "import spurlab.report.site\n")  # an edit that changes the graph
    after = {c: fresh(c, pkg) for c in commands}
    assert after["make-set"] != cold["make-set"] and after[None] != cold[None]
    assert "spurlab/report/site.py" in source_files(pkg, "make-set")
    assert len(list((tmp_path / "cache").glob("import-graph-spurlab-*.json"))) == 2
    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path / "uncached"))
    assert {c: fresh(c, pkg) for c in commands} == after

    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv(code.CACHE_ENV, str(blocked / "spurlab"))  # not a folder: parsed each time
    assert {c: fresh(c, pkg) for c in commands} == after

    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path / "cache"))
    for f in (tmp_path / "cache").glob("import-graph-*.json"):
        f.write_text("{")
    with pytest.raises(SpurlabError, match="not an import-graph cache file; delete it"):
        fresh("make-set", pkg)
    code._graph.cache_clear()
    code_sha256.cache_clear()


def test_import_graph_cache_keeps_the_newest(tmp_path, monkeypatch):
    monkeypatch.setenv(code.CACHE_ENV, str(tmp_path))
    for i in range(code.CACHE_KEEP + 3):
        old = tmp_path / f"import-graph-spurlab-{i:064x}.json"
        old.write_text("{}")
        os.utime(old, (i, i))
    (tmp_path / "import-graph-other-0.json").write_text("{}")  # another package's
    fresh("make-set", PACKAGE)
    left = sorted(p.name for p in tmp_path.glob("import-graph-spurlab-*.json"))
    assert len(left) == code.CACHE_KEEP and f"import-graph-spurlab-{0:064x}.json" not in left
    assert (tmp_path / "import-graph-other-0.json").exists()
    code._graph.cache_clear()
    code_sha256.cache_clear()


def test_rule_code_sha256():
    assert rule_code_sha256("all", None) == code_sha256()  # a target: the whole package
    assert rule_code_sha256("image_set", "spurlab make-set --config {params.configs} > {log} 2>&1") == code_sha256(
        "make-set"
    )
    with pytest.raises(SpurlabError, match=r"rule r: 'nope' is not a spurlab command \(see spurlab --help\)"):
        rule_code_sha256("r", "spurlab nope --out x")
    with pytest.raises(SpurlabError, match=r"rule r: runs 2 spurlab commands \(features, train\); one per rule"):
        rule_code_sha256("r", "spurlab train --x && spurlab features --y")


# --- outputs record it -----------------------------------------------------------------------------


def test_writers_record_version_and_code_hash(tmp_path):
    from spurlab.data.imagesets import ImageSet, write_imageset
    from spurlab.io import create_h5, write_json
    from spurlab.io.tables import table_provenance, write_table

    whole = {"spurlab_version": __version__, "code_sha256": code_sha256()}
    write_json(tmp_path / "s.json", {"a": 1})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1, **whole}
    with running("features"):  # inside a command: that command's code, over what a writer copied
        write_table(pd.DataFrame({"x": [1]}), tmp_path / "t.parquet", {"k": 2, "code_sha256": "old"})
        with create_h5(tmp_path / "f.h5") as f:
            f.attrs.update(format="x", code_sha256="old")
    assert table_provenance(tmp_path / "t.parquet") == {"k": 2, "spurlab_version": __version__,
                                                        "code_sha256": code_sha256("features")}  # fmt: skip
    with h5py.File(tmp_path / "f.h5") as f:
        assert f.attrs["format"] == "x" and f.attrs["code_sha256"] == code_sha256("features")
        assert f.attrs["spurlab_version"] == __version__

    rec = {"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, 1]), "ids": np.array([b"a", b"b"]),
           "meta": {}, "masks": {}}  # fmt: skip
    sha = write_imageset(tmp_path / "s.h5", 2, [rec], {"class_names": ["p", "q"]})
    with running("make-set"):
        assert write_imageset(tmp_path / "s2.h5", 2, [rec], {"class_names": ["p", "q"]}) == sha  # content only
    with ImageSet(tmp_path / "s.h5") as s, ImageSet(tmp_path / "s2.h5") as s2:
        assert s.attrs["code_sha256"] == whole["code_sha256"] and s2.attrs["code_sha256"] == code_sha256("make-set")
        assert s.attrs["spurlab_version"] == __version__


def test_model_meta_and_training_fingerprint_record_the_code(tmp_path, monkeypatch):
    """meta.json records the code; training resumes only checkpoints of the same code (a code change
    reruns training, which must not pick up the old run's epochs)."""
    from types import SimpleNamespace

    import torch

    from spurlab import train
    from spurlab.models import build_classifier

    fingerprints = []

    def fit(*args, fingerprint, **kwargs):
        fingerprints.append(fingerprint)
        return [{"val_acc": 0.5, "train_acc": 0.5, "seconds": 0.0}]

    monkeypatch.setattr(train, "fit", fit)
    tr, va = (SimpleNamespace(sha256=c * 64, path=Path(c)) for c in "ab")
    for command in ("train", "train", "import-checkpoint"):
        with running(command):
            train.fit_and_save(build_classifier("cbr_tiny", 2, 16), "m", {"seed": 0}, SimpleNamespace(robust=False), 0,
                               tr, va, None, None, tmp_path / command, torch.device("cpu"), ["p", "q"])  # fmt: skip
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
    meta = json.loads((tmp_path / "import-checkpoint" / "meta.json").read_text())
    assert meta["spurlab_version"] == __version__ and meta["code_sha256"] == code_sha256("import-checkpoint")


# --- the workflow ---------------------------------------------------------------------------------

RULES_SCRIPT = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ResourceSettings

snakefile, workdir, *configs = sys.argv[1:]
with SnakemakeApi() as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path(snakefile), workdir=Path(workdir),
                      config_settings=ConfigSettings(configfiles=[Path(c) for c in configs]))
    rules = [{"rule": r.name, "shell": r.shellcmd, "params": dict(r.params.items())} for r in wf._workflow.rules]
print("RULES " + json.dumps(rules, default=str))
"""


def test_every_rule_carries_its_code_hash(tmp_path, venv_env):
    """Loads the Snakefile (default config: every stage) and reads each rule's params."""
    script = tmp_path / "rules.py"
    script.write_text(RULES_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(ROOT / "Snakefile"), str(tmp_path), str(ROOT / "config" / "config.yaml")],
                       capture_output=True, text=True, env=venv_env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    rules = json.loads(r.stdout.split("RULES ", 1)[1])
    assert len(rules) > 50 and {"image_set", "train", "features", "report_site", "posthoc_summary", "all"} <= {
        x["rule"] for x in rules}  # fmt: skip
    for x in rules:
        assert x["params"].get("code_sha256") == rule_code_sha256(x["rule"], x["shell"]), x["rule"]
    by_rule = {x["rule"]: x["params"]["code_sha256"] for x in rules}
    assert by_rule["image_set"] == code_sha256("make-set") and by_rule["all"] == code_sha256()
    assert by_rule["image_set"] != by_rule["report_site"]


def snakemake(work: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "1", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
@pytest.mark.workflow
def test_a_code_change_reruns_what_it_reaches(tmp_path, venv_env):
    """One image set made by a copy of the package; then dry runs after edits of that copy."""
    pkg = copy_package(tmp_path / "src")
    env = dict(venv_env, PYTHONPATH=os.pathsep.join([str(pkg.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cfg = load_yaml("tiny.yaml")
    cfg["datasets"]["n_images"]["cue_only"] = 8
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    target = ["results/datasets/cue_only.h5", "--configfile", str(tmp_path / "c.yaml")]
    work = tmp_path / "work"
    snakemake(work, env, *target)
    with h5py.File(work / target[0]) as f:  # the job recorded the hash of the copy it ran
        assert f.attrs["code_sha256"] == fresh("make-set", pkg) and f.attrs["spurlab_version"] == __version__

    def planned() -> str:
        """What a dry run would do: "nothing", or the rules it reruns because their params changed
        (`--list-params-changes` is no help: it counts every function-valued param as changed)."""
        r = snakemake(work, env, "-n", *target)
        if "Nothing to be done" in r.stdout + r.stderr:
            return "nothing"
        return r.stdout.partition("params have changed since last execution:\n")[2].partition("\n")[0].strip()

    assert planned() == "nothing"
    append(pkg / "report" / "site.py", "# not run by make-set\n")
    assert planned() == "nothing"
    synth = (pkg / "data" / "synth.py").read_text()
    append(pkg / "data" / "synth.py", "# run by make-set\n")
    assert planned() == "image_set"
    (pkg / "data" / "synth.py").write_text(synth)  # the code it was made with: nothing to do again
    assert planned() == "nothing"
    code._graph.cache_clear()
    code_sha256.cache_clear()
