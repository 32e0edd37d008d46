"""Ianvs' three YAML files, read with Ianvs' schema and semantics.

Paths inside them resolve against the current directory, as Ianvs resolves them
(run from the repository root). Every problem becomes a one-line ``ConfigError``
that names the file and the key. A name given twice (two algorithms, two metrics, one
hyperparameter set twice in a module) is an error, never a silent merge or a last
one wins.
"""

import difflib
import itertools
import os
import re
from dataclasses import dataclass, field


from edgellm.errors import ConfigError
from edgellm.yaml_file import YamlSection as _Section, load_yaml

# Module types of the joint-inference paradigm and the registry group each uses.
JOINT_INFERENCE_MODULES = ("dataset_processor", "edgemodel", "cloudmodel", "hard_example_mining")
REQUIRED_MODULES = ("edgemodel", "cloudmodel", "hard_example_mining")
MINING_MODES = ("mining-then-inference", "inference-then-mining")
TRAIN_KEYS = ("train_data", "train_data_info", "train_index")
TEST_KEYS = ("test_data", "test_data_info", "test_index")
VISUALIZATION_METHODS = ("print_table",)  # what Ianvs offers
SAVE_MODES = ("selected_and_all", "selected_only", "selected_and_all_and_picture")
# testenv keys Ianvs reads (core/testenvmanager/testenv/testenv.py) and joint inference's
TESTENV_KEYS = ("dataset", "metrics", "model_eval", "incremental_rounds", "round",
                "client_number", "use_gpu", "hard_example_mining_mode")

# The job folder's own: rank/, and hidden names (the runs' locks, bench/job_folder.py)
RESERVED_FOLDERS = ("rank",)


def _folder_name(section, key, what):
    """A name that becomes a folder of the workspace (``what``): exactly one path
    segment, so that the job writes where the workspace says and nowhere else."""
    name = section.get(key, str, required=True)
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise section.error(key, f"{name!r} must be one folder name ({what}): no '/', "
                                 f"'\\', NUL, '.', '..' or empty name")
    return name


def _top(path, data, name):
    if not isinstance(data, dict) or name not in data:
        raise ConfigError(path, f"key '{name}': missing (the file must start with '{name}:')")
    return _Section(path, name, data[name])


@dataclass(frozen=True)
class MetricSpec:
    name: str
    url: str


@dataclass(frozen=True)
class DatasetSpec:
    train_key: str
    train_path: str
    test_key: str
    test_path: str


@dataclass
class TestEnvSpec:
    path: str
    dataset: DatasetSpec
    metrics: list
    params: dict  # every other testenv key: reaches the paradigm as kwargs, as in Ianvs

    @property
    def mining_mode(self):
        return self.params.get("hard_example_mining_mode", "mining-then-inference")


@dataclass(frozen=True)
class ModuleSpec:
    type: str
    name: str
    url: str
    hyperparameters: dict = field(default_factory=dict, hash=False, compare=False)
    source: str = ""  # "<file>: key '...'" for error messages
    # hyperparameter -> (file, key) where the YAML sets it, for error messages
    keys: dict = field(default_factory=dict, hash=False, compare=False)

    def setting_error(self, name, message):
        """A one-line error about hyperparameter ``name``, naming its file and key."""
        where = self.keys.get(name)
        if where is None:
            return ConfigError(self.source, message)
        return ConfigError(where[0], f"key '{where[1]}': {message}")

    def value_error(self, err):
        """The module's ``ValueError`` as one line; where it is Python's own conversion
        message ("could not convert string to float: 'half'"), about the one setting
        with that value: its key, and what it is not."""
        found = _CONVERSION.match(str(err))
        names = [name for name, value in self.hyperparameters.items()
                 if found and isinstance(value, str) and repr(value) == found.group(2)]
        if len(names) == 1:
            kind = "a number" if found.group(1).startswith("could") else "a whole number"
            return self.setting_error(names[0], f"{found.group(2)} is not {kind}")
        return ConfigError(self.source, str(err))


# Python's messages for float("half") and int("x")
_CONVERSION = re.compile(r"^(could not convert string to float|invalid literal for int\(\) "
                         r"with base \d+): (.+)$")


@dataclass
class TestCaseSpec:
    """One cell of the grid: an algorithm with one value per hyperparameter."""

    algorithm: str
    algorithm_url: str
    paradigm_type: str
    modules: dict  # module type -> ModuleSpec, in the YAML's order
    index: int = 0

    def hyperparameter_columns(self):
        """Rank columns ``<module type>-<hp>`` with values as Ianvs writes them (str)."""
        return {f"{m.type}-{name}": str(value)
                for m in self.modules.values() for name, value in m.hyperparameters.items()}

    def label(self):
        """Short name for progress bars and messages: algorithm, router, models."""
        parts = [self.modules["hard_example_mining"].name]
        for tier in ("edgemodel", "cloudmodel"):
            model = self.modules[tier].hyperparameters.get("model")
            if model is not None:
                parts.append(str(model).rsplit("/", 1)[-1])
        return f"{self.algorithm} ({', '.join(parts)})"


@dataclass
class RankSpec:
    sort_by: list  # [(metric, ascending)]
    visualization: dict
    selected_dataitem: dict
    save_mode: str
    # ours, which Ianvs ignores: metrics whose 95 % interval the printed table shows
    confidence: list = field(default_factory=list)


@dataclass
class JobSpec:
    path: str
    name: str
    workspace: str
    testenv: TestEnvSpec
    test_cases: list
    rank: RankSpec

    @property
    def output_dir(self):
        return os.path.join(self.workspace, self.name)


def read_job(path):
    """Read benchmarkingjob.yaml and everything it references; validate it all."""
    job = _top(path, load_yaml(path, "benchmarkingjob"), "benchmarkingjob")
    name = _folder_name(job, "name", "the job's folder in the workspace")
    workspace = job.get("workspace", str, default="./workspace")
    testenv = read_testenv(job.file("testenv"))
    test_object = job.section("test_object")
    kind = test_object.get("type", str, required=True)
    if kind != "algorithms":
        raise test_object.error("type", f"unsupported test object type {kind!r} "
                                        f"(supported: 'algorithms')")
    cases, names = [], {}
    for algo in test_object.sections("algorithms"):
        algorithm = _folder_name(algo, "name", "the algorithm's folder in the job's")
        if algorithm in RESERVED_FOLDERS or algorithm.startswith("."):
            raise algo.error("name", f"{algorithm!r} is kept for the job folder's own files "
                                     f"('rank', names starting with '.'); choose another")
        if algorithm in names:  # the two would share one folder and their rows mix
            raise algo.error("name", f"{algorithm!r} is also the name of key "
                                     f"'{names[algorithm]}'")
        names[algorithm] = algo.key("name")
        cases += read_algorithm(algorithm, algo.file("url"))
    for i, case in enumerate(cases):
        case.index = i
    return JobSpec(path, name, workspace, testenv, cases, read_rank(path, job.section("rank")))


def _check_metrics(names, metrics, error, testenv="the testenv"):
    """Each of ``names`` one of the testenv's ``metrics``; else ``error(i, message)``
    for the first that is not."""
    for i, metric in enumerate(names):
        if metric not in metrics:
            raise error(i, f"{metric!r} is not a metric of {testenv} ({', '.join(metrics)})")


def check_confidence(job, names, option="--confidence"):
    """The metrics a command line asks intervals of (``--confidence``), each one of the
    job's testenv: a misspelt name would otherwise show no column and say nothing."""
    _check_metrics(names, [m.name for m in job.testenv.metrics],
                   lambda i, message: ConfigError(option, message),
                   f"the testenv of {job.path}")


def check_rank_names(job, cli_confidence=()):
    """Ianvs skips a sort_by metric the job does not produce and gives a
    selected_dataitem name that matches nothing an empty column: a misspelt name
    would change the ranking or the table silently. Here each is an error (checked
    once the metrics and modules are known to load), as is a ``--confidence`` name
    (``cli_confidence``) that is no metric of the job."""
    rank, cases = job.rank, job.test_cases
    section = _Section(job.path, "benchmarkingjob.rank", {})  # names the keys in errors
    metrics = [m.name for m in job.testenv.metrics]
    for key, names in (("sort_by", [m for m, _ in rank.sort_by]),
                       ("confidence", rank.confidence)):
        _check_metrics(names, metrics,
                       lambda i, message, key=key: section.error(f"{key}[{i}]", message))
    check_confidence(job, cli_confidence)
    known = {"metrics": metrics,
             "modules": list(dict.fromkeys(t for case in cases for t in case.modules)),
             "hyperparameters": list(dict.fromkeys(
                 name for case in cases for name in case.hyperparameter_columns()))}
    for key, names in known.items():
        values = rank.selected_dataitem[key]
        if values in ([], ["all"]):
            continue
        for j, value in enumerate(values):
            if value not in names:
                raise section.error(f"selected_dataitem.{key}[{j}]",
                                    f"{value!r} is not one of the job's {key} "
                                    f"({', '.join(map(str, names)) or 'none'}) or 'all'")


def read_testenv(path):
    env = _top(path, load_yaml(path, "testenv"), "testenv")
    dataset = env.section("dataset")
    train = [k for k in TRAIN_KEYS if dataset.get(k) is not None]
    test = [k for k in TEST_KEYS if dataset.get(k) is not None]
    if not train:
        raise dataset.error("train_data", "missing: Ianvs needs a train entry even for "
                                          "inference (an empty file will do)")
    if not test:
        raise dataset.error("test_data_info", "missing: give test_data_info (metadata.json) "
                                              "or test_data (.jsonl)")
    test_key = test[0]
    test_path = dataset.file(test_key)
    if test_key == "test_data_info" and os.path.basename(test_path) != "metadata.json":
        raise dataset.error(test_key, f"must name a metadata.json file, got {test_path}")
    if test_key == "test_data" and not test_path.endswith(".jsonl"):
        raise dataset.error(test_key, f"must name a .jsonl file, got {test_path}")
    if test_key == "test_index":
        raise dataset.error(test_key, "index files are not supported for LLM inference; "
                                      "use test_data_info or test_data")
    spec = DatasetSpec(train[0], dataset.file(train[0]), test_key, test_path)

    metric_specs, metric_keys = [], {}
    for metric in env.sections("metrics"):
        name = metric.get("name", str, required=True)
        if name in metric_keys:
            raise metric.error("name", f"{name!r} is also the name of key "
                                       f"'{metric_keys[name]}'")
        metric_keys[name] = metric.key("name")
        metric_specs.append(MetricSpec(name, metric.file("url")))
    params = {k: v for k, v in env.data.items() if k not in ("dataset", "metrics")}
    for key in params:
        # Ianvs hands any other key to the paradigm, which reads only its own: one a
        # letter or two away from a known key is a typo that would change nothing
        close = difflib.get_close_matches(key, TESTENV_KEYS, n=1, cutoff=0.85)
        if close and close[0] != key:
            raise env.error(key, f"unknown key; did you mean '{close[0]}'?")
    mode = params.get("hard_example_mining_mode", MINING_MODES[0])
    if mode not in MINING_MODES:
        raise env.error("hard_example_mining_mode", f"{mode!r} is not one of {list(MINING_MODES)}")
    return TestEnvSpec(path, spec, metric_specs, params)


def _read_hyperparameters(module):
    """Ianvs' grid for one module: (a list of dicts, the cartesian product of values;
    hyperparameter -> (file, key) where it is set)."""
    entries = module.get("hyperparameters", list, default=[])
    if module.data.get("hyperparameters") == []:  # as `values: []`: a slip, not a request
        raise module.error("hyperparameters", "empty list; leave the key out for the defaults")
    base, names, values, keys = {}, [], [], {}
    for i, entry in enumerate(entries):
        key = module.key(f"hyperparameters[{i}]")
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(module.path, f"key '{key}': expected one '<name>: {{values: [...]}}'")
        (hp, spec), = entry.items()
        hp_section = _Section(module.path, f"{key}.{hp}", spec)
        hp_values = hp_section.get("values", list, required=True)
        if not hp_values:
            raise hp_section.error("values", "empty list")
        if hp == "other_hyperparameters":  # YAML files of fixed extra hyperparameters
            for j, extra in enumerate(hp_values):
                extra_data = load_yaml(extra, f"{hp_section.key('values')}[{j}]")
                if not isinstance(extra_data, dict):
                    raise ConfigError(extra, "expected a mapping of hyperparameters")
                base.update(extra_data)
                keys.update((name, (extra, str(name))) for name in extra_data)
        elif hp in names:
            raise ConfigError(module.path, f"key '{key}.{hp}': '{hp}' is also set by key "
                                           f"'{keys[hp][1]}'")
        else:
            names.append(hp)
            values.append(hp_values)
            keys[hp] = (module.path, f"{key}.{hp}")
    grid = [{**base, **dict(zip(names, combo))} for combo in itertools.product(*values)]
    return grid, keys


def read_algorithm(name, path):
    """One algorithm yaml -> its test cases (cartesian product over all modules' grids)."""
    algo = _top(path, load_yaml(path, "algorithm"), "algorithm")
    paradigm = algo.get("paradigm_type", str, required=True)
    if paradigm != "jointinference":
        raise algo.error("paradigm_type", f"{paradigm!r} is not supported by edgellm run "
                                          f"(supported: 'jointinference')")
    per_module = []
    seen = set()
    for module in algo.sections("modules"):
        mtype = module.get("type", str, required=True)
        if mtype not in JOINT_INFERENCE_MODULES:
            raise module.error("type", f"{mtype!r} is not a joint-inference module type "
                                       f"{list(JOINT_INFERENCE_MODULES)}")
        if mtype in seen:
            raise module.error("type", f"module type {mtype!r} appears twice")
        seen.add(mtype)
        mname = module.get("name", str, required=True)
        url = module.file("url")
        source = f"{path}: key '{module.prefix}'"
        grid, keys = _read_hyperparameters(module)
        per_module.append([ModuleSpec(mtype, mname, url, hps, source, keys) for hps in grid])
    missing = [m for m in REQUIRED_MODULES if m not in seen]
    if missing:
        raise algo.error("modules", f"missing module type(s) {missing}; joint inference "
                                    f"needs {list(REQUIRED_MODULES)}")
    return [TestCaseSpec(name, path, paradigm, {m.type: m for m in combo})
            for combo in itertools.product(*per_module)]


def read_rank(path, rank):
    sort_by = []
    for i, entry in enumerate(rank.get("sort_by", list, required=True)):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(path, f"key '{rank.key(f'sort_by[{i}]')}': expected "
                                    f"{{<metric>: ascend|descend}}")
        (metric, order), = entry.items()
        if order not in ("ascend", "descend"):
            raise ConfigError(path, f"key '{rank.key(f'sort_by[{i}]')}.{metric}': "
                                    f"{order!r} is not 'ascend' or 'descend'")
        sort_by.append((metric, order == "ascend"))
    visualization = rank.get("visualization", dict,
                             default={"mode": "selected_only", "method": "print_table"})
    method = visualization.get("method", "print_table")
    if method not in VISUALIZATION_METHODS:
        raise rank.error("visualization.method", f"{method!r} is not one of "
                                                 f"{list(VISUALIZATION_METHODS)}")
    selected = rank.section("selected_dataitem")
    items = {}
    for key in ("paradigms", "modules", "hyperparameters", "metrics"):
        items[key] = selected.get(key, list, required=True)
    save_mode = rank.get("save_mode", str, default="selected_and_all")
    if save_mode not in SAVE_MODES:
        raise rank.error("save_mode", f"{save_mode!r} is not one of {list(SAVE_MODES)}")
    confidence = rank.get("confidence", list, default=[])
    return RankSpec(sort_by, visualization, items, save_mode, confidence)
