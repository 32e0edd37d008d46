"""The fleet as Ianvs' edge model module.

sedna calls ``predict(sample)`` per task; ``edgellm run`` calls ``predict_batch``
with the same results. At ``cleanup()`` the run's round log (rounds.csv, plots)
and per-node summary (fleet.json) go to the test case's folder (the run context's;
under Ianvs, which does not tell modules their case folder,
``<algorithm folder>/fleet/<time>-<id>``: edgellm.context).
"""

import logging
import os
import time
import uuid

import orjson

from edgellm.context import current_context
from edgellm.errors import ConfigError
from edgellm.files import write_text
from edgellm.fleet.registry import (CACHING_POLICIES, OFFLOADERS, WORLDS,
                                    create_caching_policy, create_offloader, part_settings)
from edgellm.fleet.rounds import plot_rounds, round_frame, write_round_log
from edgellm.fleet.topology import load_topology
from edgellm.models import create_backend
from edgellm.models.openai_compatible import NO_KEY
from edgellm.registry import RegistryError, SettingError, check_settings

log = logging.getLogger(__name__)


class FleetEdgeModel:
    """Hyperparameters: ``topology`` (YAML path), ``offloader`` and ``caching`` (aliases),
    ``caching_every`` (rounds), ``slo_s`` (the SLO the cloud fallback guards; none: no
    fallback), ``seed``, and the offloaders' and caching policies' settings by name: a
    grid's settings are shared, so each part takes those it accepts (a
    ``latency_weight`` is for the offloaders that weigh latency); a name that none
    takes is an error (edgellm.fleet.registry). ``center_url``: run on the live center
    there and its edge agents (``edgellm fleet up``) instead of the simulator; the same
    offloader and caching policy decide, the responses come back in the same layout."""

    def __init__(self, topology, offloader="LeastLoaded", caching="Static", caching_every=20,
                 slo_s=None, seed=0, center_url=None, **params):
        check_settings(type(self), params)
        self.params = dict(topology=topology, offloader=offloader, caching=caching,
                           caching_every=caching_every, slo_s=slo_s, seed=seed, **params)
        self.center_url = center_url
        self._sim = None

    @classmethod
    def extra_settings(cls):
        return part_settings()

    @classmethod
    def check_config(cls, params, source="edge model"):
        """Fail before the run on an unknown setting or alias, a bad topology or a center
        that does not answer; returns whether the module runs no real model (every
        node simulated, no endpoint, no live center)."""
        params = dict(params)
        check_settings(cls, params)
        path = params.get("topology")
        if not path:
            raise ConfigError(source, "the fleet edge model needs a 'topology' hyperparameter")
        for setting, registry, default in (("offloader", OFFLOADERS, "LeastLoaded"),
                                           ("caching", CACHING_POLICIES, "Static")):
            if params.get(setting, default) not in registry:
                raise SettingError(cls.__name__, setting,
                                   registry.unknown_message(params[setting]))
        topology = load_topology(path)
        settings = {k: v for k, v in params.items() if k not in
                    ("topology", "offloader", "caching", "caching_every", "slo_s", "center_url")}
        try:
            create_offloader(params.get("offloader", "LeastLoaded"), **settings)
            create_caching_policy(params.get("caching", "Static"), **settings)
        except (ValueError, TypeError) as err:
            if isinstance(err, (SettingError, RegistryError)):
                raise
            raise ConfigError(source, str(err)) from None
        if params.get("center_url"):
            try:
                live = WORLDS.get("live")
            except ModuleNotFoundError as err:
                raise SettingError(cls.__name__, "center_url", f"the live fleet needs the "
                                   f"{err.name} package: pip install 'edgellm[live]'") from None
            problem = live.check(params["center_url"])
            if problem:
                raise SettingError(cls.__name__, "center_url", problem)
            return False  # one center runs one case at a time: no side-by-side workers
        return not any(n.base_url for n in topology.nodes)

    @property
    def simulator(self):
        if self._sim is None:  # lazy: sedna calls load() only in some set-ups
            params = dict(self.params)
            topology = load_topology(params.pop("topology"))
            if self.center_url:
                self._sim = WORLDS.get("live")(topology, self.center_url, **params)
            else:
                self._sim = WORLDS.get("simulated")(topology, endpoints=_endpoints(topology),
                                                    **params)
        return self._sim

    @property
    def simulated(self):
        return bool(getattr(self.simulator, "simulated", not self.simulator.endpoints))

    def load(self, **kwargs):
        return self.simulator

    def predict(self, data, **kwargs):
        return self.simulator.serve(data)

    def predict_batch(self, samples):
        return self.simulator.serve_batch(list(samples))

    def cleanup(self):
        sim, self._sim = self._sim, None
        if sim is None:
            return
        sim.finish_round()
        folder = _case_folder()
        frame = round_frame(sim.round_rows())   # built once for the CSV and the plots
        write_round_log(frame, folder)
        plot_rounds(frame, folder, self._caption(sim))
        write_text(os.path.join(folder, "fleet.json"),
                   orjson.dumps(sim.summary(), option=orjson.OPT_INDENT_2).decode())
        for backend in sim.endpoints.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        log.info("fleet round log written to %s", folder)


    def _caption(self, sim):
        """Which case a round plot shows: offloader, caching policy, topology (name and
        file), and SIMULATED where the simulator answered."""
        topology = self.params["topology"]
        name = getattr(getattr(sim, "topology", None), "name", None) or ""
        caption = (f"offloader {self.params['offloader']}, caching {self.params['caching']}, "
                   f"topology {name} ({os.path.basename(str(topology))})")
        simulated = bool(getattr(sim, "simulated", not sim.endpoints))  # as ``simulated``
        return caption + (" - SIMULATED" if simulated else "")


def _case_folder():
    context = current_context()
    folder = context.case_dir
    if not folder:
        base = context.algorithm_dir or context.workspace
        folder = os.path.join(base, "fleet", f"{time.strftime('%Y%m%d-%H%M%S')}-"
                                             f"{uuid.uuid4().hex[:8]}")
    os.makedirs(folder, exist_ok=True)
    return folder


def _endpoints(topology):
    """A real backend per (node, model) for nodes with a ``base_url`` (an
    OpenAI-compatible server; local ones need no key unless ``api_key_env`` is set)."""
    endpoints = {}
    for i, node in enumerate(topology.nodes):
        if not node.base_url:
            continue
        for j, model in enumerate(topology.models):
            endpoints[(i, j)] = create_backend(
                "openai", tier="edge", node=node.id, model=model.endpoint_model or model.profile,
                base_url=node.base_url, api_key_env=node.api_key_env or NO_KEY)
    return endpoints
