"""Offloaders and caching policies, looked up by the alias a grid names them by.

A fleet's settings are one flat set (a grid holds every part's hyperparameters side
by side, and one ``latency_weight`` serves whichever offloader a test case picks), so
each part takes the settings it accepts from the shared set; a name that no part takes
is an ``UnknownSetting``, as everywhere else.
"""

from edgellm.registry import Registry, UnknownSetting, accepted_settings

# Lazy entries: a learning offloader's module is imported only when it is used.
OFFLOADERS = Registry("offloader")
for _alias, _target in (("RoundRobin", "edgellm.fleet.offloaders:RoundRobinOffloader"),
                        ("LeastLoaded", "edgellm.fleet.offloaders:LeastLoadedOffloader"),
                        ("QualityGreedy", "edgellm.fleet.offloaders:QualityGreedyOffloader"),
                        ("LinUCB", "edgellm.fleet.learning:LinUcbOffloader"),
                        ("Thompson", "edgellm.fleet.learning:ThompsonOffloader"),
                        ("MLPPredictor", "edgellm.fleet.learning:MlpPredictorOffloader"),
                        ("DQN", "edgellm.fleet.dqn:DqnOffloader"),
                        ("ActiveReasoning",
                         "edgellm.fleet.active_reasoning:ActiveReasoningOffloader")):
    OFFLOADERS.register(_alias, _target)

CACHING_POLICIES = Registry("caching policy")
for _alias, _target in (("Static", "edgellm.fleet.caching:StaticCaching"),
                        ("LRU", "edgellm.fleet.caching:LruCaching"),
                        ("LFU", "edgellm.fleet.caching:LfuCaching"),
                        ("DemandKnapsack", "edgellm.fleet.caching:DemandKnapsackCaching")):
    CACHING_POLICIES.register(_alias, _target)


# The worlds a fleet job runs in: the discrete-event simulator, or a live center and
# its edge agents (the fleet module's ``center_url``); lazy, so that the simulation
# never imports the live fleet's HTTP client.
WORLDS = Registry("fleet world")
WORLDS.register("simulated", "edgellm.fleet.simulator:FleetSimulator")
WORLDS.register("live", "edgellm.live.client:LiveFleet")


def part_settings():
    """Every setting some offloader or caching policy takes."""
    names = []
    for registry in (OFFLOADERS, CACHING_POLICIES):
        for alias in registry:
            names += [n for n in accepted_settings(registry.get(alias)) if n not in names]
    return names


def build_part(registry, alias, settings, owner="fleet"):
    """The part ``alias`` of ``registry`` built from the fleet's shared ``settings``:
    it gets those it accepts. A setting no part takes is an ``UnknownSetting``."""
    known = part_settings()
    for name in settings:
        if name not in known:
            raise UnknownSetting(owner, name, known)
    cls = registry.get(alias)
    takes = accepted_settings(cls)
    return cls(**{k: v for k, v in settings.items() if k in takes})


def create_offloader(alias, **settings):
    return build_part(OFFLOADERS, alias, settings)


def create_caching_policy(alias, **settings):
    return build_part(CACHING_POLICIES, alias, settings)
