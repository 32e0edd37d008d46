"""``edgellm run``: a benchmarking job without Ianvs."""

import shutil
import sys

from edgellm.bench.runner import BenchmarkRunner, TableOptions
from edgellm.bench.table import DEFAULT_WIDTH
from edgellm.errors import ConfigError

EXIT_FAILED_CASES = 1
EXIT_INTERRUPTED = 130  # as a shell reports a process that SIGINT ended


def run(args):
    if args.address and args.executor != "ray":
        raise ConfigError("--address", "only with --executor ray")
    # the run context of the job's real backends; a `store` or `store_mode`
    # hyperparameter in the algorithm yaml still wins
    table = TableOptions(terminal_width(), args.wide, args.confidence)
    report = BenchmarkRunner(args.file, progress=not args.no_progress, jobs=args.jobs,
                             store=args.store, store_mode=args.store_mode,
                             max_failed_share=args.max_failed_share, table=table,
                             executor=args.executor, address=args.address).run()
    for o in report.outcomes:
        # per case with a real model: what the response store answered, what was called
        if any(not c.simulated for c in o.requests.values()):
            print(f"test case {o.case.index + 1}/{len(report.job.test_cases)} "
                  f"{o.case.label()}: " + "; ".join(c.describe() for c in o.requests.values()))
    if report.table:
        print(report.table)
    if report.selected_rank_file:
        print(f"rank files: {report.selected_rank_file} (and all_rank.csv beside it)")
    total = len(report.job.test_cases)
    for o in report.failed:
        print(f"FAILED test case {o.case.index + 1}/{total} {o.case.label()}: "
              f"{o.error} (traceback: {o.output_dir}/error.txt)", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {total} test cases failed; the others "
              f"{'that finished ' if report.interrupted else ''}are ranked", file=sys.stderr)
    if report.interrupted:
        print(f"edgellm: interrupted: {len(report.interrupted)} of {total} test cases did "
              f"not finish and are not ranked", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.failed:
        return EXIT_FAILED_CASES
    return 0


def terminal_width():
    """The terminal's width, or 120 columns when the output goes to a file or pipe."""
    if not sys.stdout.isatty():
        return DEFAULT_WIDTH
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
