"""Where the time of a pipeline run goes (issue #34, point 1: measure first).

Reads a finished or partial run: its `benchmarks/` tree (one Snakemake `benchmark:` TSV per job)
and its Snakemake log (`.snakemake/log/*.snakemake.log`, the newest that ran jobs unless --log is given), and
prints (docs/performance.md#where-the-time-of-a-run-goes):

1. Job-seconds per rule and per stage, with job counts, sorted by job-seconds, and the total.
   A job's seconds are the `s` column of its TSV (summed over rows when a rule repeats its
   benchmark), its CPU seconds the `cpu_time` column. A stage is the file that defines the rule:
   rules/<stage>.smk, or the Snakefile (`rule NAME:`, `checkpoint NAME:` and
   `use rule ... as NAME` lines, read from RUN_DIR, else from this repository). A TSV belongs to
   the rule of the log's job that names it (`benchmark:` line); a TSV the log does not name (an
   earlier invocation's job) to the rule whose `benchmark:` pattern in the .smk files matches its
   path. Jobs the log shows without a TSV count their log time: a job still running from its
   start to the log's last timestamp (a TSV at its path is then an earlier run's and is not read),
   a finished job of a rule without `benchmark:` (`all`, the stage targets) from start to finish.
2. The critical path, from the log alone (no DAG is built): start at the job whose
   "Finished jobid" line comes last; step to the job whose "Finished jobid" line is the last one
   before this job's start (its "[date]" + "rule X:" block); repeat until a job started before any
   job had finished. Order is the log's line order (timestamps have 1-s resolution; two events in
   one second keep their order), durations are the log's timestamps (start block -> Finished
   line, so they include Snakemake's own post-processing). Each step is the event that released
   the next job: either the job producing one of its inputs (link `input`: the predecessor's
   `output:` paths meet this job's `input:` paths) or the job that freed the cores it waited for
   (link `slot`). For each job it prints the wait (its start minus the predecessor's finish:
   scheduling overhead); durations + waits = the chain's span.
3. Idle cores: over the run's wall time (the log header's "Date:", else its first timestamp, to
   its last timestamp), integrate the busy cores -- the sum of the `threads` of the jobs running
   at each moment (the job's "threads: k" line in the log; Snakemake omits it for 1), capped at
   --cores -- and print wall time, busy core-seconds and the idle share
   1 - busy / (cores x wall). Running jobs count up to the log's last timestamp.

    .venv/bin/python bench/pipeline.py RUN_DIR [--cores 2] [--log LOG] [--markdown]
    .venv/bin/python bench/pipeline.py RUN_DIR --compare BEFORE_RUN_DIR [--markdown]

--markdown prints the tables as Markdown (for docs/performance.md). --compare prints one table per
stage: job-seconds of BEFORE_RUN_DIR and of RUN_DIR (after) and their ratio after / before, plus
wall time and idle share, both runs read in the same invocation.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAMP = re.compile(r"^\[(\w{3} +\w{3} +\d{1,2} +\d\d:\d\d:\d\d +\d{4})\]")
HEADER_DATE = re.compile(r"^\s+Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
PROVIDED = re.compile(r"^Provided cores: (\d+)")
JOB_HEAD = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):\s*$")
JOB_MSG = re.compile(r"^Job (\d+): ")  # a rule with `message:` prints this instead of its block
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)")
ERROR = re.compile(r"^Error in rule (\S+):\s*$")
FIELD = re.compile(r"^    (\w+): (.*)$")

SMK_RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:")
SMK_USE = re.compile(r"^\s*use\s+rule\s+(\w+)\s+(?:from\s+\w+\s+)?as\s+(\w+)")
SMK_KEY = re.compile(r"^\s*(benchmark|threads)\s*:\s*(.*)$")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


@dataclass
class Job:
    jobid: int
    rule: str | None
    start: datetime
    start_line: int
    end: datetime | None = None
    end_line: int | None = None
    failed: bool = False
    threads: int = 1
    wildcards: str = ""
    benchmark: str | None = None
    inputs: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"{self.rule}[{self.wildcards}]" if self.wildcards else str(self.rule)


@dataclass
class Log:
    path: Path
    jobs: list[Job]
    run_start: datetime | None  # the header's Date (DAG building included)
    last: datetime | None  # the last timestamp in the log
    provided_cores: int | None


def parse_log(path: Path) -> Log:
    """Jobs of a Snakemake 9 log: start ("[date]", then "rule X:" / "localrule X:" / "checkpoint X:"
    and its indented "    key: value" lines: input, output, jobid, benchmark, wildcards, threads;
    or "Job N: message" for a rule with `message:`), end ("Finished jobid: N (Rule: X)", or
    "Error in rule X:" with "    jobid: N")."""
    jobs: list[Job] = []
    running: dict[int, Job] = {}
    now = run_start = None
    provided = None
    block = None  # (kind, rule, first line, {field: value}) of the block being read

    def close(block):
        kind, rule, line, fields = block
        if "jobid" not in fields or not fields["jobid"].isdigit():
            return
        jobid = int(fields["jobid"])
        if kind == "error":
            if j := running.pop(jobid, None):
                j.end, j.end_line, j.failed = now, line, True
                j.rule = j.rule or rule
            return
        if now is None:
            return
        j = Job(jobid, rule, now, line)
        j.threads = int(fields["threads"]) if fields.get("threads", "").isdigit() else 1
        j.wildcards = fields.get("wildcards", "")
        j.benchmark = fields.get("benchmark") or None
        j.inputs = set(filter(None, fields.get("input", "").split(", ")))
        j.outputs = set(filter(None, fields.get("output", "").split(", ")))
        jobs.append(j)
        running[jobid] = j

    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines):
        if block is not None:
            if m := FIELD.match(line):
                block[3].setdefault(m.group(1), m.group(2).strip())
                continue
            close(block)
            block = None
        if m := STAMP.match(line):
            now = parse_stamp(m.group(1))
        elif m := HEADER_DATE.match(line):
            run_start = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
        elif m := PROVIDED.match(line):
            provided = int(m.group(1))
        elif m := JOB_HEAD.match(line):
            block = ("job", m.group(1), n, {})
        elif m := ERROR.match(line):
            block = ("error", m.group(1), n, {})
        elif m := JOB_MSG.match(line):
            close(("job", None, n, {"jobid": m.group(1)}))
        elif m := FINISHED.match(line):
            if j := running.pop(int(m.group(1)), None):
                j.end, j.end_line = now, n
                j.rule = j.rule or m.group(2)
    if block is not None:
        close(block)
    return Log(path, jobs, run_start, now, provided)


@dataclass
class RuleInfo:
    stage: str
    benchmark: str | None = None
    threads: int | None = None
    parent: str | None = None  # `use rule PARENT as NAME`


def parse_rules(root: Path) -> dict[str, RuleInfo]:
    """Rule name -> stage (rules/<stage>.smk or Snakefile), `benchmark:` pattern, literal `threads:`."""
    files = [root / "Snakefile", *sorted((root / "rules").glob("*.smk"))]
    rules: dict[str, RuleInfo] = {}
    for f in files:
        if not f.is_file():
            continue
        stage = "Snakefile" if f.name == "Snakefile" else f.stem
        lines = f.read_text(encoding="utf-8").splitlines()
        current = None
        for i, line in enumerate(lines):
            if m := SMK_RULE.match(line):
                current = rules.setdefault(m.group(1), RuleInfo(stage))
            elif m := SMK_USE.match(line):
                current = rules.setdefault(m.group(2), RuleInfo(stage, parent=m.group(1)))
            elif current is not None and (m := SMK_KEY.match(line)):
                key, value = m.group(1), m.group(2).strip()
                if not value and i + 1 < len(lines):
                    value = lines[i + 1].strip()
                value = value.rstrip(",").strip()
                if key == "threads" and value.isdigit():
                    current.threads = int(value)
                elif key == "benchmark" and value[:1] in "\"'":
                    current.benchmark = value.strip("\"'")
    for info in rules.values():  # `use rule` inherits what it does not override
        parent = rules.get(info.parent or "")
        if parent is not None:
            info.benchmark = info.benchmark or parent.benchmark
            info.threads = info.threads if info.threads is not None else parent.threads
    return rules


def pattern_regex(pattern: str) -> re.Pattern:
    """A `benchmark:` path with {wildcards} as a regex ({shard}: digits, the Snakefile's constraint)."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(?:,([^}]*))?\}", pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?:{m.group(2)})" if m.group(2) else r"\d+" if m.group(1) == "shard" else "[^/]+")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + "$")


def read_tsv(path: Path) -> tuple[float, float, float | None] | None:
    """(s, cpu_time, max_rss MB) of a benchmark TSV; s and cpu summed over rows, max_rss the max."""

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    try:
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except OSError:
        return None
    if not rows or "s" not in rows[0]:
        return None
    s = sum(num(r.get("s")) or 0.0 for r in rows)
    cpu = sum(num(r.get("cpu_time")) or 0.0 for r in rows)
    rss = [x for r in rows if (x := num(r.get("max_rss"))) is not None]
    return s, cpu, max(rss) if rss else None


@dataclass
class Record:
    """One job's cost, for the per-rule table."""

    rule: str
    seconds: float
    cpu: float | None
    rss: float | None
    source: str  # "tsv", "tsv-unlogged" (a TSV the log does not name), "running", "log"


@dataclass
class Run:
    root: Path
    log: Log | None
    rules: dict[str, RuleInfo]
    records: list[Record]

    def stage(self, rule: str) -> str:
        info = self.rules.get(rule)
        return info.stage if info else "?"


def find_log(root: Path) -> Path | None:
    """The newest log that ran jobs (`make run` ends with `snakemake --report`, whose log runs none)."""
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
    with_jobs = [p for p in logs if "Finished jobid" in p.read_text(errors="replace")]
    return (with_jobs or logs)[-1] if logs else None


def load_run(root: Path, log_path: Path | None = None, workflow: Path | None = None) -> Run:
    root = Path(root)
    workflow = workflow or (root if (root / "rules").is_dir() else REPO)
    rules = parse_rules(workflow)
    log_path = log_path or find_log(root)
    log = parse_log(log_path) if log_path else None
    jobs = log.jobs if log else []

    by_bench: dict[str, Job] = {j.benchmark: j for j in jobs if j.benchmark}
    patterns = sorted(
        ((pattern_regex(i.benchmark), name, len(re.sub(r"\{[^}]*\}", "", i.benchmark)))
         for name, i in rules.items() if i.benchmark),
        key=lambda t: -t[2],
    )  # fmt: skip
    records: list[Record] = []
    bench_dir = root / "benchmarks"
    for tsv in sorted(bench_dir.rglob("*.tsv")) if bench_dir.is_dir() else []:
        rel = tsv.relative_to(root).as_posix()
        job = by_bench.get(rel)
        if job is not None and job.end is None:
            continue  # still running: counted from the log below
        values = read_tsv(tsv)
        if values is None:
            continue
        if job is not None:
            rule, source = job.rule or "?", "tsv"
        else:
            rule = next((name for rx, name, _ in patterns if rx.match(rel)), "?")
            source = "tsv-unlogged"
        records.append(Record(rule, values[0], values[1], values[2], source))
    for job in jobs:
        if job.end is None and log.last is not None:
            records.append(Record(job.rule or "?", (log.last - job.start).total_seconds(), None, None, "running"))
        elif job.end is not None and not (job.benchmark and (root / job.benchmark).is_file()):
            records.append(Record(job.rule or "?", (job.end - job.start).total_seconds(), None, None, "log"))
    return Run(root, log, rules, records)


# ---------------------------------------------------------------------------------------------
# the three measures


@dataclass
class Row:
    name: str
    stage: str
    jobs: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    rss: float | None = None


def rule_rows(run: Run) -> list[Row]:
    rows: dict[str, Row] = {}
    for r in run.records:
        row = rows.setdefault(r.rule, Row(r.rule, run.stage(r.rule)))
        row.jobs += 1
        row.seconds += r.seconds
        row.cpu += r.cpu or 0.0
        if r.rss is not None:
            row.rss = max(row.rss or 0.0, r.rss)
    return sorted(rows.values(), key=lambda x: (-x.seconds, x.name))


def stage_rows(run: Run) -> list[Row]:
    rows: dict[str, Row] = {}
    for r in rule_rows(run):
        row = rows.setdefault(r.stage, Row(r.stage, r.stage))
        row.jobs += r.jobs
        row.seconds += r.seconds
        row.cpu += r.cpu
        if r.rss is not None:
            row.rss = max(row.rss or 0.0, r.rss)
    return sorted(rows.values(), key=lambda x: (-x.seconds, x.name))


@dataclass
class Step:
    job: Job
    duration: float
    wait: float  # start minus the predecessor's finish (0 for the first job)
    link: str  # how the predecessor released it: "input", "slot", "" (first)


def critical_path(log: Log) -> list[Step]:
    """The chain described in the module docstring, first job first."""
    finished = sorted((j for j in log.jobs if j.end is not None), key=lambda j: j.end_line)
    if not finished:
        return []
    chain = [finished[-1]]
    while True:
        j = chain[-1]
        before = [p for p in finished if p.end_line < j.start_line]
        if not before:
            break
        chain.append(before[-1])
    chain.reverse()
    steps = []
    for k, j in enumerate(chain):
        dur = (j.end - j.start).total_seconds()
        if k == 0:
            steps.append(Step(j, dur, 0.0, ""))
        else:
            p = chain[k - 1]
            link = "input" if p.outputs & j.inputs else "slot"
            steps.append(Step(j, dur, (j.start - p.end).total_seconds(), link))
    return steps


def dependency_chain(log: Log) -> list[Job]:
    """The longest chain of data dependencies among the log's jobs, first job first: job B depends
    on job A when one of A's `output:` paths is among B's `input:` paths; a chain's length is the
    sum of its jobs' log durations (a running job's up to the last timestamp). With unlimited cores
    and the same job durations, the run could not be shorter than this (inputs made before the run
    do not count)."""
    if not log.jobs or log.last is None:
        return []
    producer: dict[str, Job] = {}
    best: dict[int, tuple[float, Job | None]] = {}  # id(job) -> (chain length ending here, previous)
    for j in sorted(log.jobs, key=lambda j: j.start_line):
        preds = [p for f in j.inputs if (p := producer.get(f)) is not None]
        prev = max(preds, key=lambda p: best[id(p)][0], default=None)
        dur = ((j.end or log.last) - j.start).total_seconds()
        best[id(j)] = (dur + (best[id(prev)][0] if prev else 0.0), prev)
        for f in j.outputs:
            producer[f] = j
    j = max(log.jobs, key=lambda j: (best[id(j)][0], j.start_line))  # ties: the later job
    chain = []
    while j is not None:
        chain.append(j)
        j = best[id(j)][1]
    return chain[::-1]


def duration(job: Job, log: Log) -> float:
    return ((job.end or log.last) - job.start).total_seconds()


@dataclass
class CoreUse:
    cores: int
    wall: float  # s, run start -> last timestamp
    busy: float  # core-seconds
    startup: float  # s before the first job started (DAG building)

    @property
    def idle_share(self) -> float:
        return 1.0 - self.busy / (self.cores * self.wall) if self.wall > 0 else 0.0


def start_of(log: Log) -> datetime | None:
    """The run's start: the header's Date, else (or if later) the first job's start."""
    times = [j.start for j in log.jobs] + ([log.run_start] if log.run_start else [])
    return min(times) if times else None


def core_use(log: Log, cores: int) -> CoreUse:
    if not log.jobs or log.last is None:
        return CoreUse(cores, 0.0, 0.0, 0.0)
    first = min(j.start for j in log.jobs)
    t0 = start_of(log)
    events: list[tuple[datetime, int]] = []
    for j in log.jobs:
        events += [(j.start, j.threads), (j.end or log.last, -j.threads)]
    events.sort(key=lambda e: e[0])
    busy, level, prev = 0.0, 0, t0
    for t, d in events:
        busy += min(level, cores) * (t - prev).total_seconds()
        level, prev = level + d, t
    busy += min(level, cores) * (log.last - prev).total_seconds()
    return CoreUse(cores, (log.last - t0).total_seconds(), busy, (first - t0).total_seconds())


# ---------------------------------------------------------------------------------------------
# output


def table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    numeric = re.compile(r"^(-?[\d.]+%?( \(running\))?|-|)$")
    right = [all(numeric.match(r[i]) for r in rows) for i in range(len(header))]
    if markdown:
        sep = ["---:" if r else "---" for r in right]
        return "\n".join("| " + " | ".join(r) + " |" for r in [header, sep, *rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if ra else c.ljust(w) for c, w, ra in zip(r, widths, right)).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def heading(text: str, markdown: bool) -> str:
    return f"\n**{text}**\n" if markdown else f"\n{text}\n{'=' * len(text)}"


def cost_rows(rows: list[Row], total: float, with_stage: bool) -> list[list[str]]:
    out = []
    for r in rows:
        cells = [r.name] + ([r.stage] if with_stage else [])
        cells += [str(r.jobs), f"{r.seconds:.1f}", f"{100 * r.seconds / total:.1f}%" if total else "-",
                  f"{r.cpu:.1f}", f"{r.rss:.0f}" if r.rss is not None else "-"]  # fmt: skip
        out.append(cells)
    return out


def report(run: Run, cores: int, markdown: bool) -> str:
    out = []
    log = run.log
    src = {}
    for r in run.records:
        src[r.source] = src.get(r.source, 0) + 1
    n_fin = sum(j.end is not None for j in log.jobs) if log else 0
    n_run = sum(j.end is None for j in log.jobs) if log else 0
    out.append(f"run: {run.root}")
    out.append(f"log: {log.path if log else 'none'} ({n_fin} jobs finished, {n_run} running"
               f"{', last timestamp ' + str(log.last) if log and log.last else ''})")  # fmt: skip
    out.append("job records: " + ", ".join(f"{v} {k}" for k, v in sorted(src.items())))

    stages, rules = stage_rows(run), rule_rows(run)
    total = sum(r.seconds for r in rules)
    total_row = ["total", str(sum(r.jobs for r in rules)), f"{total:.1f}", "100%",
                 f"{sum(r.cpu for r in rules):.1f}", "-"]  # fmt: skip
    head = ["jobs", "job-s", "share", "cpu-s", "max RSS MB"]
    out.append(heading("Job-seconds per stage", markdown))
    out.append(table(["stage", *head], cost_rows(stages, total, False) + [total_row], markdown))
    out.append(heading("Job-seconds per rule", markdown))
    out.append(table(["rule", "stage", *head], cost_rows(rules, total, True) + [total_row[:1] + [""] + total_row[1:]],
                     markdown))  # fmt: skip

    if log:
        steps = critical_path(log)
        t0 = start_of(log)
        out.append(heading("Critical path (chain of releasing jobs, from the log)", markdown))
        rows = [[str(k + 1), s.job.label, str(s.job.jobid), f"{(s.job.start - t0).total_seconds():.0f}",
                 f"{s.duration:.0f}", f"{s.wait:.0f}", s.link or "-"] for k, s in enumerate(steps)]  # fmt: skip
        if steps:
            span = (steps[-1].job.end - steps[0].job.start).total_seconds()
            dur, wait = sum(s.duration for s in steps), sum(s.wait for s in steps)
            rows.append(["", f"total ({len(steps)} jobs)", "", "", f"{dur:.0f}", f"{wait:.0f}", f"span {span:.0f} s"])
        out.append(table(["#", "job", "jobid", "start s", "duration s", "wait s", "link"], rows, markdown))
        if steps:
            by_stage: dict[str, float] = {}
            for st in steps:
                by_stage[run.stage(st.job.rule or "?")] = by_stage.get(run.stage(st.job.rule or "?"), 0.0) + st.duration
            out.append(
                "on this path, by stage: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1]))
            )

        chain = dependency_chain(log)
        out.append(heading("Longest dependency chain (input -> output edges, from the log)", markdown))
        rows = [[str(k + 1), j.label, str(j.jobid), f"{(j.start - t0).total_seconds():.0f}",
                 f"{duration(j, log):.0f}" + ("" if j.end else " (running)")] for k, j in enumerate(chain)]  # fmt: skip
        rows.append(["", f"total ({len(chain)} jobs)", "", "", f"{sum(duration(j, log) for j in chain):.0f}"])
        out.append(table(["#", "job", "jobid", "start s", "duration s"], rows, markdown))

        running = [j for j in log.jobs if j.end is None]
        if running:
            out.append(
                "still running: "
                + ", ".join(
                    f"{j.label} (jobid {j.jobid}, {(log.last - j.start).total_seconds():.0f} s so far)" for j in running
                )
            )

        use = core_use(log, cores)
        out.append(heading(f"Core use ({cores} cores)", markdown))
        rows = [["wall time s", f"{use.wall:.0f}"], ["before the first job s", f"{use.startup:.0f}"],
                ["busy core-s", f"{use.busy:.0f}"], ["idle core-s", f"{cores * use.wall - use.busy:.0f}"],
                ["idle share", f"{100 * use.idle_share:.1f}%"]]  # fmt: skip
        out.append(table(["", "value"], rows, markdown))
        if log.provided_cores and log.provided_cores != cores:
            out.append(f"note: the log says 'Provided cores: {log.provided_cores}' (--cores {log.provided_cores})")
    return "\n".join(out)


def compare(before: Run, after: Run, cores: int, markdown: bool) -> str:
    b = {r.name: r for r in stage_rows(before)}
    a = {r.name: r for r in stage_rows(after)}
    names = sorted(set(a) | set(b), key=lambda n: (-(b[n].seconds if n in b else 0.0), n))

    def ratio(x: float, y: float) -> str:
        return f"{y / x:.2f}" if x > 0 else "-"

    rows = []
    for n in names:
        rb, ra = b.get(n, Row(n, n)), a.get(n, Row(n, n))
        rows.append(
            [n, str(rb.jobs), str(ra.jobs), f"{rb.seconds:.1f}", f"{ra.seconds:.1f}", ratio(rb.seconds, ra.seconds)]
        )
    tb, ta = sum(r.seconds for r in b.values()), sum(r.seconds for r in a.values())
    rows.append(["total", str(sum(r.jobs for r in b.values())), str(sum(r.jobs for r in a.values())),
                 f"{tb:.1f}", f"{ta:.1f}", ratio(tb, ta)])  # fmt: skip
    out = [f"before: {before.root}", f"after:  {after.root}", heading("Job-seconds per stage", markdown)]
    out.append(
        table(["stage", "jobs before", "jobs after", "job-s before", "job-s after", "after / before"], rows, markdown)
    )
    if before.log and after.log:
        ub, ua = core_use(before.log, cores), core_use(after.log, cores)
        out.append(heading(f"Run ({cores} cores)", markdown))
        out.append(table(["", "before", "after", "after / before"], [
            ["wall time s", f"{ub.wall:.0f}", f"{ua.wall:.0f}", ratio(ub.wall, ua.wall)],
            ["busy core-s", f"{ub.busy:.0f}", f"{ua.busy:.0f}", ratio(ub.busy, ua.busy)],
            ["idle share", f"{100 * ub.idle_share:.1f}%", f"{100 * ua.idle_share:.1f}%", ""],
        ], markdown))  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run_dir", type=Path, help="the run's working directory (benchmarks/, .snakemake/log/)")
    ap.add_argument("--cores", type=int, default=2, help="cores of the run, for the idle share (default 2)")
    ap.add_argument(
        "--log", type=Path, help="the Snakemake log (default: the newest in RUN_DIR/.snakemake/log that ran jobs)"
    )
    ap.add_argument("--workflow", type=Path, help="where Snakefile and rules/ are (default: RUN_DIR, else this repo)")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    ap.add_argument("--compare", type=Path, metavar="BEFORE_RUN_DIR", help="baseline run; RUN_DIR is 'after'")
    args = ap.parse_args(argv)
    for d in [args.run_dir] + ([args.compare] if args.compare else []):
        if not d.is_dir():
            ap.error(f"{d}: not a directory")
    run = load_run(args.run_dir, args.log, args.workflow)
    if args.compare:
        print(compare(load_run(args.compare, None, args.workflow), run, args.cores, args.markdown))
    else:
        print(report(run, args.cores, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
