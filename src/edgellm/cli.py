"""The ``edgellm`` command."""

import argparse
import os
import sys

from edgellm import __version__
from edgellm.errors import ConfigError

EXIT_FAILED_CASES = 1
EXIT_BAD_INPUT = 2


def _run(args):
    from edgellm.bench.runner import BenchmarkRunner

    # backends read these (worker processes inherit them); a `store` or `store_mode`
    # hyperparameter in the algorithm yaml still wins
    if args.store:
        os.environ["EDGELLM_STORE"] = os.path.abspath(args.store)
    if args.store_mode:
        os.environ["EDGELLM_STORE_MODE"] = args.store_mode

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


def _convert(args):
    from edgellm.tasks.datasets import read_items, write_items

    items, skipped = read_items(args.source, args.source_format, args.skip_bad_rows)
    written = write_items(items, args.target, args.target_format)
    counts = {}
    for item in items:
        counts[item.code] = counts.get(item.code, 0) + 1
    print(f"wrote {written} items to {args.target} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
          + (f"; skipped {skipped} bad rows" if skipped else ""))
    return 0


def _jobs(value):
    if value == "auto":
        return value
    try:
        if int(value) >= 1:
            return int(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a number >= 1 or 'auto', got {value!r}")


def _import(args):
    from edgellm.models.importers import read_entries
    from edgellm.models.store import open_store

    entries = []  # every file read and checked before the store changes
    for source in args.sources:
        entries += read_entries(source, args.format, args.task_type, args.system_prompt)
    store = open_store(args.store)
    written, new = store.save_many(entries)
    store.close()
    print(f"imported {written} responses into {store.path} ({new} new, "
          f"{written - new} replaced stored ones)")
    return 0


def _export(args):
    from edgellm.models.importers import export_store
    from edgellm.models.store import open_store, store_path

    if not os.path.isfile(store_path(args.store)):
        raise ConfigError(store_path(args.store), "no response store here")
    store = open_store(args.store)
    count = export_store(store, args.target, args.model)
    store.close()
    print(f"exported {count} responses from {store.path} to {args.target}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="edgellm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgellm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an Ianvs benchmarkingjob.yaml without Ianvs")
    run.add_argument("-f", "--file", required=True, help="benchmarkingjob.yaml; paths in it "
                     "resolve against the current directory, as in Ianvs")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("-j", "--jobs", type=_jobs, default="auto", metavar="N",
                     help="run up to N test cases at once in worker processes (default "
                          "auto: every core when all models are simulated, else 1)")
    run.add_argument("--store", metavar="PATH",
                     help="response store of the real backends (default: "
                          "<workspace>/responses.sqlite; sets EDGELLM_STORE)")
    run.add_argument("--store-mode", choices=["record", "replay", "auto"],
                     help="record: always call the model; replay: stored responses only; "
                          "auto (default): replay what is stored, call for the rest "
                          "(sets EDGELLM_STORE_MODE)")
    run.set_defaults(handler=_run)

    store_help = ("response store file (default: env EDGELLM_STORE, else "
                  "./workspace/responses.sqlite, where 'edgellm run' of a job with "
                  "workspace ./workspace keeps it)")
    import_ = commands.add_parser(
        "import", help="bring recorded responses into the response store: Ianvs' "
                       "cache.json, outcome matrices (CSV/JSONL), 'edgellm export' files")
    import_.add_argument("sources", nargs="+", metavar="FILE")
    import_.add_argument("--store", metavar="PATH", help=store_help)
    import_.add_argument("--format", choices=["ianvs-cache", "outcomes", "store"],
                         help="default: .json is ianvs-cache, .csv outcomes, .jsonl "
                              "store when written by 'edgellm export', else outcomes")
    import_.add_argument("--task-type", help="ianvs-cache: the task type of the queries, "
                         "which decides the prompt edgellm sends (default: multiple choice)")
    import_.add_argument("--system-prompt", help="ianvs-cache: the system_prompt of the "
                         "algorithm that replays them (default: none)")
    import_.set_defaults(handler=_import)

    export = commands.add_parser("export", help="write the response store as JSONL")
    export.add_argument("target", help="a .jsonl file ('edgellm import' reads it back)")
    export.add_argument("--store", metavar="PATH", help=store_help)
    export.add_argument("--model", help="only the responses of this model identity")
    export.set_defaults(handler=_export)

    dataset = commands.add_parser("dataset", help="work with task datasets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    convert = dataset_commands.add_parser(
        "convert", help="convert between the tasks CSV/JSONL, Ianvs and mcq formats")
    convert.add_argument("source", help="a .csv/.jsonl file or an Ianvs folder (metadata.json)")
    convert.add_argument("target", help="a .csv/.jsonl file (tasks format) or a folder (Ianvs)")
    convert.add_argument("--from", dest="source_format", choices=["tasks", "ianvs", "mcq"],
                         help="source format (default: detected from the file)")
    convert.add_argument("--to", dest="target_format", choices=["tasks", "ianvs"],
                         help="target format (default: from the target's name)")
    convert.add_argument("--skip-bad-rows", action="store_true",
                         help="leave out rows that cannot be read, and count them")
    convert.set_defaults(handler=_convert)
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
