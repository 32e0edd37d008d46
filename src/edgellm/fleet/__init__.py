"""Several edge nodes: topology, task offloading, model caching, the timeline.

``FleetEdgeModel`` (module.py) is the Ianvs edge model module; ``FleetSimulator``
(simulator.py) runs the center; offloaders.py and caching.py hold the policies,
registered by alias.
"""
