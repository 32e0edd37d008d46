"""The ``edgellm`` command.

Each command's handler lives in a module of this package, looked up by the command's
name in ``COMMANDS`` (lazy entries): a command imports what it runs (numpy, pandas,
scikit-learn...) when it runs, not for ``edgellm --help`` or another command.
"""

import logging
import sys

from edgellm.cli.parser import build_parser
from edgellm.errors import ConfigError
from edgellm.registry import Registry

EXIT_BAD_INPUT = 2

COMMANDS = Registry("command")
for _name, _target in (("run", "edgellm.cli.run:run"),
                       ("import", "edgellm.cli.store:import_responses"),
                       ("export", "edgellm.cli.store:export_responses"),
                       ("report", "edgellm.cli.report:report"),
                       ("compare", "edgellm.cli.compare:compare"),
                       ("dataset convert", "edgellm.cli.datasets:convert"),
                       ("dataset split", "edgellm.cli.datasets:split"),
                       ("dataset synthesize", "edgellm.cli.datasets:synthesize"),
                       ("center", "edgellm.cli.live:center"),
                       ("edge", "edgellm.cli.live:edge"),
                       ("fleet up", "edgellm.cli.live:fleet_up"),
                       ("calibrate", "edgellm.cli.calibrate:calibrate"),
                       ("monitor", "edgellm.cli.monitor:monitor")):
    COMMANDS.register(_name, _target)


class _LogFormat(logging.Formatter):
    def format(self, record):
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"edgellm: {level}{record.getMessage()}"


def _configure_logging(verbose):
    """The library's log lines on stderr, as the CLI's own messages look."""
    logger = logging.getLogger("edgellm")
    for handler in [h for h in logger.handlers if getattr(h, "edgellm_cli", False)]:
        logger.removeHandler(handler)  # main() may run more than once in a process
    handler = logging.StreamHandler(sys.stderr)
    handler.edgellm_cli = True
    handler.setFormatter(_LogFormat())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


# what an optional extra brings, for the one line a command without it ends with
EXTRAS = {"fastapi": "live", "uvicorn": "live", "httpx": "live", "psutil": "live",
          "prometheus_client": "live", "starlette": "live"}


def _handler(name):
    try:
        return COMMANDS.get(name)
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        raise ConfigError(f"edgellm {name}", f"needs the {err.name} package: pip install "
                                             f"'edgellm[{extra}]'") from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return _handler(args.command)(args)
    except ConfigError as err:
        print(f"edgellm: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("edgellm: interrupted", file=sys.stderr)
        return 130
