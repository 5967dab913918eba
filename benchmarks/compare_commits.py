"""Speed of two commits of momentloc side by side: the same ``momentloc bench`` rows, each run
in a fresh process pinned to one core with one thread, the two commits alternating, and the
median ratio per row printed (never asserted).

    python benchmarks/compare_commits.py BASE NEW [--row "MODEL PRESET [bench options]"]...
        [--reps 5] [--core 1] [--json OUT.json]

Each commit is checked out with ``git worktree`` into a temporary directory and run with
``PYTHONPATH`` at its ``src`` (the script checks that the process imports that copy). A row is
``momentloc bench`` arguments after ``--model`` and ``--preset``, e.g. ``"csmgan activitynet
--batch-size 8 --steps 2"``; the timed figure is ``train_step_ms`` (the training step), or
``epoch_s`` for a row with ``--epoch``. Repetition ``i`` runs BASE then NEW when ``i`` is even
and NEW then BASE when odd, so drifts of a shared machine's load hit both alike. The ratio is
BASE time / NEW time (above 1: NEW is faster), the median over the repetitions' pairs.
``NEW`` may be ``WORKTREE`` for the uncommitted working tree this script lives in.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DEFAULT_ROWS = [
    "csmgan activitynet --batch-size 8 --steps 2",
    "fian activitynet --batch-size 8 --steps 2",
    "cimha charades --batch-size 8 --steps 2",
    "cma charades --batch-size 8 --steps 2",
    "tan2d charades --batch-size 4 --steps 2",
    "lgn charades --batch-size 4 --steps 2",
]


def checkout(commit: str, into: Path) -> Path:
    """The ``src`` directory of ``commit`` checked out under ``into`` (a git worktree)."""
    if commit == "WORKTREE":
        return REPO / "src"
    path = into / commit.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path),
                    commit], check=True)
    return path / "src"


def remove_worktree(src: Path) -> None:
    if src != REPO / "src":
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(src.parent)],
                       check=False)


def environment(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONSTARTUP", None)
    return env


def check_import(src: Path) -> None:
    """The process with this environment imports momentloc from ``src``, not an installed copy."""
    out = subprocess.run([sys.executable, "-c", "import momentloc; print(momentloc.__file__)"],
                         env=environment(src), capture_output=True, text=True, check=True).stdout
    if not Path(out.strip()).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"PYTHONPATH={src} imports momentloc from {out.strip()}")


def run_row(src: Path, row: str, core: int) -> float:
    """One fresh process on one core: the row's timed figure."""
    parts = shlex.split(row)
    model, preset, rest = parts[0], parts[1], parts[2:]
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "momentloc", "bench", "--model",
           model, "--preset", preset, "--device", "cpu", "--json", *rest]
    proc = subprocess.run(cmd, env=environment(src), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({src}):\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    return float(out["epoch_s"] if "--epoch" in rest else out["train_step_ms"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the commit to compare against (e.g. 42a3f16)")
    ap.add_argument("new", help="the commit to measure (or WORKTREE)")
    ap.add_argument("--row", action="append", dest="rows",
                    help="MODEL PRESET [bench options] (repeatable; default: the paper presets "
                         "of the recurrent models and of 2D-TAN and LGN at small batches)")
    ap.add_argument("--reps", type=int, default=5, help="processes per commit and row (default: 5)")
    ap.add_argument("--core", type=int, default=1, help="the CPU core to pin to (default: 1)")
    ap.add_argument("--json", metavar="OUT", help="also write every time and ratio to this file")
    args = ap.parse_args()
    rows = args.rows or DEFAULT_ROWS
    # killed: leave through the finally below, which removes the worktrees
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    with tempfile.TemporaryDirectory(prefix="momentloc-compare-") as tmp:
        srcs = [checkout(c, Path(tmp)) for c in (args.base, args.new)]
        try:
            for src in srcs:
                check_import(src)
            load0 = os.getloadavg()[0]
            for row in rows:
                times: tuple[list[float], list[float]] = ([], [])
                for rep in range(args.reps):
                    order = (0, 1) if rep % 2 == 0 else (1, 0)
                    for k in order:
                        times[k].append(run_row(srcs[k], row, args.core))
                ratios = [b / n for b, n in zip(*times)]
                res = {"row": row, "base": times[0], "new": times[1], "ratios": ratios,
                       "median_ratio": statistics.median(ratios),
                       "load_avg_1min": os.getloadavg()[0]}
                results.append(res)
                unit = "s/epoch" if "--epoch" in row else "ms/step"
                print(f"{row}: {args.base} {statistics.median(times[0]):.1f} {unit}, {args.new} "
                      f"{statistics.median(times[1]):.1f} {unit}, median ratio "
                      f"{res['median_ratio']:.2f} (pairs {min(ratios):.2f}-{max(ratios):.2f}, "
                      f"load {res['load_avg_1min']:.1f})", flush=True)
        finally:
            for src in srcs:
                remove_worktree(src)
    if args.json:
        Path(args.json).write_text(json.dumps({"base": args.base, "new": args.new,
                                               "reps": args.reps, "core": args.core,
                                               "load_avg_1min_start": load0,
                                               "rows": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
