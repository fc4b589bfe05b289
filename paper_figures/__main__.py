"""``python -m paper_figures [--data DIR] [--out DIR]``: draw every figure (and write every table:
Markdown, LaTeX and CSV) whose data exist.

Figures whose data are missing (no file, or a study without the grid points the figure needs,
such as a scratch protocol) are listed with the command that makes their data; the exit status
is 0 then. A figure whose data exist but cannot be drawn (a file without a variable the
figure needs, ...) is reported with the reason and makes the exit status 1, after all the
others are drawn. A missing ``--data`` folder, or an ``--out`` that is neither a writable folder
nor a path where one can be made, is a one-line error (exit status 2) before anything is drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dilution.io import check_output_folder

from .registry import FIGURES, TABLES, render_all

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paper_figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="figures and tables, and the files they read under --data:\n" + "\n".join(
            f"  {f.name}: {', '.join(f.inputs)}" for f in FIGURES + TABLES))
    parser.add_argument("--data", type=Path, default=Path("reproduce/data"),
                        help="folder holding the datasets (default: reproduce/data, where `dilution reproduce` "
                             "writes them)")
    parser.add_argument("--out", type=Path, default=Path("reproduce/figures"),
                        help="output folder (default: reproduce/figures)")
    parser.add_argument("--dpi", type=int, default=200, help="PNG resolution in dots per inch (default: 200)")
    args = parser.parse_args(argv)
    try:
        check_output_folder("--out", args.out)  # before any figure is drawn
        report = render_all(args.data, args.out, dpi=args.dpi)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for o in report.by_status("drawn"):
        print(f"drew {o.figure.name}: {', '.join(str(p) for p in o.files)}")
    for o in report.tables_by_status("drawn"):
        print(f"wrote {o.figure.name}: {', '.join(str(p) for p in o.files)}")
    for o in report.by_status("missing") + report.tables_by_status("missing"):
        why = o.error or f"no {', '.join(str(p) for p in o.files)} under {args.data}"
        commands = o.figure.commands(args.data, [str(p) for p in o.files] if o.files else None)
        print(f"missing {o.figure.name}: {why}; make it with: {' && '.join(commands)}")
    failed = report.by_status("failed") + report.tables_by_status("failed")
    for o in failed:
        print(f"failed {o.figure.name}: {o.error}", file=sys.stderr)
    print(f"gallery: {report.gallery}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
