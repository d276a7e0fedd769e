"""Shared helpers of the packaging tests: the repository, YAML documents, the Helm chart rendered
and linted by Helm 4's own engine (helm-python-sdk), and `kubectl kustomize`."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from permissions import REPOSITORY  # noqa: E402

CHART = REPOSITORY / "charts" / "healthlake-operator"
RELEASE = "healthlake-operator"
RELEASE_NAMESPACE = "healthlake-system"


def documents(text):
    """The non-empty YAML documents of `text`."""
    return [document for document in yaml.safe_load_all(text) if document]


def render(values=None):
    """The chart's objects for `values`, as `helm install` would send them (CRDs excluded)."""
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    manifests = chart.render(values or {}, name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(documents(text))
    return objects


def notes(values=None):
    import helm_python as helm

    chart = helm.Chart.load(CHART)
    manifests = chart.render(values or {}, name=RELEASE, namespace=RELEASE_NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def kustomize(directory):
    """The objects `kubectl kustomize` builds from `directory`."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(REPOSITORY / directory)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed: {result.stderr}"
    return documents(result.stdout)


def only(objects, kind, name=None):
    """The one object of `kind` (and `name`)."""
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def committed_crds():
    """The generated CRDs of crds/, by file name, as text."""
    return {path.name: path.read_text() for path in sorted((REPOSITORY / "crds").glob("*.yaml"))}


def operator_container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def environment(container):
    """Plain env values by name; valueFrom entries map to their fieldPath."""
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            env[entry["name"]] = entry["valueFrom"].get("fieldRef", {}).get("fieldPath", entry["valueFrom"])
    return env


def assert_restricted_pod(deployment):
    """The restricted Pod Security profile, as the API server's admission checks it."""
    pod = deployment["spec"]["template"]["spec"]
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden
    assert not [v for v in pod.get("volumes", []) if "hostPath" in v]
    pod_context = pod.get("securityContext", {})
    assert pod_context.get("runAsNonRoot") is True
    assert pod_context.get("runAsUser", 1) != 0
    assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context.get("privileged", False) is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context["capabilities"].get("add")
        assert context.get("seccompProfile", pod_context.get("seccompProfile"))["type"] == "RuntimeDefault"
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True


def assert_probes(container, port):
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.fixture(scope="session")
def repository():
    return REPOSITORY
