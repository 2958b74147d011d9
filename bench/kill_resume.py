"""Kill and resume (issue #11): SIGKILL the workflow at random moments and check it recovers exactly.

One clean run first (its wall time T). Then each of N trials starts from an empty directory, starts
snakemake in its own process group, SIGKILLs the group (snakemake and every job) at a seeded random
moment in [0.05 T, 0.95 T], unlocks, reruns with --rerun-incomplete to completion, and checks:

- recovered: the rerun succeeds, every output opens and every recorded hash verifies, no temporary
  file is left, and a dry run then has nothing to do;
- identical: every file under results/ equals the clean run's (bytewise; the timing records listed
  in docs/reliability.md are compared without their timing fields).

Prints `recovered N/10, identical N/10` and how many trials resumed training from a checkpoint.

    .venv/bin/python bench/kill_resume.py                       # config/config.yaml, target all (hours on a CPU)
    .venv/bin/python bench/kill_resume.py config/tiny.yaml --target models
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
    args = ap.parse_args()
    configs = [str(Path(c).resolve()) for c in args.config]
    base = args.workdir or Path(tempfile.mkdtemp(prefix="kill_resume_"))
    rng = random.Random(args.seed)

    t = time.monotonic()
    wf.run(base / "clean", args.target, configs)
    clean_s = time.monotonic() - t
    print(f"clean run: {clean_s:.0f}s, {len(wf.files(base / 'clean'))} files under results/", flush=True)

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
            problems = wf.compare_trees(base / "clean", work)
            same = not problems
            if problems:
                print("  " + "\n  ".join(problems[:5]))
        except Exception as e:  # a failed recovery is a result to count, not a crash of the bench
            print(f"  trial {i}: recovery failed: {str(e).splitlines()[0][:300]}")
        logs = list((work / "logs/train").glob("*.log")) if (work / "logs/train").is_dir() else []
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


if __name__ == "__main__":
    main()
