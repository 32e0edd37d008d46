"""Every command's --help prints and exits 0 (argparse formats help strings with %:
a bare "95 %" in one of them had made `edgellm --help` end in a traceback)."""

import argparse

import pytest

from edgellm.cli import main
from edgellm.cli.parser import build_parser


def _commands(parser, prefix=()):
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))


COMMANDS = list(_commands(build_parser()))


def test_the_commands_are_found():
    assert [] in COMMANDS and ["compare"] in COMMANDS and ["fleet", "up"] in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "edgellm")
def test_help_prints(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: edgellm") and "Traceback" not in out
