"""The ``edgellm`` command."""

import argparse
import sys

from edgellm import __version__
from edgellm.errors import ConfigError

EXIT_FAILED_CASES = 1
EXIT_BAD_INPUT = 2


def _run(args):
    from edgellm.bench.runner import BenchmarkRunner

    report = BenchmarkRunner(args.file, progress=not args.no_progress, jobs=args.jobs).run()
    if report.table:
        print(report.table)
    if report.selected_rank_file:
        print(f"rank files: {report.selected_rank_file} (and all_rank.csv beside it)")
    for o in report.failed:
        print(f"FAILED test case {o.case.index + 1}/{len(report.outcomes)} {o.case.label()}: "
              f"{o.error} (traceback: {o.output_dir}/error.txt)", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(report.outcomes)} test cases failed; "
              f"the others are ranked", file=sys.stderr)
        return EXIT_FAILED_CASES
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="edgellm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgellm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an Ianvs benchmarkingjob.yaml without Ianvs")
    run.add_argument("-f", "--file", required=True, help="benchmarkingjob.yaml; paths in it "
                     "resolve against the current directory, as in Ianvs")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                     help="run up to N test cases at once in worker processes (default 1; "
                          "keep 1 for GPU or rate-limited API backends)")
    run.set_defaults(handler=_run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"edgellm: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("edgellm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
