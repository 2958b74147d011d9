"""Kill and resume (issue #11): SIGKILL the workflow at random moments and check it recovers exactly.

One clean run first (its wall time T). Then each of N trials starts from an empty directory, starts
snakemake in its own process group, SIGKILLs the group (snakemake and every job) at a seeded random
moment in [0.05 T, 0.95 T], unlocks, reruns with --rerun-incomplete to completion, and checks:

- recovered: the rerun succeeds, every output opens and every recorded hash verifies, no temporary
  file is left, and a dry run then has nothing to do;
- identical: every file under results/ equals the clean run's (bytewise; the timing records listed
  in docs/reliability.md are compared without their timing fields).

Prints `recovered N/10, identical N/10` and how many trials resumed training from a checkpoint.

A trial costs a whole run, so 10 independent trials of `config/config.yaml` (about 20 min a run on
2 cores) take hours. `--chain` gives the same 10 kills in about two runs: one run is SIGKILLed 10
times: the first kill once a model has its first epoch checkpoint (so that training must resume),
then each after a seeded random stretch of `--stretch` (default 1.5-5 %) of the clean run's wall
time. After each kill:

- recovered: `--unlock` works, every output present opens and verifies (a killed writer's
  temporary file may remain; its next writer removes it), and the rerun that follows succeeds
  (it may be the next killed stretch: a rerun that fails on its own is caught before the kill);
- identical: every output present equals the clean run's;

and at the end the run completes, leaves no temporary file, has nothing left to do, and its whole
results/ tree equals the clean run's (the determinism check of the full config).

    .venv/bin/python bench/kill_resume.py --chain               # config/config.yaml, target all, ~2 runs
    .venv/bin/python bench/kill_resume.py                       # 10 independent trials (hours on a CPU)
    .venv/bin/python bench/kill_resume.py config/tiny.yaml --target models
    # compare with a finished `make run` (its results/ may hold more targets) instead of a clean run:
    .venv/bin/python bench/kill_resume.py --chain --reference ../other/main --reference-seconds 1500 --target models
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability import workflow as wf  # noqa: E402 - shared with the test suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="*", default=[str(ROOT / "config" / "config.yaml")], help="config file(s)")
    ap.add_argument("--target", nargs="+", default=["all"], help="snakemake target(s)")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary directory)")
    ap.add_argument("--chain", action="store_true", help="kill one run --trials times instead of one run per trial")
    ap.add_argument("--stretch", type=float, nargs=2, default=(0.015, 0.05), metavar=("LO", "HI"),
                    help="--chain: run between kills, as fractions of the clean run's wall time")  # fmt: skip
    ap.add_argument("--reference", type=Path, metavar="DIR",
                    help="a finished clean run of the same config (e.g. a `make run` checkout) to compare with, "
                         "instead of running one; it may hold more targets' files")  # fmt: skip
    ap.add_argument("--reference-seconds", type=float, help="--reference: the wall time of its snakemake run")
    args = ap.parse_args()
    configs = [str(Path(c).resolve()) for c in args.config]
    base = args.workdir or Path(tempfile.mkdtemp(prefix="kill_resume_"))
    rng = random.Random(args.seed)

    base.mkdir(parents=True, exist_ok=True)
    clean = base / "clean"
    record = base / "clean_seconds.txt"  # with --workdir, a finished clean run is reused
    if args.reference:
        if args.reference_seconds is None:
            ap.error("--reference needs --reference-seconds (the stretches between kills are fractions of it)")
        clean, clean_s = args.reference.resolve(), args.reference_seconds
        print(f"reference run: {clean} ({clean_s:.0f}s)", flush=True)
    elif record.is_file():
        clean_s = float(record.read_text())
    else:
        t = time.monotonic()
        wf.run(clean, args.target, configs)
        clean_s = time.monotonic() - t
        record.write_text(f"{clean_s}\n")
    print(f"clean run: {clean_s:.0f}s, {len(wf.files(clean))} files under results/", flush=True)

    if args.chain:
        chained(base, clean, args.target, configs, clean_s, args.trials, rng, args.stretch, bool(args.reference))
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
        return

    recovered = identical = resumed = killed = 0
    for i in range(args.trials):
        work = base / f"trial_{i:02d}"
        at = rng.uniform(0.05, 0.95) * clean_s
        was_killed = wf.run_with_kill(work, args.target, configs, lambda s, at=at: s > at)
        killed += was_killed
        ok = same = False
        try:
            wf.unlock(work, args.target, configs)
            wf.run(work, args.target, configs, "--rerun-incomplete")
            wf.verify_outputs(work)
            dry = wf.run(work, args.target, configs, "-n")
            ok = "Nothing to be done" in dry.stdout + dry.stderr
            problems = wf.compare_trees(clean, work, a_may_have_more=bool(args.reference))
            same = not problems
            if problems:
                print("  " + "\n  ".join(problems[:5]))
        except Exception as e:  # a failed recovery is a result to count, not a crash of the bench
            print(f"  trial {i}: recovery failed: {str(e).splitlines()[0][:300]}")
        logs = list((work / "logs").rglob("train/*.log"))  # logs/train, logs/bam/train, logs/posthoc/train
        did_resume = any("resuming from epoch" in p.read_text() for p in logs)
        recovered, identical, resumed = recovered + ok, identical + same, resumed + did_resume
        print(f"trial {i}: kill at {at:.1f}s ({'killed' if was_killed else 'finished first'}), "
              f"recovered {ok}, identical {same}, training resumed {did_resume}", flush=True)  # fmt: skip
        if ok and same and not args.workdir:
            shutil.rmtree(work)
    n = args.trials
    print(f"recovered {recovered}/{n}, identical {identical}/{n} ({killed} killed mid-run, training resumed from a "
          f"checkpoint in {resumed})")  # fmt: skip
    if not args.workdir:
        shutil.rmtree(base, ignore_errors=True)


def chained(
    base: Path,
    clean: Path,
    targets,
    configs,
    clean_s: float,
    trials: int,
    rng: random.Random,
    stretch,
    reference: bool = False,
) -> None:
    """One run SIGKILLed `trials` times (see the module docstring), checked after every kill against
    `clean` (a `reference` run may hold more targets' files than this run makes)."""
    work = base / "chained"
    first_epoch = lambda: any((work / "results/models").glob("*/checkpoints/epoch_001.pt"))  # noqa: E731
    recovered = identical = kills = 0
    pending = None  # the last kill's checks, confirmed once the rerun after it has run
    t0 = time.monotonic()
    for i in range(trials):
        wait = rng.uniform(*stretch) * clean_s
        when = (lambda s: first_epoch()) if i == 0 else (lambda s, wait=wait: s > wait)
        try:
            was_killed = wf.run_with_kill(work, targets, configs, when, timeout=10 * clean_s)
        except AssertionError as e:  # the rerun after the previous kill failed on its own
            print(f"  rerun after kill {kills} failed: {str(e).splitlines()[0][:300]}", flush=True)
            pending = None
            break
        recovered += pending is not None and pending  # that rerun succeeded up to this kill
        pending = None
        if not was_killed:
            print(f"kill {i}: the run finished first, no more kills", flush=True)
            break
        kills += 1
        wf.unlock(work, targets, configs)
        try:
            n = wf.verify_outputs(work, allow_tmp=True)
            pending = True
        except Exception as e:  # a broken output after a kill is a result to count
            print(f"  kill {i}: an output does not verify: {str(e).splitlines()[0][:300]}", flush=True)
            pending, n = False, 0
        problems = wf.compare_trees(clean, work, common_only=True)
        identical += not problems
        done = len(wf.files(work))
        print(f"kill {i}: {'after the first epoch checkpoint' if i == 0 else f'after {wait:.0f}s'} "
              f"({time.monotonic() - t0:.0f}s in all), {done} files present, "
              f"{n} verified, identical {not problems}" + "".join(f"\n  {p}" for p in problems[:5]), flush=True)  # fmt: skip
    final_ok = final_same = False
    try:
        wf.run(work, targets, configs, "--rerun-incomplete")
        recovered += pending is not None and pending
        n = wf.verify_outputs(work)
        dry = wf.run(work, targets, configs, "-n")
        final_ok = "Nothing to be done" in dry.stdout + dry.stderr
        problems = wf.compare_trees(clean, work, a_may_have_more=reference)
        final_same = not problems
        for p in problems[:10]:
            print("  " + p)
    except Exception as e:
        print(f"  final rerun failed: {str(e).splitlines()[0][:300]}")
    logs = list((work / "logs").rglob("train/*.log"))  # logs/train, logs/bam/train, logs/posthoc/train
    resumed = sum("resuming from epoch" in p.read_text() for p in logs)
    files = wf.files(work)
    print(f"final: completed, verified and nothing left to do: {final_ok}; whole results/ tree equals the clean "
          f"run's: {final_same} ({len(files)} files, {sum(wf.is_excluded(k) for k in files)} of them timing records "
          f"compared without their timing fields); {time.monotonic() - t0:.0f}s for the killed run in all")  # fmt: skip
    print(f"recovered {recovered}/{kills}, identical {identical}/{kills} (one run killed {kills} times; "
          f"{resumed} training log(s) show a resume from a checkpoint)")  # fmt: skip


if __name__ == "__main__":
    main()
