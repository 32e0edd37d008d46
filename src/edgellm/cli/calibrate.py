"""``edgellm calibrate``: measure a node's server, write its topology entries."""

import os
import sys

import psutil

from edgellm.errors import ConfigError
from edgellm.live.calibration import check_server, measure, topology_for, topology_text


def calibrate(args):
    base_url = args.base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError("--base-url", f"expected http://HOST:PORT/v1, got {base_url!r}")
    key = os.environ.get(args.api_key_env) if args.api_key_env != "none" else None
    check_server(base_url, args.model, key)

    def progress(step):
        print(f"edgellm calibrate: {step}", file=sys.stderr, flush=True)

    calibration = measure(base_url, args.model, requests=args.requests,
                          concurrency=args.concurrency, api_key_env=args.api_key_env,
                          model_file=args.model_file, load_runs=args.load_runs,
                          progress=progress)
    memory = args.memory_gb or psutil.virtual_memory().total / 1e9
    topology = topology_for(calibration, args.node, args.profile, memory,
                            args.quantization)
    text = topology_text(topology, calibration)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"edgellm calibrate: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
