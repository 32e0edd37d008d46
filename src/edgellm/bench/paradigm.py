"""The joint-inference paradigm, with the call order Ianvs and sedna use.

Per sample, sedna does (mining-then-inference) ``hard = router(x)`` then
``edge.predict(x)`` or ``cloud.inference(x)``; (inference-then-mining)
``res = edge.predict(x)``, ``hard = router(res)``, and ``cloud.inference(x)`` if
hard. The result is ``[hard, res, edge_result, cloud_result]``.

We run the same steps a chunk at a time: each component sees its own calls in
the same order as in the per-sample loop, so stateful routers (a seeded random
one) and deterministic models give identical results, while batch-capable
modules (``route_batch``, ``predict_batch``, ``inference_batch``) answer a whole
chunk in one call.
"""

from edgellm.models.tiers import answer_all

CHUNK = 1024  # samples per step: large enough to amortise, small enough for live progress


def route_all(router, items):
    batch = getattr(router, "route_batch", None)
    if callable(batch):
        return [bool(h) for h in batch(items)]
    return [bool(router(x)) for x in items]


class JointInference:
    """Runs one test case's samples through router, edge and cloud."""

    def __init__(self, edgemodel, cloudmodel, router, mode="mining-then-inference"):
        self.edge, self.cloud, self.router, self.mode = edgemodel, cloudmodel, router, mode
        # sedna passes the mode on to both models as a keyword argument
        self.kwargs = {"mining_mode": mode}

    def run_chunk(self, samples):
        if self.mode == "mining-then-inference":
            hard = route_all(self.router, samples)
            edge = self._answer("edge", [s for s, h in zip(samples, hard) if not h])
            cloud = self._answer("cloud", [s for s, h in zip(samples, hard) if h])
            edge_it, cloud_it = iter(edge), iter(cloud)
            results = []
            for h in hard:
                if h:
                    res = next(cloud_it)
                    results.append([True, res, None, res])
                else:
                    res = next(edge_it)
                    results.append([False, res, res, None])
            return results
        edge = self._answer("edge", samples)
        hard = route_all(self.router, edge)
        cloud_it = iter(self._answer("cloud", [s for s, h in zip(samples, hard) if h]))
        results = []
        for e, h in zip(edge, hard):
            if h:
                c = next(cloud_it)
                results.append([True, c, e, c])
            else:
                results.append([False, e, e, None])
        return results

    def _answer(self, tier, samples):
        if not samples:
            return []
        module = self.edge if tier == "edge" else self.cloud
        kwargs = dict(self.kwargs, post_process=None) if tier == "cloud" else self.kwargs
        responses = answer_all(module, tier, samples, **kwargs)
        if len(responses) != len(samples):
            raise RuntimeError(f"{tier} model returned {len(responses)} responses "
                               f"for {len(samples)} samples")
        return responses

    def run(self, samples, on_chunk=None):
        """All samples, chunk by chunk; ``on_chunk(results_of_chunk)`` after each."""
        results = []
        for start in range(0, len(samples), CHUNK):
            chunk = self.run_chunk(samples[start:start + CHUNK])
            results.extend(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        return results
