"""deploy/base (kustomize) and its Argo CD overlay, built by `kubectl kustomize`."""

import yaml

from conftest import (
    assert_probes,
    assert_restricted_pod,
    committed_crds,
    environment,
    kustomize,
    of_kind,
    only,
    operator_container,
)
from permissions import WATCH_RULES, grants, lease_rules

NAMESPACE = "healthlake-operator"


def test_the_base_builds_the_namespace_crds_rbac_service_account_and_deployment():
    objects = kustomize("deploy/base")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted([
        "Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
    ])
    assert only(objects, "Namespace")["metadata"]["name"] == NAMESPACE
    for obj in objects:
        if obj["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


def test_the_base_holds_the_generated_crds_unchanged():
    objects = kustomize("deploy/base")
    built = {o["metadata"]["name"]: o for o in of_kind(objects, "CustomResourceDefinition")}
    committed = {}
    for text in committed_crds().values():
        crd = yaml.safe_load(text)
        committed[crd["metadata"]["name"]] = crd
    assert built == committed


def test_the_base_grants_exactly_what_the_code_calls():
    objects = kustomize("deploy/base")
    subject = [{"kind": "ServiceAccount", "name": "healthlake-operator", "namespace": NAMESPACE}]
    assert grants(only(objects, "ClusterRole")["rules"]) == grants(WATCH_RULES)
    assert only(objects, "ClusterRoleBinding")["subjects"] == subject
    lease_role = only(objects, "Role")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    assert grants(lease_role["rules"]) == grants(lease_rules())
    assert only(objects, "RoleBinding")["subjects"] == subject
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "healthlake-operator"


def test_the_base_deployment_is_restricted_probed_and_leader_elected():
    objects = kustomize("deploy/base")
    deployment = only(objects, "Deployment")
    assert_restricted_pod(deployment)
    container = operator_container(deployment)
    assert_probes(container, 8080)
    env = environment(container)
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert env["HEALTHLAKE_OPERATOR_LEADER_ELECTION"] == "true"
    assert container["image"] == "healthlake-operator:0.1.0"
    service = only(objects, "Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_argo_cd_overlay_puts_crds_and_namespace_in_an_earlier_wave():
    objects = kustomize("deploy/argocd/operator")
    wave = lambda o: int(o["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))  # noqa: E731
    for obj in objects:
        if obj["kind"] in {"CustomResourceDefinition", "Namespace"}:
            assert wave(obj) == -1, obj["metadata"]["name"]
        else:
            assert wave(obj) == 0, obj["metadata"]["name"]
    base = kustomize("deploy/base")
    strip = lambda o: {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "annotations"}}  # noqa: E731
    assert [strip(o) for o in objects] == [strip(o) for o in base]


def test_the_example_overlay_sets_image_role_and_settings_and_keeps_the_rest():
    objects = kustomize("deploy/overlays/example")
    account = only(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/healthlake-operator"}
    deployment = only(objects, "Deployment")
    assert_restricted_pod(deployment)
    container = operator_container(deployment)
    assert container["image"] == "registry.example.com/healthlake-operator:0.1.0"
    env = environment(container)
    assert env["HEALTHLAKE_OPERATOR_REGION"] == "eu-west-1"
    assert env["HEALTHLAKE_OPERATOR_LOG_FORMAT"] == "json"
    assert env["POD_NAME"] == "metadata.name"
    assert len(objects) == len(kustomize("deploy/base"))
