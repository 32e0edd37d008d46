"""The fleet as Ianvs' edge model module.

sedna calls ``predict(sample)`` per task; ``edgellm run`` calls ``predict_batch``
with the same results. At ``cleanup()`` the run's round log (rounds.csv, plots)
and per-node summary (fleet.json) go to the test case's folder: the one
``edgellm run`` names in ``EDGELLM_CASE_DIR``; under Ianvs, which does not tell
modules their case folder, ``$RESULT_SAVED_URL/fleet/<time>-<id>``.
"""

import logging
import os
import time
import uuid

import orjson

from edgellm.files import write_text
from edgellm.errors import ConfigError
from edgellm.fleet.caching import create_caching_policy
from edgellm.fleet.offloaders import create_offloader
from edgellm.fleet.simulator import FleetSimulator
from edgellm.fleet.topology import load_topology

log = logging.getLogger(__name__)


class FleetEdgeModel:
    """Hyperparameters: ``topology`` (YAML path), ``offloader`` and ``caching`` (aliases),
    ``caching_every`` (rounds), ``slo_s`` (the SLO the cloud fallback guards; none: no
    fallback), ``seed``, and any offloader or caching policy setting by name."""

    def __init__(self, topology, offloader="LeastLoaded", caching="Static", caching_every=20,
                 slo_s=None, seed=0, **params):
        self.params = dict(topology=topology, offloader=offloader, caching=caching,
                           caching_every=caching_every, slo_s=slo_s, seed=seed, **params)
        self._sim = None
        # sedna refuses to start unless env `model_path` names an existing file
        os.environ["model_path"] = os.path.abspath(__file__)

    @staticmethod
    def check_config(params, source="edge model"):
        """Fail before the run on a bad topology or an unknown alias; returns whether
        every node is simulated (no endpoint)."""
        params = dict(params)
        path = params.get("topology")
        if not path:
            raise ConfigError(source, "the fleet edge model needs a 'topology' hyperparameter")
        topology = load_topology(path)
        try:
            create_offloader(params.get("offloader", "LeastLoaded"), **params)
            create_caching_policy(params.get("caching", "Static"), **params)
        except (ValueError, TypeError) as err:
            raise ConfigError(source, str(err)) from None
        return not any(n.base_url for n in topology.nodes)

    @property
    def simulator(self):
        if self._sim is None:  # lazy: sedna calls load() only in some set-ups
            params = dict(self.params)
            topology = load_topology(params.pop("topology"))
            self._sim = FleetSimulator(topology, endpoints=_endpoints(topology), **params)
        return self._sim

    @property
    def simulated(self):
        return not self.simulator.endpoints

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
        from edgellm.fleet.rounds import plot_rounds, round_frame, write_round_log
        frame = round_frame(sim.round_rows())   # built once for the CSV and the plots
        write_round_log(frame, folder)
        plot_rounds(frame, folder)
        write_text(os.path.join(folder, "fleet.json"),
                   orjson.dumps(sim.summary(), option=orjson.OPT_INDENT_2).decode())
        for backend in sim.endpoints.values():
            close = getattr(backend, "close", None)
            if callable(close):
                close()
        log.info("fleet round log written to %s", folder)


def _case_folder():
    folder = os.environ.get("EDGELLM_CASE_DIR")
    if not folder:
        base = os.environ.get("RESULT_SAVED_URL") or "workspace"
        folder = os.path.join(base, "fleet", f"{time.strftime('%Y%m%d-%H%M%S')}-"
                                             f"{uuid.uuid4().hex[:8]}")
    os.makedirs(folder, exist_ok=True)
    return folder


def _endpoints(topology):
    """A real backend per (node, model) for nodes with a ``base_url`` (an
    OpenAI-compatible server; local ones need no key unless ``api_key_env`` is set)."""
    from edgellm.models import create_backend
    from edgellm.models.openai_compatible import NO_KEY
    endpoints = {}
    for i, node in enumerate(topology.nodes):
        if not node.base_url:
            continue
        for j, model in enumerate(topology.models):
            endpoints[(i, j)] = create_backend(
                "openai", tier="edge", node=node.id, model=model.endpoint_model or model.profile,
                base_url=node.base_url, api_key_env=node.api_key_env or NO_KEY)
    return endpoints
