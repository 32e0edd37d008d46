"""``edgellm run -f benchmarkingjob.yaml``: an Ianvs-compatible benchmarking job.

Everything that can be checked before the first test case runs is checked first
(YAML, keys, files, module aliases, metric names, the dataset, a writable
workspace), so bad input ends with one line and touches no rank file. A test case
that fails while running is reported with its error and the others are still ranked
(Ianvs aborts the job instead). A Ctrl-C stops the run: the cases that finished are
ranked, the others are reported as interrupted and leave no folder. Each test case
gets its own folder, ``<workspace>/<job>/<algorithm>/<uuid>``, holding
``results.jsonl`` (one record per sample), ``metrics.json`` and ``config.yaml`` (and
``router.json``, how a learned router was fitted: split, seed, threshold), so every
leaderboard row can be traced to its raw records (the row's ``url``). Runs side by
side on one workspace, and what killed runs leave, are ``JobFolder``'s business.
"""

import contextlib
import copy
import gc
import inspect
import math
import logging
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, field, replace

import orjson
import yaml
from tqdm import tqdm

from edgellm import __version__
from edgellm.files import write_text
from edgellm.metrics.catalog import why_empty
from edgellm.bench.case_requests import check_failed_share, count_requests
from edgellm.bench.config import check_rank_names, read_job
from edgellm.bench.job_folder import JobFolder
from edgellm.bench.loader import ModuleLoader, registry_group
from edgellm.bench.paradigm import JointInference
from edgellm.bench.confidence import leaderboard_view
from edgellm.bench.rank import Leaderboard
from edgellm.bench.table import render as render_table
from edgellm.bench.progress import case_progress
from edgellm.bench.ray_executor import RayCase, run_on_ray
from edgellm.bench.workers import run_in_workers, sigint_held, worker_slot
from edgellm.context import RunContext, use_context
from edgellm.errors import ConfigError
from edgellm.metrics.responses import forget as forget_results
from edgellm.registry import ClassType, SettingError, check_settings
from edgellm.tasks.ianvs_format import load_test_dataset

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
LOG = logging.getLogger(__name__)


@dataclass
class CaseOutcome:
    case: object
    output_dir: str
    metrics: dict = field(default_factory=dict)
    error: str = None
    simulated: bool = False
    finished: str = ""
    requests: dict = field(default_factory=dict)  # {side: ModelRequests}
    empty: dict = field(default_factory=dict)  # metric -> why it is empty (NaN)

    @property
    def ok(self):
        return self.error is None


@dataclass
class RunReport:
    job: object
    outcomes: list
    selected_rank_file: str = None
    standings: object = None  # what the table shows (bench.rank.Standings)
    table: str = ""
    interrupted: list = field(default_factory=list)  # the test cases a Ctrl-C stopped

    @property
    def failed(self):
        return [o for o in self.outcomes if not o.ok]


@dataclass
class TableOptions:
    """The printed leaderboard: its width (None: 120), Ianvs' full table (``wide``),
    the metrics whose intervals it shows besides ``rank.confidence``."""

    width: int = None
    wide: bool = False
    confidence: list = field(default_factory=list)


def _check_module(cls, m):
    """One module's settings (``BenchmarkRunner._check_modules``): its class's own
    ``check_config(params, source)`` where it has one (routers, models, the fleet), else
    the settings rule (explicit ``__init__`` parameters; a class taking ``**kwargs``
    takes anything). True when the module runs no real model."""
    check_config = getattr(cls, "check_config", None)
    try:
        if callable(check_config):
            return bool(check_config(m.hyperparameters, m.source))
        init = getattr(cls, "__init__", None)
        if isinstance(cls, type) and not any(
                p.kind == p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            check_settings(cls, m.hyperparameters, owner=m.name)
    except SettingError as err:
        raise m.setting_error(err.name, str(err)) from None
    except ValueError as err:
        raise m.value_error(err) from None
    return m.type not in ("edgemodel", "cloudmodel")


@contextlib.contextmanager
def _ianvs_result_dir(algorithm_dir):
    """RESULT_SAVED_URL as Ianvs sets it, for modules written for Ianvs (its LLM example
    keeps caches there), while the case runs; edgellm's own modules read the run
    context. Restored after, so that it does not outlive the case in this process."""
    before = os.environ.get("RESULT_SAVED_URL")
    os.environ["RESULT_SAVED_URL"] = algorithm_dir
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RESULT_SAVED_URL", None)
        else:
            os.environ["RESULT_SAVED_URL"] = before


def _empty_note(outcomes, shown):
    """One line saying why the table's empty cells of this run are empty (the same
    reason for several cells is said once, with their metrics and cases)."""
    shown = None if shown in (None, [], ["all"]) else set(shown)
    reasons = {}
    for o in outcomes:
        for metric, reason in o.empty.items():
            if shown is None or metric in shown:
                metrics, cases = reasons.setdefault(reason, ({}, []))
                metrics[metric] = None
                if o.case.label() not in cases:
                    cases.append(o.case.label())
    parts = [f"{', '.join(metrics)} of {', '.join(cases)}: {reason}"
             for reason, (metrics, cases) in reasons.items()]
    return "empty cells: " + "; ".join(parts) if parts else ""


def _estimated_note(outcomes):
    """One line naming the cases whose token counts (and so token and cost figures) are
    partly estimates, and how many responses; empty when every count is measured."""
    cases = [f"{o.case.label()}: {sum(c.estimated for c in o.requests.values())}"
             for o in outcomes if any(c.estimated for c in o.requests.values())]
    return ("estimated token counts (the server sent no usage, no tokenizer reachable; "
            "responses per case): " + "; ".join(cases)) if cases else ""


class BenchmarkRunner:
    """Runs one benchmarking job; ``run()`` returns a ``RunReport``.

    ``jobs`` > 1 runs that many test cases at once in forked worker processes
    (test cases are independent, so the results are the same as one by one).
    ``"auto"`` uses every core when all models are simulated (pure CPU work) and one
    process otherwise: real backends hold a GPU or an API rate limit, and cases
    running side by side would disturb each other's timings."""

    def __init__(self, job_path, progress=True, jobs="auto", store=None, store_mode=None,
                 max_failed_share=None, table=None, executor="local", address=None):
        self.job_path = job_path
        # "local": forked worker processes; "ray": one Ray task per test case
        # (bench.ray_executor), on the cluster at ``address`` or a local Ray
        self.executor, self.address = executor, address
        self.table = table or TableOptions()  # how the leaderboard is printed
        # a case fails when more than this share of a model's requests failed
        # (None: when all of them did)
        self.max_failed_share = max_failed_share
        self.progress = progress
        self.jobs = jobs if jobs == "auto" else max(1, int(jobs))
        # the response store of the real backends, for the whole job (the run context)
        self.store = os.path.abspath(store) if store else None
        self.store_mode = store_mode
        self._workers = 1

    def run(self):
        job = read_job(self.job_path)
        context = RunContext(workspace=job.workspace, store_path=self.store,
                             store_mode=self.store_mode)
        with use_context(context):
            return self._run(job, context)

    def prepare(self, job, loader):
        """(metrics, classes, dataset, whether every model is simulated): everything a
        test case needs, checked (what a Ray worker does again before its case)."""
        metrics = self._resolve_metrics(job, loader)
        classes = self._resolve_modules(job, loader)
        check_rank_names(job, self.table.confidence)
        simulated_only = self._check_modules(job, classes)
        return metrics, classes, load_test_dataset(job.testenv.dataset), simulated_only

    def _run(self, job, context):
        loader = ModuleLoader()
        try:
            metrics, classes, dataset, simulated_only = self.prepare(job, loader)
            workers = self.jobs
            if workers == "auto":
                workers = len(os.sched_getaffinity(0)) if simulated_only else 1
            self._workers = min(workers, len(job.test_cases))
            board = Leaderboard(job.rank, job.output_dir)
            with JobFolder(job, board) as folder:
                folders = [folder.new_case_folder(case.algorithm) for case in job.test_cases]
                finished = self._run_cases((job, classes, dataset, metrics, context, folder,
                                            folders))
                del dataset
                with sigint_held():  # the rank files and the case folders must agree
                    report = RunReport(job, [finished[i] for i in sorted(finished)])
                    report.interrupted = [case for i, case in enumerate(job.test_cases)
                                          if i not in finished]
                    folder.discard(folders[case.index] for case in report.interrupted)
                    self._rank(report, list(metrics), board, folder)
        finally:
            loader.unload()
        return report

    def _run_cases(self, args):
        """Index -> outcome of the test cases that finished: all of them, or those
        that did before a Ctrl-C (KeyboardInterrupt) stopped the run. ``args``: what
        ``run_case`` takes before the index."""
        finished, indices = {}, range(len(args[0].test_cases))

        def done(index, outcome):
            finished[index] = outcome
            LOG.info("test case %d/%d %s: %s", index + 1, len(indices), outcome.case.label(),
                     "finished" if outcome.ok else "failed")
            if self.executor == "ray" and self.progress:  # Ray tasks draw no bars
                print(f"[{index + 1}/{len(indices)}] {outcome.case.label()}: "
                      f"{'finished' if outcome.ok else 'failed'} on Ray", file=sys.stderr,
                      flush=True)

        try:
            if self.executor == "ray":
                job, context, folder, folders = args[0], args[4], args[5], args[6]
                run_on_ray(self.address, RayCase(self, context, folder.token, folders),
                           indices, lambda i, outcome: done(i, self._remote_outcome(
                               job.test_cases[i], folders[i], outcome)))
            elif self._workers > 1 and "fork" in multiprocessing.get_all_start_methods():
                # bars of several processes share the terminal
                tqdm.set_lock(multiprocessing.get_context("fork").RLock())
                run_in_workers(self._workers, self.run_case, args, indices, done)
            else:
                for index in indices:
                    done(index, self.run_case(*args, index))
        except KeyboardInterrupt:
            pass  # the run goes on to rank what finished
        return finished

    @staticmethod
    def _remote_outcome(case, output_dir, outcome):
        """A Ray task's outcome; a task that died (its worker lost) is a failed case."""
        if isinstance(outcome, CaseOutcome):
            return outcome
        failed = CaseOutcome(case, output_dir, error=f"Ray task failed: {outcome}")
        failed.finished = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        return failed

    # -- checks before running -------------------------------------------------

    @staticmethod
    def _resolve_metrics(job, loader):
        env = job.testenv
        return {m.name: loader.resolve(ClassType.GENERAL, m.name, m.url,
                                       f"{env.path}: key 'testenv.metrics[{i}]'", "metric")
                for i, m in enumerate(env.metrics)}

    @staticmethod
    def _resolve_modules(job, loader):
        classes = {}
        for case in job.test_cases:
            for m in case.modules.values():
                key = (m.type, m.name, m.url)
                if key not in classes:
                    classes[key] = loader.resolve(registry_group(m.type), m.name, m.url,
                                                  m.source, f"{m.type} module")
        return classes

    @staticmethod
    def _check_modules(job, classes):
        """Every module's settings, before the first test case: a setting its class does
        not take, a backend that cannot run (a missing API key, no vLLM or GPU, no model
        folder), a bad topology or router file fails here with one line naming the file
        and key, not midway through a run. Returns whether no module of the job runs a
        real model (every edge and cloud model simulated)."""
        checked, simulated_only = {}, True
        for case in job.test_cases:
            for m in case.modules.values():
                cls = classes[(m.type, m.name, m.url)]
                key = (cls, repr(sorted(m.hyperparameters.items(), key=lambda kv: kv[0])))
                if key not in checked:
                    checked[key] = _check_module(cls, m)
                simulated_only &= checked[key]
        return simulated_only

    # -- one test case ---------------------------------------------------------

    def run_case(self, job, classes, dataset, metric_funcs, context, folder, folders, index):
        # A case allocates millions of small dicts and no reference cycles; the cyclic
        # collector would rescan them again and again (it doubled run time). Pause it
        # for the case; the next automatic collection after it frees any cyclic
        # garbage module code made.
        gc.freeze()  # what exists now (the dataset, modules) is never rescanned
        gc.disable()
        try:
            return self._run_case_unpaused(job, job.test_cases[index], classes, dataset,
                                           metric_funcs, context, folder, folders[index])
        finally:
            gc.enable()
            gc.unfreeze()

    def _run_case_unpaused(self, job, case, classes, dataset, metric_funcs, context, folder,
                           output_dir):
        algorithm_dir = os.path.dirname(output_dir)
        outcome = CaseOutcome(case, output_dir)
        partial = folder.partial(output_dir)
        try:
            os.makedirs(partial)
            write_text(os.path.join(partial, "config.yaml"), self._config_yaml(job, case))
            with use_context(replace(context, algorithm_dir=algorithm_dir, case_dir=partial)), \
                    _ianvs_result_dir(algorithm_dir):
                results, y_true, outcome.requests = self._infer(job, case, classes, dataset,
                                                                partial)
            # the title's SIMULATED label: only models that answered count
            outcome.simulated = any(c.simulated for c in outcome.requests.values())
            outcome.metrics, outcome.empty = self._metrics(metric_funcs, y_true, results)
            write_text(os.path.join(partial, "metrics.json"),
                       orjson.dumps(outcome.metrics, option=orjson.OPT_INDENT_2).decode())
            check_failed_share(outcome.requests, self.max_failed_share)
        except Exception as err:  # a failing case is reported; the others still run
            outcome.error = f"{type(err).__name__}: {err}".splitlines()[0]
            with contextlib.suppress(OSError):  # a full disk: the error line still tells
                os.makedirs(partial, exist_ok=True)
                write_text(os.path.join(partial, "error.txt"), traceback.format_exc())
                os.replace(partial, output_dir)  # never ranked: in place now
        outcome.finished = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        return outcome

    def _infer(self, job, case, classes, dataset, folder):
        modules = case.modules
        # Same order as Ianvs: GENERAL modules first, then the dataset, then the router.
        instances = {t: classes[(m.type, m.name, m.url)](**m.hyperparameters)
                     for t, m in modules.items() if t != "hard_example_mining"}
        data = copy.copy(dataset)
        data.x, data.y = list(dataset.x), list(dataset.y)
        processor = instances.get("dataset_processor")
        if callable(processor):
            data = processor(data)
        samples = list(data.x)
        edge, cloud = instances["edgemodel"], instances["cloudmodel"]
        hem = modules["hard_example_mining"]
        params = dict(hem.hyperparameters)
        if hem.name == "OracleRouter":
            params.update(edgemodel=edge, cloudmodel=cloud)
        router = classes[(hem.type, hem.name, hem.url)](**params)
        paradigm = JointInference(edge, cloud, router, job.testenv.mining_mode)
        try:
            results = self._with_progress(job, case, paradigm, samples)
            fit_report = getattr(router, "fit_report", None)
            if callable(fit_report):  # a learned router: its split, seed and threshold
                write_text(os.path.join(folder, "router.json"), orjson.dumps(
                    fit_report(), default=str, option=orjson.OPT_INDENT_2).decode())
            requests = count_requests(results, lambda side: getattr(
                instances.get(f"{side}model"), "simulated", False))
        finally:
            for instance in [*instances.values(), router]:
                if callable(getattr(instance, "cleanup", None)):
                    instance.cleanup()
        self._write_results(os.path.join(folder, "results.jsonl"), samples, dataset.y, results)
        return results, list(dataset.y), requests

    def _with_progress(self, job, case, paradigm, samples):
        counts = {"Edge": 0, "Cloud": 0}
        label = f"[{case.index + 1}/{len(job.test_cases)}] {case.label()}"
        with case_progress(len(samples), label, self.progress,
                           worker_slot() if self._workers > 1 else None) as bar:
            def on_chunk(chunk):
                # a fleet's cloud fallback is not "hard" but its answer's tier is cloud
                cloud = sum(1 for r in chunk if r[0] or (type(r[1]) is dict
                                                          and r[1].get("tier") == "cloud"))
                counts["Cloud"] += cloud
                counts["Edge"] += len(chunk) - cloud
                bar.set_postfix(counts, refresh=False)
                bar.update(len(chunk))
            return paradigm.run(samples, on_chunk)

    @staticmethod
    def _write_results(path, samples, golds, results):
        dumps, lines = orjson.dumps, []
        with open(path, "wb") as handle:
            for i, (sample, gold, (hard, res, edge, cloud)) in enumerate(
                    zip(samples, golds, results)):
                # the query itself stays in the dataset: index (its line) and id trace it
                sample_id = sample.get("id") if isinstance(sample, dict) else None
                lines.append(dumps(
                    {"index": i, "id": sample_id, "gold": gold, "is_hard": bool(hard),
                     "tier": "cloud" if hard else "edge", "edge": edge, "cloud": cloud},
                    default=str, option=_JSON_OPTS))
                if len(lines) == 4096:  # few large writes, bounded memory
                    handle.write(b"".join(lines))
                    lines.clear()
            handle.write(b"".join(lines))

    @staticmethod
    def _metrics(metric_funcs, y_true, results):
        """({metric: value}, {metric: why it is empty}) of one case."""
        values, empty = {}, {}
        try:
            for name, func in metric_funcs.items():
                try:
                    value = func(y_true, results)
                except Exception as err:
                    raise RuntimeError(f"metric {name!r} failed: "
                                       f"{type(err).__name__}: {err}") from err
                values[name] = value.item() if hasattr(value, "item") else value
                if isinstance(values[name], float) and math.isnan(values[name]):
                    empty[name] = why_empty(name, y_true, results)
        finally:
            forget_results()  # what the metrics shared of this case's results
        return values, empty

    @staticmethod
    def _config_yaml(job, case):
        config = {
            "edgellm_version": __version__,
            "job": {"name": job.name, "file": job.path, "workspace": job.workspace},
            "testenv": {"file": job.testenv.path, "params": job.testenv.params,
                        "dataset": vars(job.testenv.dataset),
                        "metrics": [vars(m) for m in job.testenv.metrics]},
            "algorithm": {"name": case.algorithm, "file": case.algorithm_url,
                          "paradigm_type": case.paradigm_type},
            "modules": [{"type": m.type, "name": m.name, "url": m.url,
                         "hyperparameters": m.hyperparameters}
                        for m in case.modules.values()],
        }
        return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)

    # -- leaderboard -----------------------------------------------------------

    def _rank(self, report, metric_names, board, folder):
        ok = [o for o in report.outcomes if o.ok]
        if ok:
            module_types, hp_names = [], []
            for o in ok:
                module_types += [t for t in o.case.modules if t not in module_types]
                hp_names += [h for h in o.case.hyperparameter_columns() if h not in hp_names]
            rows = [{"algorithm": o.case.algorithm, **o.metrics,
                     "paradigm": o.case.paradigm_type,
                     **{t: m.name for t, m in o.case.modules.items()},
                     **o.case.hyperparameter_columns(), "simulated": o.simulated,
                     "time": o.finished, "url": o.output_dir} for o in ok]
            report.standings = board.save(
                rows, metric_names, module_types, hp_names,
                then=lambda: folder.move_into_place(o.output_dir for o in ok))
            report.selected_rank_file = report.standings.selected_file
            visual = report.job.rank.visualization or {}
            if visual.get("mode", "selected_only") == "selected_only" and \
                    visual.get("method", "print_table") == "print_table":
                notes = [n for n in (_empty_note(ok, report.job.rank.selected_dataitem.get(
                    "metrics")), _estimated_note(ok)) if n]
                confidence = list(dict.fromkeys([*report.job.rank.confidence,
                                                 *self.table.confidence]))
                view = leaderboard_view(report.job.name, report.standings, confidence, notes)
                report.table = render_table(view, self.table.width, self.table.wide)
