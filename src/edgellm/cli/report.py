"""``edgellm report``: the cost-quality view of a job or of routers on a matrix."""

import os

from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.report import job_report, outcomes_report, write_report


def report(args):
    if bool(args.file) == bool(args.outcomes):
        raise ConfigError("-f/--outcomes", "give either -f benchmarkingjob.yaml or --outcomes "
                                           "MATRIX (one of the two)")
    if args.file:
        if args.router:
            raise ConfigError("--router", "only with --outcomes (a job's routers are its "
                                          "test cases)")
        if args.out:
            check_target(args.out, folder=True)
        report, folder = job_report(args.file, args.edge_model, args.cloud_model)
        folder = args.out or folder
        check_target(folder, folder=True)
    else:
        for option in ("edge_model", "cloud_model", "out"):
            if not getattr(args, option):
                raise ConfigError(f"--{option.replace('_', '-')}", "required with --outcomes")
        check_target(args.out, folder=True)
        report = outcomes_report(args.outcomes, args.edge_model, args.cloud_model,
                                 args.router or [], args.label, args.train_fraction, args.seed,
                                 args.target_share)
        folder = args.out
    with writing(folder):
        paths = write_report(report, folder)
    print(f"report written to {folder}: {', '.join(os.path.basename(p) for p in paths)}")
    return 0
