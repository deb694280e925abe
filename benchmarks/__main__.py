"""Benchmarks as declarative studies (``benchmarks/studies/*.yaml``).

    python -m benchmarks list                          # the studies, one line each
    python -m benchmarks run STUDY [--quick] [--only tune|test] [--cells GLOB] [--batch-size B]
    python -m benchmarks status [STUDY] [--cells GLOB]   # what is done, what is left (runs nothing)
    python -m benchmarks report                        # writes docs/results.md whole

``run`` resumes per sample; several processes (or machines sharing the folder) may run disjoint
``--cells`` of one study at once. ``--quick`` runs the study's small version into
``benchmarks/results/<study>/quick/`` (never mixed with the full tables).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.study import StudyError, all_studies, load


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the studies")
    r = sub.add_parser("run", help="run a study (tuning on validation, then the test cells)")
    r.add_argument("study")
    r.add_argument("--quick", action="store_true", help="the study's small version (minutes on CPU)")
    r.add_argument("--only", nargs="+", choices=["tune", "test"], help="run only these stages")
    r.add_argument("--cells", default=None, help="glob over cell names TASK_METHOD_sSTEPS and tuning groups "
                   "TASK_sSTEPS (e.g. 'gaussian_blur_*', '*_s20')")
    r.add_argument("--batch-size", type=int, default=None, help="predict batch size (results do not depend on it)")
    st = sub.add_parser("status", help="what a study has done and what is left (runs nothing)")
    st.add_argument("study", nargs="?", help="one study (default: a line per restoration study)")
    st.add_argument("--cells", default=None, help="glob as for run")
    sub.add_parser("report", help="write docs/results.md from every study's tables")
    a = p.parse_args(argv)
    try:
        if a.cmd == "list":
            for s in all_studies():
                print(f"{s.name:28s} {s.kind:12s} {s.title}")
        elif a.cmd == "run":
            from benchmarks.runner import run_study

            run_study(load(a.study), a.quick, a.only, a.cells, a.batch_size)
        elif a.cmd == "status":
            from benchmarks.progress import status_lines, summary_line

            if a.study:
                print("\n".join(status_lines(load(a.study), a.cells)))
            else:
                for s in all_studies():
                    if s.kind != "script":
                        print(summary_line(s))
        else:
            from benchmarks.report import write_report

            print(f"wrote {write_report()}")
    except StudyError as err:
        print(f"benchmarks: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
