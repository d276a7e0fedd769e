"""The Helm chart, rendered and linted by Helm 4's engine for the default values and three other
value sets, checked on the objects a cluster would receive."""

import re

import helm_python as helm
import pytest
import yaml

from conftest import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    assert_probes,
    assert_restricted_pod,
    committed_crds,
    environment,
    notes,
    of_kind,
    only,
    operator_container,
    render,
)
from permissions import REPOSITORY, WATCH_RULES, grants, lease_rules

IRSA_ROLE = "arn:aws:iam::123456789012:role/healthlake-operator"

VALUE_SETS = {
    "defaults": {},
    "two-namespaces": {"watchNamespaces": ["clinical-data", "research"], "region": "eu-west-1"},
    "highly-available": {
        "replicaCount": 2,
        # Two active replicas would both act: the chart turns leader election on anyway.
        "leaderElection": {"enabled": False, "leaseName": "healthlake-leader"},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": IRSA_ROLE}},
    },
    "tuned": {
        "logging": {"format": "json", "level": "info,healthlake_operator=debug"},
        "extraEnv": [
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "url"}}},
        ],
        "rateLimits": {"datastoreLifecycle": "2/min", "jobStart": "1/min,burst=2", "read": "5/s",
                       "safetyMargin": 0.2},
        "polling": {"soonSeconds": 2.5, "longSeconds": 30, "resyncSeconds": 1200},
        "stalledRetry": {"seconds": 120, "maxSeconds": 7200},
        "stuck": {"datastoreSeconds": 10800, "jobSeconds": 1000000},
        "concurrency": 4,
        "allowDatastoreIdRefs": True,
        "endpointUrl": "https://healthlake.us-east-1.amazonaws.com",
        "image": {"repository": "registry.example.com/healthlake-operator",
                  "digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
        "metrics": {"port": 9090, "service": {"port": 9090}},
        "podDisruptionBudget": {"enabled": False},
    },
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def value_set(request):
    return request.param, VALUE_SETS[request.param]


def test_lint_finds_nothing_worse_than_information(value_set):
    name, values = value_set
    report = helm.lint(CHART, values, strict=True, namespace=RELEASE_NAMESPACE)
    assert report["errors"] == [], f"{name}: {report['errors']}"
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], f"{name}: {serious}"


def test_every_object_is_named_and_namespaced_where_it_must_be(value_set):
    _, values = value_set
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in render(values):
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], obj
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], obj["metadata"]
        else:
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']} has no namespace"


def test_the_pod_meets_the_restricted_pod_security_profile(value_set):
    _, values = value_set
    assert_restricted_pod(only(render(values), "Deployment"))


def test_probes_and_metrics_use_the_health_endpoint(value_set):
    _, values = value_set
    objects = render(values)
    port = values.get("metrics", {}).get("port", 8080)
    container = operator_container(only(objects, "Deployment"))
    assert_probes(container, port)
    env = environment(container)
    assert env["HEALTHLAKE_OPERATOR_METRICS_ADDRESS"] == f"0.0.0.0:{port}"
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": values.get("metrics", {}).get("service", {}).get("port", 8080),
                                         "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_downward_api_names_the_pod_and_its_namespace(value_set):
    _, values = value_set
    container = operator_container(only(render(values), "Deployment"))
    env = environment(container)
    assert env["POD_NAME"] == "metadata.name"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert container["args"] == ["run"]


def test_rbac_grants_exactly_what_the_code_calls(value_set):
    _, values = value_set
    objects = render(values)
    namespaces = values.get("watchNamespaces", [])
    service_account = only(objects, "ServiceAccount")["metadata"]["name"]
    subject = [{"kind": "ServiceAccount", "name": service_account, "namespace": RELEASE_NAMESPACE}]
    watch_roles = [r for r in of_kind(objects, "Role") if not r["metadata"]["name"].endswith("-leader-election")]
    if namespaces:
        assert of_kind(objects, "ClusterRole") == [] and of_kind(objects, "ClusterRoleBinding") == []
        assert sorted(r["metadata"]["namespace"] for r in watch_roles) == sorted(namespaces)
        for role in watch_roles:
            assert grants(role["rules"]) == grants(WATCH_RULES), role["metadata"]
        bindings = [b for b in of_kind(objects, "RoleBinding") if not b["metadata"]["name"].endswith("-leader-election")]
        assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
        for binding in bindings:
            assert binding["subjects"] == subject
            assert binding["roleRef"]["kind"] == "Role"
    else:
        assert watch_roles == []
        assert grants(only(objects, "ClusterRole")["rules"]) == grants(WATCH_RULES)
        binding = only(objects, "ClusterRoleBinding")
        assert binding["subjects"] == subject
        assert binding["roleRef"]["name"] == only(objects, "ClusterRole")["metadata"]["name"]
    lease_name = values.get("leaderElection", {}).get("leaseName", "healthlake-operator")
    lease_role = only(objects, "Role", f"{RELEASE}-leader-election")
    assert lease_role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert grants(lease_role["rules"]) == grants(lease_rules(lease_name))
    lease_binding = only(objects, "RoleBinding", f"{RELEASE}-leader-election")
    assert lease_binding["subjects"] == subject
    for rule in [rule for role in of_kind(objects, "Role") + of_kind(objects, "ClusterRole") for rule in role["rules"]]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule


def test_crds_are_the_generated_ones():
    chart = helm.Chart.load(CHART)
    in_chart = {entry["filename"].rsplit("/", 1)[-1]: entry["data"] for entry in chart.crds}
    committed = committed_crds()
    assert sorted(in_chart) == sorted(committed)
    for name, text in committed.items():
        data = in_chart[name]
        data = data if isinstance(data, str) else bytes(data).decode()
        assert yaml.safe_load(data) == yaml.safe_load(text), f"charts/healthlake-operator/crds/{name} drifted: run `make crds`"
        assert (CHART / "crds" / name).read_text() == text


def test_defaults_reach_the_operator_as_its_documented_defaults():
    env = environment(operator_container(only(render(), "Deployment")))
    assert env == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "HEALTHLAKE_OPERATOR_REGION": "us-east-1",
        "HEALTHLAKE_OPERATOR_CONCURRENCY": "8",
        "HEALTHLAKE_OPERATOR_POLL_SOON_SECONDS": "5",
        "HEALTHLAKE_OPERATOR_POLL_LONG_SECONDS": "45",
        "HEALTHLAKE_OPERATOR_RESYNC_SECONDS": "600",
        "HEALTHLAKE_OPERATOR_BACKOFF_BASE_SECONDS": "5",
        "HEALTHLAKE_OPERATOR_BACKOFF_MAX_SECONDS": "300",
        "HEALTHLAKE_OPERATOR_STALLED_RETRY_SECONDS": "300",
        "HEALTHLAKE_OPERATOR_STALLED_RETRY_MAX_SECONDS": "3600",
        "HEALTHLAKE_OPERATOR_DATASTORE_STUCK_SECONDS": "7200",
        "HEALTHLAKE_OPERATOR_JOB_STUCK_SECONDS": "86400",
        "HEALTHLAKE_OPERATOR_RATE_LIMIT_DATASTORE_LIFECYCLE": "1/min",
        "HEALTHLAKE_OPERATOR_RATE_LIMIT_JOB_START": "1/min",
        "HEALTHLAKE_OPERATOR_RATE_LIMIT_READ": "10/s",
        "HEALTHLAKE_OPERATOR_RATE_LIMIT_SAFETY_MARGIN": "0.03",
        "HEALTHLAKE_OPERATOR_LOG_FORMAT": "text",
        "RUST_LOG": "info",
        "HEALTHLAKE_OPERATOR_METRICS_ADDRESS": "0.0.0.0:8080",
        "HEALTHLAKE_OPERATOR_LEADER_ELECTION": "true",
        "HEALTHLAKE_OPERATOR_LEASE_NAME": "healthlake-operator",
    }


def test_tuned_values_reach_the_operator():
    values = VALUE_SETS["tuned"]
    deployment = only(render(values), "Deployment")
    container = operator_container(deployment)
    env = environment(container)
    assert env["HEALTHLAKE_OPERATOR_LOG_FORMAT"] == "json"
    assert env["RUST_LOG"] == "info,healthlake_operator=debug"
    assert env["HEALTHLAKE_OPERATOR_RATE_LIMIT_DATASTORE_LIFECYCLE"] == "2/min"
    assert env["HEALTHLAKE_OPERATOR_RATE_LIMIT_JOB_START"] == "1/min,burst=2"
    assert env["HEALTHLAKE_OPERATOR_RATE_LIMIT_READ"] == "5/s"
    assert env["HEALTHLAKE_OPERATOR_RATE_LIMIT_SAFETY_MARGIN"] == "0.2"
    assert env["HEALTHLAKE_OPERATOR_POLL_SOON_SECONDS"] == "2.5"
    assert env["HEALTHLAKE_OPERATOR_POLL_LONG_SECONDS"] == "30"
    assert env["HEALTHLAKE_OPERATOR_RESYNC_SECONDS"] == "1200"
    assert env["HEALTHLAKE_OPERATOR_STALLED_RETRY_SECONDS"] == "120"
    assert env["HEALTHLAKE_OPERATOR_STALLED_RETRY_MAX_SECONDS"] == "7200"
    assert env["HEALTHLAKE_OPERATOR_DATASTORE_STUCK_SECONDS"] == "10800"
    # Not 1e+06: the operator's flags parse plain numbers.
    assert env["HEALTHLAKE_OPERATOR_JOB_STUCK_SECONDS"] == "1000000"
    assert env["HEALTHLAKE_OPERATOR_CONCURRENCY"] == "4"
    assert env["HEALTHLAKE_OPERATOR_ALLOW_DATASTORE_ID_REFS"] == "true"
    assert env["HEALTHLAKE_OPERATOR_ENDPOINT_URL"] == "https://healthlake.us-east-1.amazonaws.com"
    assert env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    proxy = next(e for e in container["env"] if e["name"] == "HTTPS_PROXY")
    assert proxy["valueFrom"] == {"secretKeyRef": {"name": "proxy", "key": "url"}}
    assert container["image"] == "registry.example.com/healthlake-operator@sha256:" + "a" * 64
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert of_kind(render(values), "PodDisruptionBudget") == []


def test_watched_namespaces_and_region_reach_the_operator():
    env = environment(operator_container(only(render(VALUE_SETS["two-namespaces"]), "Deployment")))
    assert env["HEALTHLAKE_OPERATOR_NAMESPACES"] == "clinical-data,research"
    assert env["HEALTHLAKE_OPERATOR_REGION"] == "eu-west-1"
    assert "HEALTHLAKE_OPERATOR_NAMESPACES" not in environment(operator_container(only(render(), "Deployment")))


def test_more_than_one_replica_forces_leader_election_on():
    values = VALUE_SETS["highly-available"]
    objects = render(values)
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    env = environment(operator_container(deployment))
    assert env["HEALTHLAKE_OPERATOR_LEADER_ELECTION"] == "true"
    assert env["HEALTHLAKE_OPERATOR_LEASE_NAME"] == "healthlake-leader"
    assert only(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_one_replica_may_run_without_leader_election_and_without_lease_rights():
    objects = render({"leaderElection": {"enabled": False}})
    env = environment(operator_container(only(objects, "Deployment")))
    assert env["HEALTHLAKE_OPERATOR_LEADER_ELECTION"] == "false"
    # Without a Lease, a rolling update would run two acting operators at once.
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert only(render(), "Deployment")["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert [r for r in of_kind(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")] == []


def test_irsa_annotation_and_service_monitor():
    objects = render(VALUE_SETS["highly-available"])
    account = only(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    monitor = only(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    service_labels = only(objects, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert of_kind(render(), "ServiceMonitor") == []
    assert "annotations" not in only(render(), "ServiceAccount")["metadata"]


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"logging": {"format": "xml"}}, "/logging/format"),
        ({"rateLimits": {"read": "10 per second"}}, "/rateLimits/read"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"polling": {"longSeconds": 0}}, "/polling/longSeconds"),
        ({"watchNamespaces": ["Clinical_Data"]}, "/watchNamespaces/0"),
        ({"watchNamespace": ["clinical-data"]}, "watchNamespace"),
        ({"region": "Virginia"}, "/region"),
    ],
)
def test_the_schema_refuses_bad_values_and_names_them(values, complaint):
    with pytest.raises(helm.HelmValuesError) as refused:
        render(values)
    assert complaint in str(refused.value)


def test_notes_tell_where_to_look_next():
    text = notes(VALUE_SETS["two-namespaces"])
    assert f"rollout status deployment/{RELEASE}" in text
    assert "watching clinical-data, research" in text
    assert "kubectl apply -n clinical-data" in text
    assert "eks.amazonaws.com/role-arn" in text
    assert "eks.amazonaws.com/role-arn" not in notes(VALUE_SETS["highly-available"])


def test_the_app_version_is_the_crate_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = (REPOSITORY / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert chart["appVersion"] == version


def test_every_operator_variable_the_chart_sets_is_one_the_operator_reads():
    declared = set()
    for path in (REPOSITORY / "src").rglob("*.rs"):
        declared.update(re.findall(r'env\s*=\s*"([A-Z_]+)"', path.read_text()))
    declared.add("RUST_LOG")
    chart_sets = {name for values in VALUE_SETS.values()
                  for name in environment(operator_container(only(render(values), "Deployment")))
                  if name.startswith("HEALTHLAKE_OPERATOR_") or name in {"POD_NAMESPACE", "RUST_LOG"}}
    unknown = chart_sets - declared
    assert unknown == set(), f"the chart sets variables the operator does not read: {sorted(unknown)}"


def test_the_readme_documents_every_value():
    readme = (REPOSITORY / "README.md").read_text()
    section = readme[readme.index("### Helm"):readme.index("### Argo CD")]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    free_form = {"resources", "podSecurityContext", "securityContext"}

    def leaves(prefix, node):
        if isinstance(node, dict) and node and prefix not in free_form:
            for key, child in node.items():
                yield from leaves(f"{prefix}.{key}" if prefix else key, child)
        else:
            yield prefix

    for path in leaves("", values):
        top, _, _ = path.partition(".")
        last = path.rsplit(".", 1)[-1]
        assert f"`{top}`" in section or f"`{top}." in section, f"README's values table lacks {top}"
        assert last in section, f"README's values table lacks {path}"
