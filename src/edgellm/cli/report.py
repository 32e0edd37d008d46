"""``edgellm report``: the cost-quality view of a job or of routers on a matrix."""

import os

from edgellm.bench.confidence import leaderboard_view
from edgellm.bench.config import check_confidence
from edgellm.bench.table import render as render_table
from edgellm.cli.run import terminal_width
from edgellm.cli.targets import check_target, writing
from edgellm.errors import ConfigError
from edgellm.report import job_report, outcomes_report, write_report
from edgellm.report.job_results import read_rank_rows
from edgellm.report.router_curves import DEFAULT_ROUTER

FIGURES = ("APGR", "CPT(50%)", "CPT(80%)", "AIQ")


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
        rank = read_rank_rows(args.file)
        check_confidence(rank.job, args.confidence)
        report, folder = job_report(args.file, args.edge_model, args.cloud_model, rank)
        folder = args.out or folder
        check_target(folder, folder=True)
        view = leaderboard_view(rank.job.name, rank.standings(), args.confidence)
        print(render_table(view, terminal_width(), args.wide))
    else:
        if args.confidence:
            raise ConfigError("--confidence", "only with -f (a job's leaderboard); the "
                                              "routers' figures of --outcomes have none")
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
    if args.outcomes:
        print(figures_table(report.router_rows))
    with writing(folder):
        paths = write_report(report, folder)
    print(f"report written to {folder}: {', '.join(os.path.basename(p) for p in paths)}")
    return 0


def figures_table(rows):
    """The routers' figures (APGR, CPT, AIQ and the threshold calibration) as text."""
    header = ["router"] + list(dict.fromkeys(k for r in rows for k in r if k != "router"))
    lines = [header] + [[str(r.get("router", ""))] + [_figure(k, r.get(k)) for k in header[1:]]
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
                     for line in lines)


def _figure(key, value):
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if key.startswith("CPT") or key in ("train share", "test share"):
            return f"{100 * value:.1f}%"
        return f"{value:.4f}"
    return str(value)
