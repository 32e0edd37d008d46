"""``edgellm compare A B [C ...]``: runs side by side, with confidence."""

import json
import os

from edgellm.compare.comparison import compare_sources
from edgellm.compare.sources import common_job, read_source
from edgellm.compare.table import render_text, to_json
from edgellm.errors import ConfigError

LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def compare(args):
    if len(args.runs) < 2:
        raise ConfigError("edgellm compare", "give two or more runs (workspaces, rank "
                                             "folders, rank files or test case folders)")
    if len(args.runs) > len(LABELS):
        raise ConfigError("edgellm compare", f"at most {len(LABELS)} runs at once")
    for path in args.runs:  # before a workspace's own complaints, which assume the rest
        if not os.path.exists(path):
            raise ConfigError(path, "no such file or folder")
    job = args.job or common_job(args.runs)
    sources = [read_source(label, path, job) for label, path in zip(LABELS, args.runs)]
    result = compare_sources(sources, args.metric or None, args.resamples, args.seed,
                             ignore=args.ignore)
    if args.json:
        print(json.dumps(to_json(result), indent=2))
    else:
        print(render_text(result))
    return 0
