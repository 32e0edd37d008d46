"""The ``edgellm`` command line: every command, its arguments and their checks."""

import argparse
import os

from edgellm import __version__
from edgellm.errors import ConfigError
from edgellm.yaml_file import load_yaml_text

DESCRIPTION = "edgellm: benchmark LLM inference split between edge nodes and the cloud."


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line, as any other bad input (argparse prints the usage
    first, over several lines); the subcommands' parsers are of this class too."""

    def error(self, message):
        self.exit(2, f"edgellm: error: {message} (see '{self.prog} --help')\n")


def checked(kind, ok, expected):
    """An argparse type: ``kind(value)`` where ``ok`` holds of it, else one line saying
    what was expected (NaN fails every comparison, so it is never ``ok``)."""
    def convert(value):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not ok(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number
    return convert


_positive = checked(int, lambda n: n >= 1, "a whole number >= 1")
_share = checked(float, lambda x: 0.0 <= x <= 1.0, "a share between 0 and 1")
_seconds = checked(float, lambda x: 0.0 < x < float("inf"), "a number of seconds above 0")
_port = checked(int, lambda n: 0 <= n <= 65535, "a port number 0-65535")


def _jobs(value):
    if value == "auto":
        return value
    try:
        return _positive(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number >= 1 or 'auto', "
                                         f"got {value!r}") from None


def _router_spec(value):
    """--router NAME[=MODEL_PATH] -> [name, class name, path or None, settings]."""
    name, _, path = value.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=MODEL_PATH, got {value!r}")
    return [name if not path else f"{name} ({os.path.basename(path)})", name, path or None, {}]


def _router_setting(value):
    """--router-setting KEY=VALUE -> (key, value), the value read as a YAML scalar or
    list (0.03, true, none, ["subject"]), as a job's YAML would give it."""
    key, equals, text = value.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. C=0.03), got {value!r}")
    key = key.strip()
    try:  # the checks of a job file's YAML (nesting, aliases)
        return key, load_yaml_text(text, key)
    except ConfigError as err:
        problem = str(err)[len(err.source) + 2:]
        raise argparse.ArgumentTypeError(f"{key}: {text[:80]!r} is not a YAML value "
                                         f"({problem})") from None


class _RouterSettingAction(argparse.Action):
    """Each --router-setting belongs to the --router before it; given before any
    --router, to the default router (AutoRouter, used when no --router is given)."""

    def __call__(self, parser, namespace, values, option_string=None):
        key, value = values
        routers = getattr(namespace, "router", None)
        if routers:
            routers[-1][3][key] = value
        else:
            namespace.default_router_settings = dict(
                getattr(namespace, "default_router_settings", None) or {}, **{key: value})


def _train_fraction(value):
    share = _share(value)
    if not 0.0 < share < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, "
                                         f"got {value!r}")
    return share


def _table_options(parser):
    parser.add_argument("--wide", action="store_true",
                        help="print the leaderboard as Ianvs does: every selected column, "
                             "however wide (default: fit the terminal, 120 columns when the "
                             "output is not one)")
    parser.add_argument("--confidence", action="append", default=[], metavar="METRIC",
                        help="show the 95 %% bootstrap interval of METRIC (half its width, "
                             "a 'METRIC±' column) on the leaderboard, as rank.confidence "
                             "in the job does; repeatable")


def build_parser():
    parser = _Parser(prog="edgellm", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"edgellm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print what the library logs at INFO level (e.g. where a "
                             "fitted router was saved)")
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run an Ianvs benchmarkingjob.yaml without Ianvs")
    run.add_argument("-f", "--file", required=True, help="benchmarkingjob.yaml; paths in it "
                     "resolve against the current directory, as in Ianvs")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("-j", "--jobs", type=_jobs, default="auto", metavar="N",
                     help="run up to N test cases at once in worker processes (default "
                          "auto: every core when all models are simulated, else 1)")
    run.add_argument("--store", metavar="PATH",
                     help="response store of the real backends (default: "
                          "<workspace>/responses.sqlite)")
    run.add_argument("--store-mode", choices=["record", "replay", "auto"],
                     help="record: always call the model; replay: stored responses only; "
                          "auto (default): replay what is stored, call for the rest")
    run.add_argument("--max-failed-share", type=_share, metavar="S",
                     help="a test case fails (reported, not ranked, exit status 1) when "
                          "more than this share of its edge or cloud model's requests "
                          "failed (default: only when all of them failed)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where test cases run: local worker processes (default) or one "
                          "Ray task per case (pip install 'edgellm[ray]'; docs/ray.md)")
    run.add_argument("--address", metavar="ADDRESS",
                     help="--executor ray: the Ray cluster, e.g. ray://head:10001 (default: "
                          "env RAY_ADDRESS, else a local Ray started for the run)")
    _table_options(run)
    run.set_defaults(command="run")

    store_help = ("response store file (default: env EDGELLM_STORE, else "
                  "./workspace/responses.sqlite, where 'edgellm run' of a job with "
                  "workspace ./workspace keeps it)")
    import_ = commands.add_parser(
        "import", help="bring recorded responses into the response store: Ianvs' "
                       "cache.json, outcome matrices (CSV/JSONL, long or wide), 'edgellm "
                       "export' files")
    import_.add_argument("sources", nargs="+", metavar="FILE")
    import_.add_argument("--store", metavar="PATH", help=store_help)
    import_.add_argument("--format", choices=["ianvs-cache", "outcomes", "store"],
                         help="default: told from the file: .json is ianvs-cache; .csv "
                              "and .jsonl rows with edgellm_store are store, others an "
                              "outcome matrix (long: model and correct or score per row; "
                              "wide: prompt and a true/false column per model)")
    import_.add_argument("--task-type", help="ianvs-cache: the task type of the queries, "
                         "which decides the prompt edgellm sends (default: multiple choice)")
    import_.add_argument("--system-prompt", help="ianvs-cache: the system_prompt of the "
                         "algorithm that replays them (default: none)")
    import_.set_defaults(command="import")

    export = commands.add_parser("export", help="write the response store as JSONL")
    export.add_argument("target", help="a .jsonl file ('edgellm import' reads it back)")
    export.add_argument("--store", metavar="PATH", help=store_help)
    export.add_argument("-f", "--file", metavar="JOB", help="benchmarkingjob.yaml: export "
                        "the store of its workspace (<workspace>/responses.sqlite, where "
                        "'edgellm run -f JOB' keeps it) unless --store says otherwise")
    export.add_argument("--model", help="only the responses of this model identity")
    export.set_defaults(command="export")

    report = commands.add_parser(
        "report", help="cost-quality report: accuracy vs cloud calls and vs cost, "
                       "APGR/CPT/AIQ, Pareto front, as CSV, PNG and HTML",
        description="Either a job that has run (-f: its test cases as points, written to "
                    "<workspace>/<job>/report) or learned routers on an outcome matrix "
                    "(--outcomes: fitted on a train split, swept over the test split). "
                    "The random router (10 seeds) and the oracle are always drawn.")
    report.add_argument("-f", "--file", help="benchmarkingjob.yaml of a job that has run")
    report.add_argument("--outcomes", metavar="MATRIX",
                        help="an outcome matrix (.csv/.jsonl, the format 'edgellm import' reads)")
    report.add_argument("--edge-model", help="the edge (weak) model's name in the matrix; "
                        "with -f: the edge model of the baselines (default: the one most "
                        "test cases use)")
    report.add_argument("--cloud-model", help="the cloud (strong) model's name, likewise")
    report.add_argument("--router", action="append", type=_router_spec, metavar="NAME[=PATH]",
                        help="a learned router of edgellm.routing.ROUTERS (e.g. TfidfRouter), "
                             "fitted on the train split, or loaded from PATH; repeatable "
                             "(default: AutoRouter, which chooses among them on the train "
                             "split)")
    report.add_argument("--router-setting", action=_RouterSettingAction, type=_router_setting,
                        metavar="KEY=VALUE", dest="default_router_settings",
                        help="a setting of the --router before it (of AutoRouter when no "
                             "--router is given), the value as YAML: C=0.03, "
                             "metadata='[\"subject\"]'; repeatable")
    report.add_argument("--label", default=None,
                        choices=["edge_wrong", "cloud_right_edge_wrong", "expected_gain"],
                        help="training label of the routers (default: cloud_right_edge_wrong; "
                             "AutoRouter chooses its own, among this one only when given)")
    report.add_argument("--train-fraction", type=_train_fraction, default=0.5,
                        help="share of the items the routers train on (default 0.5)")
    report.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    report.add_argument("--target-share", type=_share, default=0.5,
                        help="cloud share the threshold is calibrated to on train "
                             "(default 0.5); the share reached on test is reported")
    report.add_argument("--out", metavar="DIR", help="output folder (required with --outcomes; "
                        "a job's default: <workspace>/<job>/report)")
    _table_options(report)
    report.set_defaults(command="report")

    compare = commands.add_parser(
        "compare", help="compare the leaderboards of two or more runs, each difference "
                        "with its 95 %% interval and p-value",
        description="Rows are matched by configuration (algorithm, modules, "
                    "hyperparameters), each run's latest of each. Intervals: a bootstrap "
                    "over the queries of each case's results.jsonl; differences from the "
                    "first run are paired when the cases answered the same queries, and "
                    "0/1 metrics (Accuracy) also get McNemar's exact test.")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="a workspace, a job's folder or rank folder, an all_rank.csv "
                              "or selected_rank.csv, or a test case's folder")
    compare.add_argument("--metric", action="append", metavar="NAME",
                         help="compare this metric (repeatable; default: the job's selected "
                              "metrics)")
    compare.add_argument("--json", action="store_true", help="print JSON: every value, "
                         "interval bounds, difference, p-value")
    compare.add_argument("--resamples", type=_positive, default=10_000,
                         help="bootstrap resamples (default 10000)")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument("--job", metavar="NAME", help="the job, where a workspace holds "
                         "several (default: the one job every workspace given holds)")
    compare.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                         help="leave this configuration column out of the matching, e.g. "
                              "edgemodel-seed to compare runs that differ only in a seed "
                              "(repeatable)")
    compare.set_defaults(command="compare")

    dataset = commands.add_parser("dataset", help="work with task datasets and outcome "
                                                  "matrices")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True,
                                              metavar="COMMAND")
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
    convert.set_defaults(command="dataset convert")
    split = dataset_commands.add_parser(
        "split", help="split a dataset into train and test parts (items, seeded), so that "
                      "a job routes test items only and learned routers fit on train",
        description="An Ianvs dataset (folder or metadata.json) becomes OUT/train_data and "
                    "OUT/test_data; an outcome matrix (.csv/.jsonl, long or wide) "
                    "OUT/train.<ext> and "
                    "OUT/test.<ext> (each item's rows on one side) and, when it has queries, "
                    "OUT/test_data (the test items as an Ianvs dataset). OUT/split.json "
                    "records the source, fraction, seed and counts.")
    split.add_argument("source", help="an Ianvs dataset folder or metadata.json, or an "
                                      "outcome matrix (.csv/.jsonl)")
    split.add_argument("out", help="output folder")
    split.add_argument("--train-fraction", type=_train_fraction, default=0.5,
                       help="share of the items in the train part (default 0.5)")
    split.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    split.set_defaults(command="dataset split")
    synthesize = dataset_commands.add_parser(
        "synthesize", help="write a synthetic MMLU-shaped outcome matrix (an edge and a "
                           "cloud model's correctness on MMLU-style items) as a long CSV",
        description="The items' subjects, both models' per-subject accuracies and the "
                    "questions' lengths and vocabularies follow RouteLLM's recorded MMLU "
                    "outcomes (Mixtral-8x7B-Instruct, gpt-4-1106-preview); the text carries "
                    "the subject imperfectly and a weak difficulty signal. The same "
                    "--items and --seed write the same file. The generative model: "
                    "docs/routing-evaluation.md and edgellm.outcomes.synthetic.")
    synthesize.add_argument("target", help="the .csv file to write")
    synthesize.add_argument("--items", type=_positive, default=14000,
                            help="questions (default 14000, MMLU's test split)")
    synthesize.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synthesize.set_defaults(command="dataset synthesize")
    add_live_commands(commands)
    add_calibrate_command(commands)
    return parser


def _levels(value):
    try:
        levels = sorted({int(v) for v in value.split(",")})
    except ValueError:
        levels = []
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1 separated by commas, "
                                         f"got {value!r}")
    return levels


def add_calibrate_command(commands):
    """edgellm calibrate (docs/llama-cpp.md)."""
    calibrate = commands.add_parser(
        "calibrate", help="measure a node's OpenAI-compatible server (prefill and decode "
                          "speed, concurrency, load time) and write its topology entries",
        description="Measures prefill speed (TTFT against prompt length), decode speed, "
                    "the slowdown and speed-up with concurrent requests and, given the "
                    "model's GGUF file, the load time of llama-cpp-python's server; writes "
                    "a topology with the node and model and the spread of each figure.")
    calibrate.add_argument("--base-url", required=True, metavar="URL",
                           help="the server's API root, e.g. http://127.0.0.1:8080/v1")
    calibrate.add_argument("--model", required=True, help="the model name the server serves")
    calibrate.add_argument("--node", default="edge-node", help="the node's id (default "
                           "edge-node)")
    calibrate.add_argument("--out", metavar="FILE", help="write the topology here "
                           "(default: standard output)")
    calibrate.add_argument("--requests", type=_positive, default=3, metavar="N",
                           help="requests per measured point (default 3)")
    calibrate.add_argument("--concurrency", type=_levels, default=[1, 2, 4], metavar="K,K",
                           help="requests sent at once (default 1,2,4)")
    calibrate.add_argument("--model-file", metavar="GGUF",
                           help="the model's file: its size, and the load time of "
                                "llama-cpp-python's server started on it (a second server, "
                                "on a free port, --load-runs times)")
    calibrate.add_argument("--load-runs", type=_positive, default=3, metavar="N",
                           help="server starts timed (default 3)")
    calibrate.add_argument("--profile", default="Qwen/Qwen2.5-0.5B-Instruct",
                           help="simulated profile of the model's answers and quality "
                                "(default %(default)s)")
    calibrate.add_argument("--quantization", default="gguf",
                           help="the model file's quantisation, its sizes_gb key")
    calibrate.add_argument("--memory-gb", type=float, metavar="GB",
                           help="the node's memory for models (default: this machine's)")
    calibrate.add_argument("--api-key-env", default="none", metavar="NAME",
                           help="variable holding the server's key (default none)")
    calibrate.set_defaults(command="calibrate")


def add_live_commands(commands):
    """edgellm center | edge | fleet up: the live distribution center (docs/live-fleet.md)."""
    token = "the join token comes from env EDGELLM_JOIN_TOKEN only"
    center = commands.add_parser(
        "center", help="run the distribution center: edge agents register, stay alive, get "
                       "tasks and models; fleet jobs with center_url run on it",
        description=f"The live center's HTTP service ({token}).")
    _fleet_clock_options(center)
    center.add_argument("--models-dir", required=True, metavar="DIR",
                        help="one file per catalog model, named <model id>.<ext>")
    center.add_argument("--placeholders", action="store_true",
                        help="write placeholder files for catalog models the folder lacks "
                             "(a simulated fleet's models only have to travel)")
    center.set_defaults(command="center")

    edge = commands.add_parser(
        "edge", help="run an edge agent: register with a center, heartbeat, run its tasks "
                     "on an engine, keep the models it asks for",
        description=f"One edge node's agent ({token}).")
    edge.add_argument("--center", required=True, metavar="URL", help="the center, e.g. "
                      "http://127.0.0.1:8700")
    edge.add_argument("--node-id", required=True, help="this node's id in the topology")
    edge.add_argument("--engine", default="simulated",
                      choices=["simulated", "openai", "huggingface", "llama_cpp"],
                      help="what answers (default simulated: the model profiles, on the "
                           "fleet's clock; llama_cpp: llama-cpp-python's server, run by "
                           "the agent on the GGUF files the center sends)")
    edge.add_argument("--engine-url", metavar="URL", help="openai: the node's "
                      "OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    edge.add_argument("--engine-key-env", default="none", metavar="NAME",
                      help="openai: the environment variable holding the server's key "
                           "(default none: a local server needs none)")
    edge.add_argument("--max-tokens", type=_positive, default=256, metavar="N",
                      help="openai, llama_cpp: the longest answer, in tokens (default 256)")
    edge.add_argument("--n-ctx", type=_positive, default=2048, metavar="N",
                      help="llama_cpp: the server's context length (default 2048)")
    edge.add_argument("--n-threads", type=_positive, metavar="N",
                      help="llama_cpp: the server's threads (default: llama-cpp-python's, "
                           "half the cores for decoding and all for prompts)")
    edge.add_argument("--models-dir", metavar="DIR",
                      help="where the node keeps its model files (default ./edgellm-models-<id>)")
    edge.add_argument("--monitor-host", default="127.0.0.1", metavar="HOST",
                      help="address of the node's own page (default 127.0.0.1: this "
                           "machine only)")
    edge.add_argument("--monitor-port", type=_port, default=0, metavar="PORT",
                      help="its port (default 0: a free one; the center's page links to it)")
    edge.add_argument("--no-monitor", dest="monitor_port", action="store_const", const=None,
                      help="serve no page for this node")
    edge.add_argument("--transport", choices=["stream", "http"], default="stream",
                      help="how tasks and results travel: stream (default: one WebSocket, "
                           "pushed both ways; HTTP when the center has none) or http (a "
                           "long poll for tasks, a POST per batch of results)")
    edge.add_argument("--seed", type=int, default=0, help="simulated engine's seed")
    edge.add_argument("--zero-time", action="store_true",
                      help="simulated engine: answer at once, no modelled time (dispatch "
                           "benchmarks measure the center's and agent's own cost)")
    edge.set_defaults(command="edge")

    fleet = commands.add_parser("fleet", help="a whole live fleet on this machine")
    fleet_commands = fleet.add_subparsers(dest="fleet_command", required=True)
    up = fleet_commands.add_parser(
        "up", help="start a center and one simulated edge agent per topology node on this "
                   "machine; Ctrl-C stops them all",
        description="The embedded live fleet: the center on --host/--port and one agent "
                    "per node of the topology, each with the simulated engine; the center's "
                    "model files are placeholders. A join token is made for the fleet when "
                    "env EDGELLM_JOIN_TOKEN is not set (it is never printed or written).")
    _fleet_clock_options(up, default_scale=0.1)
    up.add_argument("--models-dir", metavar="DIR",
                    help="the center's model folder (default: placeholders in a temporary one)")
    up.set_defaults(command="fleet up")

    monitor = commands.add_parser(
        "monitor", help="serve a workspace's leaderboard and its cases' pages (the rounds "
                        "of finished fleet runs) in the browser, without a live center",
        description="The leaderboard of every job in the workspace (its rank files) as a "
                    "sortable, filterable table; each row links to its case: config, "
                    "metrics, first results, plots and, for a fleet case, its rounds "
                    "(docs/monitor.md).")
    monitor.add_argument("--workspace", required=True, metavar="DIR",
                         help="a workspace (the jobs' folders under it) or one job's folder")
    monitor.add_argument("--host", default="127.0.0.1",
                         help="address to serve on (default 127.0.0.1: this machine only)")
    monitor.add_argument("--port", type=_port, default=8701, help="port (default 8701)")
    monitor.set_defaults(command="monitor")


def _fleet_clock_options(parser, default_scale=1.0):
    parser.add_argument("--topology", required=True, help="the fleet's topology YAML")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8700, help="port (default 8700)")
    parser.add_argument("--time-scale", type=_seconds, default=default_scale,
                        help="real seconds per second of the fleet's clock (simulated "
                             f"engines sleep that long; default {default_scale:g})")
    parser.add_argument("--heartbeat-s", type=_seconds, default=1.0,
                        help="heartbeat interval (default 1 s)")
    parser.add_argument("--not-ready-after-s", type=_seconds, default=3.0,
                        help="NOT_READY after this long without a heartbeat (default 3 s)")
    parser.add_argument("--unreachable-after-s", type=_seconds, default=5.0,
                        help="UNREACHABLE after this long (default 5 s)")
    parser.add_argument("--workspace", metavar="DIR",
                        help="also serve this workspace's leaderboard on the monitor's pages "
                             "(it may not exist yet: the first run makes it)")
