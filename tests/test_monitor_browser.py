"""The monitor's pages in a real browser: headless Chromium (Debian's chromium and
chromium-driver, through Selenium; nothing is downloaded) against a center and three
agents on loopback. Skipped, with one line saying why, where no browser is installed.
Every page is checked for console errors."""

import os
import signal
import threading
import time

import httpx
import pytest

from edgellm.fleet.topology import load_topology
from edgellm.live.client import LiveFleet
from edgellm.testing.browser import console_errors, headless_chromium, missing_browser
from edgellm.testing.live_fleet import LocalCenter, spawn_fleet, stop_agents
from monitor_workspace import HOSTILE, write_workspace
from test_live_fleet import FAST, SMALL, TOKEN, samples

if missing_browser() is not None:  # one skip line for the file, not one per test
    pytest.skip(f"no headless browser: {missing_browser()}", allow_module_level=True)
WAIT_S = 20  # a page's first load (plotly.min.js is 4.6 MB) on a busy machine


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium()
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A center with a workspace and three agents, after a run with caching rounds."""
    tmp = tmp_path_factory.mktemp("monitor-fleet")
    workspace = write_workspace(str(tmp / "workspace"))
    center = LocalCenter(SMALL, str(tmp / "center-models"), TOKEN, time_scale=0.05,
                         workspace=workspace, **FAST).start()
    try:
        agents = spawn_fleet(center, SMALL, TOKEN, str(tmp))
    except BaseException:
        center.stop()
        raise
    try:
        live = LiveFleet(load_topology(SMALL), center.url, offloader="QualityGreedy",
                         caching="LFU", caching_every=2, slo_s=None, seed=0)
        live.serve_batch([dict(s) for s in samples(18, task_types=("SG", "TC"))])
        live.finish_round()
        yield center, agents
    finally:
        stop_agents(agents.values())
        center.stop()


class FakeNode:
    """A node spoken for over HTTP: it registers and beats every 0.1 s with ``report``
    (its load and models) until the ``with`` block ends."""

    def __init__(self, center, node_id):
        self.url, self.node_id = center.url, node_id
        self.report = {}
        self.token = httpx.post(self.url + "/api/register", json={"node_id": node_id},
                                headers={"Authorization": f"Bearer {TOKEN}"}
                                ).json()["node_token"]
        self._stop = threading.Event()
        self._beats = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self._stop.is_set():
            self.post("/api/heartbeat", **self.report)
            self._stop.wait(0.1)

    def post(self, path, **body):
        return httpx.post(self.url + path, json={"node_id": self.node_id, **body},
                          headers={"Authorization": f"Bearer {self.token}"})

    def __enter__(self):
        self._beats.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._beats.join(5)


def wait(driver, condition, what, timeout=WAIT_S):
    """Poll ``condition(driver)`` (JavaScript's view of the page) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition(driver)
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what}: not on the page after {timeout} s; console: "
                         f"{console_errors(driver)}")


def rows(driver, table="nodes"):
    return driver.execute_script(
        f"return [...document.querySelectorAll('#{table} tbody tr')].map(tr => "
        "({node: tr.getAttribute('data-node'), state: tr.getAttribute('data-state'), "
        "kind: tr.getAttribute('data-kind'), shown: Number(tr.getAttribute('data-shown-at')),"
        " text: tr.innerText}))")


def drawn(chart):
    return f"return !!document.querySelector('#{chart} .main-svg')"


def no_console_errors(driver):
    errors = console_errors(driver)
    assert not errors, errors


def test_the_center_page_shows_the_fleet_and_links_each_node(browser, fleet):
    center, _ = fleet
    browser.get(center.page_url)
    seen = wait(browser, lambda d: [r for r in rows(d) if r["state"] == "READY"] if len(
        rows(d)) == 3 else None, "three nodes")
    assert sorted(r["node"] for r in seen) == ["orin-nano", "orin-nx-a", "orin-nx-b"]
    assert all("READY" in r["text"] and "simulated" in r["text"] for r in seen)
    wait(browser, lambda d: d.execute_script(drawn("chart-latency")) and
         d.execute_script(drawn("chart-cache")), "the round charts and the cache timeline")
    kinds = {r["kind"] for r in rows(browser, "events")}
    assert {"register", "transfer_done", "run_start", "run_end"} <= kinds
    links = browser.execute_script("return [...document.querySelectorAll('#nodes a')]"
                                   ".map(a => a.href)")
    assert len(links) == 3 and all(link.startswith("http://127.0.0.1:") for link in links)
    no_console_errors(browser)
    # the own page of the node that served most tasks, from the center's link
    node = max(center.nodes().values(), key=lambda n: len(httpx.get(
        n["monitor_url"] + "api/state").json()["recent"]))
    assert node["monitor_url"] in links
    browser.get(node["monitor_url"])
    served = wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#recent tbody tr')].map(tr => "
        "[...tr.cells].map(td => td.innerText))"), "the node's recent tasks")
    assert {task_type for _, task_type, *_ in served} <= {"SG", "TC"}
    assert all(0 <= float(score) <= 1 and float(latency) > 0
               for _, _, _, latency, score, _ in served)
    wait(browser, lambda d: d.execute_script(
        "return document.querySelectorAll('#transfers tbody tr[data-state=done]').length"),
        "the node's transfers")
    text = browser.execute_script("return document.body.innerText")
    assert node["id"] in text and "simulated engine" in text
    for model in node["models_ready"]:
        assert model in browser.execute_script("return document.getElementById('models')"
                                               ".innerText")
    wait(browser, lambda d: d.execute_script(drawn("chart-load")), "CPU and memory")
    no_console_errors(browser)


def test_a_transfer_shows_progress_then_done_and_names_stay_text(browser, tmp_path):
    """A node (spoken for over HTTP) reports a transfer in steps; its model list holds
    a name that would run script if it were HTML."""
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, **FAST) as center, \
            FakeNode(center, "orin-nano") as node:

        def beat(**report):
            node.report = report
            assert node.post("/api/heartbeat", **report).status_code == 200

        def transfer(**report):
            node.post("/api/transfers", model="llama-3.2-3b", **report)

        browser.get(center.page_url)
        wait(browser, lambda d: rows(d), "the node")
        transfer(state="started", total=1000)
        for done in (300, 700):
            beat(models_ready=["qwen2.5-1.5b"], models_loading={
                "llama-3.2-3b": {"bytes": done, "total": 1000, "state": "transfer"}})
            wait(browser, lambda d: d.execute_script(
                "const p = document.querySelector('#nodes progress');"
                f"return p && p.value === {done} && p.max === 1000"), f"{done} of 1000 bytes")
            assert f"transfer {done // 10} %" in rows(browser)[0]["text"]
        transfer(state="done", bytes=1000, seconds=0.5, retries=0, sha256="ab" * 32)
        beat(models_ready=["qwen2.5-1.5b", "llama-3.2-3b", HOSTILE], models_loading={})
        wait(browser, lambda d: "llama-3.2-3b" in rows(d)[0]["text"] and not d.execute_script(
            "return document.querySelector('#nodes progress')"), "the model installed")
        events = wait(browser, lambda d: [r for r in rows(d, "events")
                                          if r["kind"] == "transfer_done"], "transfer done")
        assert "sha256 abababababab" in events[0]["text"]
        assert HOSTILE in rows(browser)[0]["text"]  # shown as the text it is
        wait(browser, lambda d: HOSTILE in d.execute_script(
            "return document.getElementById('chart-cache').textContent"), "the cache lane")
        assert browser.execute_script("return document.querySelectorAll('img').length") == 0
        assert browser.execute_script("return window.alerted === undefined")
        no_console_errors(browser)


def test_the_leaderboard_sorts_filters_and_links_its_cases(browser, fleet):
    center, _ = fleet
    browser.get(center.url + "/leaderboard")
    table = "table.leaderboard tbody tr"

    def column(name):
        return browser.execute_script(
            "const i = [...document.querySelectorAll('table.leaderboard thead th')]"
            f".findIndex(th => th.getAttribute('data-column') === '{name}');"
            f"return [...document.querySelectorAll('{table}')].map(tr => tr.cells[i].innerText)")

    wait(browser, lambda d: len(d.find_elements("css selector", table)) == 3, "three rows")
    head = browser.find_element("css selector", "th[data-column='Accuracy']")
    head.click()
    assert column("Accuracy") == ["61.5", "72.0", "88.25"]
    head.click()
    assert column("Accuracy") == ["88.25", "72.0", "61.5"]
    assert head.get_attribute("aria-sort") == "descending"
    badges = browser.execute_script(
        f"return [...document.querySelectorAll('{table}')].map(tr => tr.cells[1].innerText)")
    assert badges == ["", "SIMULATED", "SIMULATED"]  # the real model's row is not marked
    extra = browser.find_element("css selector", "th[data-column='edgemodel-backend']")
    assert not extra.is_displayed()
    browser.find_element("css selector", "button.toggle").click()
    assert extra.is_displayed() and column("edgemodel-backend")[0] == "openai"
    box = browser.find_element("css selector", "input.filter")
    box.send_keys("real")
    assert column("algorithm") == ["real-model"]
    box.clear()
    box.send_keys("onerror")
    assert column("algorithm") == [HOSTILE]
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    no_console_errors(browser)
    browser.find_element("css selector", f"{table} a").click()
    wait(browser, lambda d: "Metrics" in d.execute_script("return document.body.innerText"),
         "the case page")
    assert HOSTILE in browser.find_element("css selector", "h1").text
    assert browser.execute_script("return document.querySelectorAll('h1 img').length") == 0
    no_console_errors(browser)
    browser.get(center.url + "/case?id=job-a%2Falgo%2Fcase-3")  # the fleet case
    wait(browser, lambda d: d.execute_script(drawn("chart-tasks")) and
         d.execute_script(drawn("chart-cache")), "its rounds")
    no_console_errors(browser)


def test_the_pages_work_under_a_path_prefix(browser, tmp_path):
    with LocalCenter(SMALL, str(tmp_path / "models"), TOKEN, prefix="/edgellm",
                     workspace=write_workspace(str(tmp_path / "ws")), **FAST) as center, \
            FakeNode(center, "orin-nx-a"):
        assert httpx.get(f"http://127.0.0.1:{center.port}/").status_code == 404
        browser.get(center.page_url)
        wait(browser, lambda d: rows(d) and rows(d)[0]["node"] == "orin-nx-a", "the node")
        assert browser.execute_script("return typeof Plotly") == "object"
        links = browser.execute_script(
            "return [...document.querySelectorAll('nav a')].map(a => a.href)")
        assert links == [center.url + "/metrics", center.url + "/leaderboard"]
        assert "edgellm_node_state" in httpx.get(links[0]).text
        no_console_errors(browser)
        browser.get(links[1])
        wait(browser, lambda d: d.find_elements("css selector", "table.leaderboard tbody tr"),
             "the leaderboard under the prefix")
        no_console_errors(browser)


def test_a_killed_agent_turns_unreachable_on_the_page_within_a_second(browser, fleet):
    center, agents = fleet
    browser.get(center.page_url)
    wait(browser, lambda d: len([r for r in rows(d) if r["state"] == "READY"]) == 3,
         "three READY nodes")
    os.killpg(agents["orin-nx-b"].pid, signal.SIGKILL)
    killed = time.time()
    (row,) = wait(browser, lambda d: [r for r in rows(d) if r["node"] == "orin-nx-b" and
                                      r["state"] == "UNREACHABLE"], "UNREACHABLE",
                  timeout=FAST["unreachable_after_s"] + 5)
    seen = time.time()
    (noticed,) = httpx.get(center.url + "/api/events",
                           params={"kind": "unreachable", "node": "orin-nx-b"}).json()
    push_s = row["shown"] / 1000 - noticed["time"]
    print(f"\nmonitor: killed -> UNREACHABLE on the page {seen - killed:.3f} s (timeout "
          f"{FAST['unreachable_after_s']} s); center noticed -> page {push_s * 1000:.0f} ms")
    assert seen - killed < FAST["unreachable_after_s"] + 1.0
    assert -0.05 < push_s < 1.0
    assert "UNREACHABLE" in row["text"]
    no_console_errors(browser)
