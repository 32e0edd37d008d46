"""The fleet module's side of the live center: a test case's tasks in, responses out.

``LiveFleetClient`` starts a run on the center with the case's fleet settings (the
offloader, the caching policy and their settings), hands it each chunk of samples
(each arrives on the center at its ``arrival_s``), waits for every answer and returns
them in the samples' order, in the Ianvs response layout the simulator gives: every
metric reads them the same way. A center that goes away fails the case with one line.
"""

import time

import httpx

CHUNK = 2000  # tasks per request: well under the center's body limit


class CenterGone(RuntimeError):
    """The center stopped answering, or forgot the run (it restarted)."""


class LiveFleetClient:
    def __init__(self, center_url, topology, settings, timeout_s=3600.0, poll_s=10.0):
        self.url = center_url.rstrip("/")
        self.topology = topology
        self.settings = dict(settings)
        self.timeout_s, self.poll_s = float(timeout_s), float(poll_s)
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(poll_s + 30))
        self.run = None
        self._next_key = 0
        self._seen = 0
        self._responses = {}

    def _request(self, method, path, **kwargs):
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            raise CenterGone(f"the live center at {self.url} does not answer "
                             f"({type(err).__name__}: {err})") from None
        if response.status_code != 200:
            try:
                message = response.json().get("error")
            except ValueError:
                message = response.text[:200]
            raise CenterGone(f"the live center at {self.url}: {message} "
                             f"(HTTP {response.status_code})")
        return response.json()

    def start(self):
        body = {"settings": self.settings, "nodes": [n.id for n in self.topology.nodes],
                "models": [m.id for m in self.topology.models]}
        self.run = self._request("POST", "/api/runs", json=body)["run"]
        return self.run

    def serve_batch(self, samples):
        if self.run is None:
            self.start()
        keys = list(range(self._next_key, self._next_key + len(samples)))
        self._next_key += len(samples)
        for i in range(0, len(samples), CHUNK):
            tasks = [{"key": k, "sample": s} for k, s in
                     zip(keys[i:i + CHUNK], samples[i:i + CHUNK])]
            self._request("POST", f"/api/runs/{self.run}/tasks", json={"tasks": tasks})
        deadline = time.monotonic() + self.timeout_s
        while any(k not in self._responses for k in keys):
            if time.monotonic() > deadline:
                raise CenterGone(f"the live center at {self.url} answered "
                                 f"{sum(k in self._responses for k in keys)} of {len(keys)} "
                                 f"tasks in {self.timeout_s:g} s")
            body = self._request("GET", f"/api/runs/{self.run}/outcomes",
                                 params={"after": self._seen, "wait": self.poll_s})
            for outcome in body["outcomes"]:
                self._responses[outcome["key"]] = outcome["response"]
            self._seen = body["next"]
        return [self._responses.pop(k) for k in keys]

    def finish(self):
        """The run's summary and round log; the run ends on the center."""
        if self.run is None:
            return None
        try:
            return self._request("DELETE", f"/api/runs/{self.run}")
        finally:
            self.run = None

    def close(self):
        self.http.close()


def center_problem(center_url, timeout_s=5.0):
    """Why the center at ``center_url`` cannot take a run now, or None."""
    try:
        response = httpx.get(center_url.rstrip("/") + "/healthz", timeout=timeout_s)
    except httpx.HTTPError as err:
        return f"no live center answers at {center_url} ({type(err).__name__}); start one " \
               f"with 'edgellm fleet up' or 'edgellm center'"
    if response.status_code != 200:
        return f"{center_url}/healthz answered HTTP {response.status_code}"
    return None


class LiveFleet:
    """The fleet module's world when it has a ``center_url``: the same interface as
    the simulator (``serve``, ``serve_batch``, ``finish_round``, ``round_rows``,
    ``summary``), answered by the live center and its nodes."""

    endpoints = {}

    @staticmethod
    def check(center_url):
        """Why the center cannot take a run, or None (before the first test case)."""
        return center_problem(center_url)

    def __init__(self, topology, center_url, offloader="LeastLoaded", caching="Static",
                 caching_every=20, slo_s=None, seed=0, **policy_settings):
        settings = dict(offloader=offloader, caching=caching, caching_every=caching_every,
                        slo_s=slo_s, seed=seed, **policy_settings)
        self.client = LiveFleetClient(center_url, topology, settings)
        self._finished = None

    def serve(self, sample):
        return self.serve_batch([sample])[0]

    def serve_batch(self, samples):
        return self.client.serve_batch(list(samples))

    def finish_round(self):
        """The run is over: its summary and round log come back from the center."""
        if self._finished is None and self.client.run is not None:
            self._finished = self.client.finish()
            self.client.close()

    def round_rows(self):
        return (self._finished or {}).get("rounds", [])

    def summary(self):
        return (self._finished or {}).get("summary", {})

    @property
    def simulated(self):
        engines = (self._finished or {}).get("engines", ["simulated"])
        return all(e == "simulated" for e in engines)
