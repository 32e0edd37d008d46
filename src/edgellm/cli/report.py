"""``edgellm report``: the cost-quality view of a job or of routers on a matrix."""

import os

from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.report import choice_note, job_report, outcomes_report, write_report
from edgellm.report.router_curves import DEFAULT_ROUTER


def report(args):
    if bool(args.file) == bool(args.outcomes):
        raise ConfigError("-f/--outcomes", "give either -f benchmarkingjob.yaml or --outcomes "
                                           "MATRIX (one of the two)")
    if args.file:
        if args.router or args.default_router_settings:
            raise ConfigError("--router" if args.router else "--router-setting",
                              "only with --outcomes (a job's routers are its test cases)")
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
        routers = args.router
        if routers and args.default_router_settings:
            raise ConfigError("--router-setting", "given before the first --router: each "
                              "--router-setting belongs to the --router before it")
        if not routers:  # the default: the router that chooses among the others
            routers = [[DEFAULT_ROUTER, DEFAULT_ROUTER, None,
                        dict(args.default_router_settings or {})]]
        report = outcomes_report(args.outcomes, args.edge_model, args.cloud_model, routers,
                                 args.label, args.train_fraction, args.seed, args.target_share)
        for note in report.notes[1:]:
            print(note)
        folder = args.out
    with writing(folder):
        paths = write_report(report, folder)
    print(f"report written to {folder}: {', '.join(os.path.basename(p) for p in paths)}")
    return 0
