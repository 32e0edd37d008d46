"""The fleet's world, as data: edge nodes, the model catalog and the cloud.

A topology YAML (docs/fleet.md shows one) is read into frozen dataclasses; every
problem is a one-line ``ConfigError`` naming the file and the key. Every number must
be finite (``.nan`` passed ``<= 0`` checks, ``.inf`` made a node infinitely fast), and
true/false is no number. A node that can hold no model of the catalog is allowed (a
fleet may be planned that way) but logged once, as a warning: every task it would
serve goes to the cloud.
"""

import logging
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from edgellm.errors import ConfigError
from edgellm.models.pricing import price_for
from edgellm.models.simulated import load_profile
from edgellm.tasks.registry import get_task_type, task_types
from edgellm.yaml_file import YamlSection, load_yaml

LOG = logging.getLogger(__name__)


class _Quality:
    """A model's expected quality per task type (``quality``), multiple choice's
    where a task type has none of its own."""

    def quality_for(self, task_type):
        return self.quality.get(task_type, self.quality.get("multiple_choice", 0.0))


@dataclass(frozen=True)
class CatalogModel(_Quality):
    """A model the center can place on nodes. Speeds are on the reference device."""

    id: str
    profile: str                 # simulated-backend profile: answers and quality per task type
    size_gb: float               # at the deployed quantisation
    quantization: str
    load_s_per_gb: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    quality: dict                # task type -> expected quality (0-1)
    params_b: float = 0.0
    endpoint_model: str = None   # model name a real node's server knows it by
    # a request's fixed cost before its prefill (the server's HTTP and parsing): a
    # request waiting for a slot pays it while it waits (fleet/simulator.py)
    overhead_s: float = 0.0
    # attention's share, which grows with the context (edgellm calibrate measures both):
    # prefill seconds per squared prompt token, and each decoded token's extra seconds
    # per token of context before it (a long prompt's answer decodes slower)
    prefill_s_per_token2: float = 0.0
    decode_s_per_context_token: float = 0.0
    # (requests served at once, factor on their prefill and decode time) pairs, measured
    # by edgellm calibrate: a batching server slows each request it serves together with
    # others (docs/llama-cpp.md)
    load_slowdown: tuple = ()

    def prefill_s(self, prompt_tokens, speed=1.0):
        """Seconds from the start of service to the first token (a node of ``speed``)."""
        seconds = self.overhead_s / speed + prompt_tokens / (self.prefill_tokens_per_s * speed)
        if self.prefill_s_per_token2:
            seconds += self.prefill_s_per_token2 * prompt_tokens ** 2 / speed
        return seconds

    def token_s(self, prompt_tokens, completion_tokens, speed=1.0):
        """Mean seconds per decoded token after the first: each one attends to the
        prompt and the tokens before it (their mean context: prompt + tokens / 2)."""
        seconds = 1.0 / (self.decode_tokens_per_s * speed)
        if self.decode_s_per_context_token:
            seconds += self.decode_s_per_context_token * (prompt_tokens + completion_tokens / 2) \
                / speed
        return seconds

    def slowdown(self, requests):
        """The factor on a request's service time when ``requests`` are served at once
        at its node (itself included): linear between the measured points, flat beyond
        them."""
        if not self.load_slowdown:
            return 1.0
        points = ((1, 1.0),) + tuple(p for p in self.load_slowdown if p[0] > 1)
        return float(np.interp(requests, [p[0] for p in points], [p[1] for p in points]))


@dataclass(frozen=True)
class EdgeNode:
    id: str
    memory_gb: float
    speed: float                 # compute relative to the reference device
    slots: int                   # requests served at once
    bandwidth_mbps: float        # link to the center
    rtt_s: float
    models: tuple                # catalog ids loaded at t = 0
    base_url: str = None         # an OpenAI-compatible server: real answers and timings
    api_key_env: str = None

    def transfer_s(self, size_gb):
        """Seconds to move ``size_gb`` from the center over the node's link."""
        return size_gb * 8e3 / self.bandwidth_mbps

    def send_s(self, n_bytes):
        """One-way delay of a message of ``n_bytes``: half the round trip plus serialisation."""
        return self.rtt_s / 2 + n_bytes * 8 / (self.bandwidth_mbps * 1e6)


@dataclass(frozen=True)
class CloudSpec(_Quality):
    profile: str
    rtt_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    rate_limit_rps: float        # token bucket with a burst of one second's worth
    quality: dict
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Topology:
    name: str
    path: str
    nodes: tuple
    models: tuple
    cloud: CloudSpec
    reference_device: str = ""
    model_index: dict = field(default_factory=dict, compare=False, repr=False)

    def model(self, model_id):
        return self.models[self.model_index[model_id]]

    def preferred_model(self, task_type, node):
        """The catalog's best model for ``task_type`` among those fitting ``node``."""
        fitting = [m for m in self.models if m.size_gb <= node.memory_gb]
        if not fitting:
            return None
        return max(fitting, key=lambda m: (m.quality_for(task_type), -m.size_gb)).id


def _quality(section, profile_name, profile_accuracy):
    """The profile's accuracy per task type, overridden by a ``quality`` mapping."""
    quality = {name: float(v) for name, v in profile_accuracy.items()}
    override = section.get("quality", dict, default={})
    for name, value in override.items():
        try:
            canonical = get_task_type(name).name
        except ValueError:
            raise section.error("quality", f"unknown task type {name!r} (known: "
                                           f"{', '.join(task_types())})") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise section.error(f"quality.{name}", f"expected a number in [0, 1], got {value!r}")
        quality[canonical] = float(value)
    return quality


def _number(section, name, default=None, positive=False):
    """The finite number (>= 0; with ``positive`` > 0) at ``name``; required when no
    ``default`` is given."""
    value = section.get(name, (int, float), default=default, required=default is None)
    if not math.isfinite(value):
        raise section.error(name, f"expected a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise section.error(name, f"must be {'positive' if positive else '>= 0'}, "
                                  f"got {value!r}")
    return float(value)


def _positive(section, name, default=None):
    return _number(section, name, default, positive=True)


def _profile(section, key):
    name = section.get(key, str, required=True)
    try:
        return name, load_profile(name)
    except ValueError as err:
        raise section.error(key, str(err)) from None


def _catalog_model(section):
    model_id = section.get("id", str, required=True)
    name, profile = _profile(section, "profile")
    sizes = section.get("sizes_gb", dict, required=True)
    if not sizes:
        raise section.error("sizes_gb", "empty mapping")
    for quant, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, (int, float)) or \
                not math.isfinite(size) or size <= 0:
            raise section.error(f"sizes_gb.{quant}", f"expected a positive number, got {size!r}")
    quantization = section.get("quantization", str, default=min(sizes, key=sizes.get))
    if quantization not in sizes:
        raise section.error("quantization", f"{quantization!r} is not in sizes_gb "
                                            f"({', '.join(sizes)})")
    return CatalogModel(
        id=model_id, profile=name, size_gb=float(sizes[quantization]), quantization=quantization,
        load_s_per_gb=_positive(section, "load_s_per_gb"),
        prefill_tokens_per_s=_positive(section, "prefill_tokens_per_s"),
        decode_tokens_per_s=_positive(section, "decode_tokens_per_s"),
        quality=_quality(section, name, profile.accuracy),
        params_b=_number(section, "params_b", 0.0),
        endpoint_model=section.get("endpoint_model", str),
        overhead_s=_number(section, "overhead_s", 0.0),
        prefill_s_per_token2=_number(section, "prefill_s_per_token2", 0.0),
        decode_s_per_context_token=_number(section, "decode_s_per_context_token", 0.0),
        load_slowdown=_load_slowdown(section))


def _load_slowdown(section):
    """``load_slowdown``: {requests served at once (whole, >= 1): factor (> 0)}."""
    table = section.get("load_slowdown", dict, default={})
    pairs = []
    for key, factor in table.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 1:
            raise section.error("load_slowdown", f"keys are requests served at once (whole "
                                                 f"numbers >= 1), got {key!r}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or \
                not math.isfinite(factor) or factor <= 0:
            raise section.error(f"load_slowdown.{key}", f"expected a positive number, "
                                                        f"got {factor!r}")
        pairs.append((key, float(factor)))
    return tuple(sorted(pairs))


def _node(section, catalog):
    link = section.section("link")
    node_id = section.get("id", str, required=True)
    models = section.get("models", list, default=[])
    for j, model_id in enumerate(models):
        if model_id not in catalog:
            raise section.error(f"models[{j}]", f"unknown model {model_id!r} (catalog: "
                                                f"{', '.join(catalog)})")
    if len(set(models)) != len(models):
        raise section.error("models", "a model is listed twice")
    memory = _positive(section, "memory_gb")
    used = sum(catalog[m].size_gb for m in models)
    if used > memory + 1e-9:
        raise section.error("models", f"initial models need {used:.2f} GB, more than "
                                      f"memory_gb {memory:g}")
    slots = section.get("slots", int, default=1)
    if slots < 1:
        raise section.error("slots", f"must be at least 1, got {slots}")
    return EdgeNode(id=node_id, memory_gb=memory, speed=_positive(section, "speed", 1.0),
                    slots=slots, bandwidth_mbps=_positive(link, "bandwidth_mbps"),
                    rtt_s=_number(link, "rtt_ms", 0.0) / 1e3,
                    models=tuple(models), base_url=section.get("base_url", str),
                    api_key_env=section.get("api_key_env", str))


def _cloud(section):
    name, profile = _profile(section, "profile")
    prices = {key: _number(section, key, 0.0) if section.get(key) is not None else None
              for key in ("input_per_mtok", "output_per_mtok")}
    price = price_for(name, **prices)
    return CloudSpec(profile=name, rtt_s=_number(section, "rtt_ms", 0.0) / 1e3,
                     prefill_tokens_per_s=_positive(section, "prefill_tokens_per_s",
                                                    profile.prefill_tokens_per_s),
                     decode_tokens_per_s=_positive(section, "decode_tokens_per_s",
                                                   profile.decode_tokens_per_s),
                     rate_limit_rps=_positive(section, "rate_limit_rps", 1e9),
                     quality=_quality(section, name, profile.accuracy),
                     input_per_mtok=price.input_per_mtok, output_per_mtok=price.output_per_mtok)


def _unique(sections, what):
    seen = {}
    for s in sections:
        ident = s.get("id", str, required=True)
        if ident in seen:
            raise s.error("id", f"duplicate {what} id {ident!r}")
        seen[ident] = s
    return seen


def load_topology(path):
    """Read and validate a topology YAML. Cached by the file's absolute path, size and
    modification time: a sweep reads each file once, and a file changed since (or
    another file at the same relative path, from another folder) is read again."""
    try:
        stat = os.stat(path)
    except OSError:
        return _load_topology(path, None)  # its ConfigError names the missing file
    return _load_topology(path, (os.path.abspath(path), stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=32)
def _load_topology(path, identity):
    top = load_yaml(path, "topology")
    if not isinstance(top, dict):
        raise ConfigError(path, "expected a mapping with keys nodes, models, cloud")
    root = YamlSection(path, "", top)
    model_sections = _unique(root.sections("models"), "model")
    catalog = {ident: _catalog_model(s) for ident, s in model_sections.items()}
    nodes = tuple(_node(s, catalog) for s in _unique(root.sections("nodes"), "node").values())
    models = tuple(catalog.values())
    topology = Topology(name=root.get("name", str, default=path), path=path, nodes=nodes,
                        models=models, cloud=_cloud(root.section("cloud")),
                        reference_device=root.get("reference_device", str, default=""),
                        model_index={m.id: i for i, m in enumerate(models)})
    _warn_of_empty_nodes(topology)  # once per file and process: the read is cached
    return topology


def _warn_of_empty_nodes(topology):
    smallest = min(m.size_gb for m in topology.models)
    empty = [n.id for n in topology.nodes if n.memory_gb < smallest]
    if empty:
        LOG.warning("topology %s: node%s %s cannot hold any model of the catalog (the "
                    "smallest needs %g GB): %s", topology.path, "s" if len(empty) > 1 else "",
                    ", ".join(empty), smallest,
                    "every task goes to the cloud" if len(empty) == len(topology.nodes)
                    else "they serve no task")
