"""The cluster checks' reading of nodes and pods, their settings in cloud.yaml and on the command line."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from switchman.cli.lab_cloud_check import overrides
from switchman.errors import ConfigError
from switchman.lab.cloud import parse_config
from switchman.lab.cloud.check_pods import client_pod, fill, has_real_kubelet, pod_state, server_pod, takes_pods
from switchman.lab.cloud.checks import CheckResult
from switchman.lab.cloud.config import ChecksConfig


def _node(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, boot_id: str = "6079c681",
          kubelet: str = "v1.37.2", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "n", "labels": labels or {}, "annotations": annotations or {}}, "spec": spec,
            "status": {"nodeInfo": {"bootID": boot_id, "kubeletVersion": kubelet}}}


@pytest.mark.parametrize(("node", "real"), [
    (_node(), True),
    (_node(labels={"type": "kwok"}), False),  # k8s-local's KWOK node, as KWOK's examples label them
    (_node(annotations={"kwok.x-k8s.io/node": "fake"}), False),  # KWOK's own annotation
    (_node(boot_id="", kubelet="kwok-0.8.0"), False),  # what KWOK reports in nodeInfo
    (_node(kubelet="fake"), False),
])
def test_a_real_kubelet(node: dict[str, Any], real: bool) -> None:
    assert has_real_kubelet(node) is real


@pytest.mark.parametrize(("spec", "why"), [
    ({}, None),
    ({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}, None),  # tolerated
    ({"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
     "taint node.kubernetes.io/not-ready:NoExecute"),
    ({"taints": [{"key": "dedicated", "effect": "PreferNoSchedule"}]}, None),
    ({"unschedulable": True}, "cordoned"),
])
def test_which_nodes_take_the_checks_pods(spec: dict[str, Any], why: str | None) -> None:
    assert takes_pods(_node(**spec)) == why


def test_pod_states_in_a_few_words() -> None:
    assert pod_state({}) == "not there"
    waiting = {"status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {
        "reason": "ErrImageNeverPull", "message": "image is not present with pull policy of Never"}}}]}}
    assert pod_state(waiting) == "ErrImageNeverPull: image is not present with pull policy of Never"
    failed = {"status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {
        "reason": "Error", "exitCode": 1}}}]}}
    assert pod_state(failed) == "Error: (exit 1)"
    unscheduled = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "message": "0/2 nodes are available"}]}}
    assert pod_state(unscheduled) == "Unschedulable: 0/2 nodes are available"


def test_pods_are_pinned_and_filled_in() -> None:
    settings = ChecksConfig()
    server = server_pod(settings, "ns", "server-0", "demo-worker-1")
    container = server["spec"]["containers"][0]
    assert container["command"][-1].endswith("exec httpd -f -p 8080 -h /tmp")
    assert container["readinessProbe"] == {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    terms = server["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["demo-worker-1"]
    assert server["spec"]["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    client = client_pod(settings, "ns", "get-0-1", "demo-master", fill(settings.get, url="http://10.244.1.2:8080/"))
    assert client["spec"]["containers"][0]["command"] == ["wget", "-q", "-O", "-", "-T", "5", "http://10.244.1.2:8080/"]
    assert client["spec"]["restartPolicy"] == "Never" and client["spec"]["activeDeadlineSeconds"] == 180
    assert fill(["sh", "-c", "x=${HOME}; echo {name}"], name="web") == ["sh", "-c", "x=${HOME}; echo web"]
    entrypoint = server_pod(ChecksConfig(serve=()), "ns", "server-0", "n")["spec"]["containers"][0]
    assert "command" not in entrypoint


def test_result_lines() -> None:
    assert CheckResult("nodes Ready", True, "2 of 2 Ready", 0.04).line() == "ok   nodes Ready (0.0s): 2 of 2 Ready"
    failed = CheckResult("DNS from a pod", False, "web: NXDOMAIN", 3.21, "CoreDNS")
    assert failed.line() == "FAIL DNS from a pod (3.2s): web: NXDOMAIN\n     look at: CoreDNS"


def _lab(checks: Any) -> dict[str, Any]:
    return {"name": "demo", "openstack": {"cloud": "c", "flavor": {}, "image": {"name": "i", "file": "f"}},
            "kubernetes": {"checks": checks}}


def test_checks_in_cloud_yaml() -> None:
    config = parse_config(_lab({"image": "registry.example/tools:1", "get": ["curl", "-fsS", "{url}"],
                                "serve": [], "timeout": "2m"}))
    assert config.kubernetes is not None
    checks = config.kubernetes.checks
    assert checks.image == "registry.example/tools:1" and checks.get == ("curl", "-fsS", "{url}")
    assert checks.serve == () and checks.timeout == 120 and checks.resolve == ("nslookup", "{name}")
    assert parse_config(_lab({})).kubernetes.checks == ChecksConfig()  # type: ignore[union-attr]


@pytest.mark.parametrize(("checks", "path", "words"), [
    ({"get": ["curl", "http://x/"]}, "kubernetes.checks.get", "has no {url}"),
    ({"resolve": []}, "kubernetes.checks.resolve", ""),
    ({"pullPolicy": "Sometimes"}, "kubernetes.checks.pullPolicy", "not one of"),
    ({"images": "x"}, "kubernetes.checks.images", "unknown field"),
])
def test_checks_errors_name_the_field(checks: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_lab(checks))
    assert caught.value.path == f"cloud.yaml: {path}" and words in caught.value.reason


def _args(**given: str) -> argparse.Namespace:
    names = ("image", "pull_policy", "serve", "port", "get", "resolve", "timeout")
    return argparse.Namespace(**{name: given.get(name, "") for name in names})


def test_options_replace_what_cloud_yaml_says() -> None:
    base = ChecksConfig(image="from-cloud-yaml")
    assert overrides(base, _args()) == base
    changed = overrides(base, _args(image="localhost/k8s-local/web:1", pull_policy="Never", serve="-",
                                    get="/web -get {url}", resolve="/web -resolve '{name}'", port="9090",
                                    timeout="30"))
    assert changed == ChecksConfig("localhost/k8s-local/web:1", "Never", (), 9090, ("/web", "-get", "{url}"),
                                   ("/web", "-resolve", "{name}"), 30.0)


@pytest.mark.parametrize(("given", "flag"), [
    ({"get": "wget -O- http://x/"}, "--get"),
    ({"resolve": "nslookup 'x"}, "--resolve"),
    ({"pull_policy": "Sometimes"}, "--pull-policy"),
    ({"port": "70000"}, "--port"),
    ({"timeout": "soon"}, "--timeout"),
])
def test_option_errors_name_the_option(given: dict[str, str], flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        overrides(ChecksConfig(), _args(**given))
    assert caught.value.path == flag
