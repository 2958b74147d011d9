"""bench/pipeline.py (issue #34, point 1): job-seconds per rule and stage, the critical path and the
idle share of a run, checked on a synthetic run directory against numbers computed by hand. The
log's lines are in Snakemake 9.27's format (copied from a real run's .snakemake/log)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
bp = importlib.util.module_from_spec(_spec)
sys.modules["bench_pipeline"] = bp  # dataclasses look their module up
_spec.loader.exec_module(bp)

SNAKEFILE = """\
include: "rules/data.smk"
include: "rules/use.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/a.txt",
"""
DATA_SMK = """\
rule make:
    output:
        "results/{name}.h5",
    benchmark:
        "benchmarks/make/{name}.tsv"
    threads: 2
    shell:
        "touch {output}"
"""
USE_SMK = """\
rule use_a:
    input:
        "results/x.h5",
    output:
        "results/a.txt",
    benchmark:
        "benchmarks/use/a.tsv"
    threads: 1
    shell:
        "touch {output}"


use rule use_a as use_b with:
    output:
        "results/b.txt",
    benchmark:
        "benchmarks/use/b.tsv"
"""
REPORT_SMK = """\
rule summary:
    input:
        "results/b.txt",
    output:
        "results/summary.txt",
    benchmark:
        "benchmarks/summary.tsv"
    shell:
        "touch {output}"
"""

HEADER = """\
Assuming unrestricted shared filesystem usage.

SNAKEMAKE
=========
  Date: 2026-12-07 10:00:00
  Workflow ID: 8edb82a5-8001-4ac5-8d16-49f93680e040
  Snakemake version: 9.27.1

Building DAG of jobs...
Using shell: /usr/bin/bash
Provided cores: 2
Rules claiming more threads will be scaled down.
Job stats:
job        count
-------  -------
all            1
make           2
summary        1
use_a          1
use_b          1
total          6

Select jobs to execute...
Execute 1 jobs..."""


def start(t: str, rule: str, jobid: int, inputs=(), outputs=(), bench=None, wildcards=None, threads=1) -> str:
    lines = [f"[Mon Dec  7 10:00:{t} 2026]", f"localrule {rule}:"]
    if inputs:
        lines.append(f"    input: {', '.join(inputs)}")
    if outputs:
        lines.append(f"    output: {', '.join(outputs)}")
        lines.append(f"    log: logs/{rule}.log")
    lines.append(f"    jobid: {jobid}")
    if bench:
        lines.append(f"    benchmark: {bench}")
    lines.append(f"    reason: Missing output files: {', '.join(outputs) or 'x'}")
    if wildcards:
        lines.append(f"    wildcards: {wildcards}")
    if threads != 1:
        lines.append(f"    threads: {threads}")
    lines.append(
        "    resources: tmpdir=/tmp, mem_mb=1000, mem=1 GB, mem_mib=954, disk_mb=1000, disk=1 GB, disk_mib=954"
    )
    if outputs:
        lines.append(f"Shell command: touch {' '.join(outputs)}")
    return "\n".join(lines)


def finish(t: str, jobid: int, rule: str, done: int) -> str:
    return f"Select jobs to execute...\n[Mon Dec  7 10:00:{t} 2026]\nFinished jobid: {jobid} (Rule: {rule})\n{done} of 6 steps done"


# jobs: 1 make x (10:00:02-12, 2 threads); 2 use_a (12-40) and 3 use_b (12-17), both reading x;
# 4 summary (18-30) reads b; 5 make y (30-45, 2 threads) reads nothing; 0 all (45-45).
EVENTS = [
    start("02", "make", 1, outputs=["results/x.h5"], bench="benchmarks/make/x.tsv", wildcards="name=x", threads=2),
    finish("12", 1, "make", 1),
    "Execute 2 jobs...",
    start("12", "use_a", 2, ["results/x.h5"], ["results/a.txt"], "benchmarks/use/a.tsv"),
    start("12", "use_b", 3, ["results/x.h5"], ["results/b.txt"], "benchmarks/use/b.tsv"),
    finish("17", 3, "use_b", 2),
    "Execute 1 jobs...",
    start("18", "summary", 4, ["results/b.txt"], ["results/summary.txt"], "benchmarks/summary.tsv"),
    finish("30", 4, "summary", 3),
    "Execute 1 jobs...",
    start("30", "make", 5, outputs=["results/y.h5"], bench="benchmarks/make/y.tsv", wildcards="name=y", threads=2),
    finish("40", 2, "use_a", 4),  # the partial log ends here: job 5 still running
    finish("45", 5, "make", 5),
    "Execute 1 jobs...",
    start("45", "all", 0, ["results/a.txt", "results/b.txt", "results/summary.txt", "results/y.h5"]),
    finish("45", 0, "all", 6),
    "Complete log(s): /tmp/run/.snakemake/log/2026-12-07T100000.000000.snakemake.log",
]
PARTIAL = 12  # events up to "Finished jobid: 2" at 10:00:40

TSV_HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
TSVS = {  # path: rows of (s, max_rss, cpu_time)
    "make/x.tsv": [(9.5, 100, 18.0)],
    "make/y.tsv": [(14.5, 120, 28.0)],
    "make/z.tsv": [(3.0, 50, 2.0)],  # a job of an earlier invocation: not in the log
    "use/a.tsv": [(27.5, 60, 20.0)],
    "use/b.tsv": [(4.6, 40, 4.0)],
    "summary.tsv": [(5.0, 80, 4.0), (6.0, 90, 5.0)],  # repeat(2): two rows
}


def make_run(d: Path, events: list[str]) -> Path:
    (d / "rules").mkdir(parents=True)
    (d / "Snakefile").write_text(SNAKEFILE)
    (d / "rules" / "data.smk").write_text(DATA_SMK)
    (d / "rules" / "use.smk").write_text(USE_SMK)
    (d / "rules" / "report.smk").write_text(REPORT_SMK)
    for rel, rows in TSVS.items():
        p = d / "benchmarks" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        body = [f"{s}\t0:00:{int(s):02d}\t{rss}\t1000\t{rss}\t{rss}\t0.1\t0.0\t90.0\t{cpu}" for s, rss, cpu in rows]
        p.write_text("\n".join([TSV_HEAD, *body]) + "\n")
    (d / ".snakemake" / "log").mkdir(parents=True)
    (d / ".snakemake" / "log" / "2026-12-07T100000.000000.snakemake.log").write_text(
        "\n".join([HEADER, *events]) + "\n"
    )
    return d


@pytest.fixture
def full(tmp_path):
    return bp.load_run(make_run(tmp_path / "full", EVENTS))


@pytest.fixture
def partial(tmp_path):
    return bp.load_run(make_run(tmp_path / "partial", EVENTS[:PARTIAL]))


def test_rules_and_stages_are_parsed(full):
    stages = {name: info.stage for name, info in full.rules.items()}
    assert stages == {"make": "data", "use_a": "use", "use_b": "use", "summary": "report", "all": "Snakefile"}
    assert full.rules["use_b"].benchmark == "benchmarks/use/b.tsv" and full.rules["use_b"].threads == 1


def test_job_seconds_per_rule_and_stage(full):
    rules = {r.name: (r.jobs, round(r.seconds, 6), round(r.cpu, 6), r.rss) for r in bp.rule_rows(full)}
    assert rules == {
        "make": (3, 27.0, 48.0, 120.0),  # x 9.5 + y 14.5 (log) + z 3.0 (matched by the .smk pattern)
        "use_a": (1, 27.5, 20.0, 60.0),
        "use_b": (1, 4.6, 4.0, 40.0),
        "summary": (1, 11.0, 9.0, 90.0),  # two rows: summed, max RSS the max
        "all": (1, 0.0, 0.0, None),  # no benchmark: its log time
    }
    assert [r.name for r in bp.rule_rows(full)] == ["use_a", "make", "summary", "use_b", "all"]
    stages = [(r.name, r.jobs, round(r.seconds, 6)) for r in bp.stage_rows(full)]
    assert stages == [("use", 2, 32.1), ("data", 3, 27.0), ("report", 1, 11.0), ("Snakefile", 1, 0.0)]
    assert sorted(r.source for r in full.records) == ["log"] + ["tsv"] * 5 + ["tsv-unlogged"]


def test_critical_path(full):
    steps = bp.critical_path(full.log)
    # all <- 5 (its Finished line is the last before all starts) <- 4 (freed the slot 5 took)
    # <- 3 (made summary's input; summary started 1 s later) <- 1 (made use_b's input)
    assert [s.job.jobid for s in steps] == [1, 3, 4, 5, 0]
    assert [s.duration for s in steps] == [10, 5, 12, 15, 0]
    assert [s.wait for s in steps] == [0, 0, 1, 0, 0]
    assert [s.link for s in steps] == ["", "input", "input", "slot", "input"]
    assert (steps[-1].job.end - steps[0].job.start).total_seconds() == 43 == 42 + 1
    # data dependencies alone: make x (10) -> use_a (28) -> all (0) outlasts x -> b -> summary (27)
    assert [j.jobid for j in bp.dependency_chain(full.log)] == [1, 2, 0]


def test_idle_share(full):
    # busy cores: 0-2 s: 0 (DAG), 2-12: 2 (make, 2 threads), 12-17: 2, 17-18: 1, 18-30: 2,
    # 30-40: use_a 1 + make 2 = 3 -> capped at 2, 40-45: 2
    use = bp.core_use(full.log, cores=2)
    assert (use.wall, use.startup, use.busy) == (45, 2, 20 + 10 + 1 + 24 + 20 + 10)
    assert use.idle_share == pytest.approx(5 / 90)
    one = bp.core_use(full.log, cores=1)
    assert one.busy == 10 + 5 + 1 + 12 + 10 + 5 and one.idle_share == pytest.approx(2 / 45)
    four = bp.core_use(full.log, cores=4)
    assert four.busy == 20 + 10 + 1 + 24 + 30 + 10


def test_partial_run_counts_running_jobs_to_the_last_timestamp(partial):
    log = partial.log
    assert log.last.strftime("%H:%M:%S") == "10:00:40"
    assert [j.jobid for j in log.jobs if j.end is None] == [5]
    rules = {r.name: (r.jobs, round(r.seconds, 6)) for r in bp.rule_rows(partial)}
    # make y runs 30-40 s: 10 s from the log; y.tsv (an earlier run's, here) is not read
    assert rules["make"] == (3, 9.5 + 10 + 3.0) and "all" not in rules
    assert [s.job.jobid for s in bp.critical_path(log)] == [1, 2]
    use = bp.core_use(log, cores=2)
    assert (use.wall, use.busy) == (40, 75) and use.idle_share == pytest.approx(5 / 80)


def test_cli_report_markdown_and_compare(tmp_path, capsys):
    run = make_run(tmp_path / "full", EVENTS)
    before = make_run(tmp_path / "partial", EVENTS[:PARTIAL])
    assert bp.main([str(run)]) == 0
    out = capsys.readouterr().out
    assert "idle share" in out and "5.6%" in out and "span 43 s" in out
    assert bp.main([str(run), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| use | 2 | 32.1 | 45.8% |" in out
    assert bp.main([str(run), "--compare", str(before)]) == 0
    out = capsys.readouterr().out
    data = next(line for line in out.splitlines() if line.startswith("data "))
    assert data.split() == ["data", "3", "3", "22.5", "27.0", "1.20"]
