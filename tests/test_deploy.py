"""The container recipe and the Kubernetes/KubeEdge manifests in deploy/: parsed, and
the fields docs/live-fleet.md relies on checked (no cluster or Docker engine here)."""

import json

import yaml

from conftest import REPO
from edgellm.cli.parser import build_parser

DEPLOY = REPO / "deploy"


def manifests(name):
    with open(DEPLOY / "kubernetes" / name) as handle:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(handle) if doc}


def container(workload):
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def token_from_secret(env):
    (token,) = [e for e in env if e["name"] == "EDGELLM_JOIN_TOKEN"]
    assert "value" not in token  # never a token in a manifest
    return token["valueFrom"]["secretKeyRef"]


def test_the_center_runs_as_one_deployment_behind_its_service():
    docs = manifests("center.yaml")
    deployment, service = docs["Deployment"], docs["Service"]
    assert deployment["spec"]["replicas"] == 1  # it holds the fleet's state
    center = container(deployment)
    args = build_parser().parse_args(center["args"])  # the command line the CLI takes
    assert args.command == "center" and args.host == "0.0.0.0" and args.port == 8700
    assert args.topology.startswith("/config/") and args.models_dir == "/models"
    port = {p["name"]: p["containerPort"] for p in center["ports"]}["http"]
    assert service["spec"]["ports"][0]["targetPort"] == "http" and port == 8700
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert center["readinessProbe"]["httpGet"]["path"] == "/healthz"
    scrape = deployment["spec"]["template"]["metadata"]["annotations"]  # docs/monitor.md
    assert scrape["prometheus.io/scrape"] == "true" and scrape["prometheus.io/path"] == "/metrics"
    assert int(scrape["prometheus.io/port"]) == port
    assert token_from_secret(center["env"]) == {"name": "edgellm-join-token", "key": "token"}


def test_an_agent_runs_on_every_edge_node_and_finds_the_center():
    daemonset = manifests("agent.yaml")["DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    agent = container(daemonset)
    args = build_parser().parse_args(agent["args"])
    assert args.command == "edge" and args.node_id == "$(NODE_NAME)"
    (node_name,) = [e for e in agent["env"] if e["name"] == "NODE_NAME"]
    assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    service = manifests("center.yaml")["Service"]
    assert args.center == (f"http://{service['metadata']['name']}.default.svc:"
                           f"{service['spec']['ports'][0]['port']}")
    assert token_from_secret(agent["env"]) == {"name": "edgellm-join-token", "key": "token"}
    assert args.engine == "openai" and args.engine_url.startswith("http://127.0.0.1:")


def test_the_image_installs_the_live_fleet_and_runs_the_cli():
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    instructions = {line.split()[0]: line for line in lines}
    assert instructions["FROM"].startswith("FROM python:3.11")
    (install,) = [line for line in lines if line.startswith("RUN pip install")]
    assert ".[live" in install
    assert json.loads(instructions["ENTRYPOINT"].split(None, 1)[1]) == ["edgellm"]
    assert instructions["USER"] == "USER edgellm"  # not root
    assert "EDGELLM_JOIN_TOKEN" not in "\n".join(lines)
