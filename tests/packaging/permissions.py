"""What the operator calls, in one place: the Kubernetes rules and the AWS actions that the chart,
the kustomize base and the IAM policy must grant, no more and no less.

Each entry says which code makes the call, so that a change in the code that needs another
permission shows up here first.
"""

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
GROUP = "healthlake.fhir-operator.io"

# Rules in every watched namespace (a ClusterRole when all namespaces are watched).
WATCH_RULES = [
    # src/controller/mod.rs `watched` and src/controller/job.rs `run`: kube-runtime's watcher lists
    # and watches the three kinds. Datastores: kube-runtime's finalizer helper
    # (src/controller/datastore.rs) adds and removes the cleanup finalizer with a JSON patch of
    # the object. get: when a status write meets a newer object (409), the object is read again
    # to settle the status on the fresh copy (`settle_and_write` in src/controller/datastore.rs,
    # `reconcile_job` in src/controller/job.rs).
    {"apiGroups": [GROUP], "resources": ["fhirdatastores"],
     "verbs": ["get", "list", "watch", "patch"]},
    # src/controller/job.rs: a finished job past ttlSecondsAfterFinished is deleted; get as above.
    {"apiGroups": [GROUP], "resources": ["fhirimportjobs", "fhirexportjobs"],
     "verbs": ["get", "list", "watch", "delete"]},
    # src/controller/mod.rs `write_status`: `Api::patch_status` with a merge patch of .status
    # carrying the resourceVersion it was computed from.
    {"apiGroups": [GROUP],
     "resources": ["fhirdatastores/status", "fhirimportjobs/status", "fhirexportjobs/status"],
     "verbs": ["patch"]},
    # Not called by the code: the finalizer is patched on the object itself. Granted for clusters
    # that check finalizer changes against the /finalizers subresource
    # (OwnerReferencesPermissionEnforcement, as on OpenShift); update is the verb they check.
    {"apiGroups": [GROUP], "resources": ["fhirdatastores/finalizers"], "verbs": ["update"]},
    # src/controller/mod.rs `Context::publish` through kube-runtime 5's events::Recorder: it
    # creates an events.k8s.io/v1 Event in the object's namespace and, when the same event
    # repeats, patches it (a merge patch of its series). It never uses core/v1 events.
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]

# Rules in the operator's own namespace, for leader election (src/run.rs through
# kube-lease-manager 0.13, LeaseState in its state.rs): get the Lease, create it when missing,
# then patch it to acquire, renew and release it. It neither lists, watches, updates nor
# deletes Leases. create cannot be limited to a name, get and patch are.
LEASE_NAME = "healthlake-operator"


def lease_rules(lease_name=LEASE_NAME):
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [lease_name], "verbs": ["get", "patch"]},
    ]


def grants(rules):
    """Rules as a set of (apiGroup, resource, verb, resourceName) grants, the way the API server
    reads them: two rule lists are equivalent when they grant the same set."""
    expanded = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in names:
                        expanded.add((group, resource, verb, name))
    return expanded


# The HealthLake operations the adapter sends (src/healthlake/, aws-sdk-healthlake), found by
# their SDK names; the IAM policy must allow exactly these.
_SDK_OPERATION = re.compile(
    r"\b((?:create|delete|describe|list|start|update|restore|cancel)_fhir_[a-z_]+"
    r"|list_tags_for_resource|untag_resource|tag_resource)\b"
)


def healthlake_actions_in_code():
    """IAM action names (healthlake:CreateFHIRDatastore, ...) of the SDK operations that
    src/healthlake/ calls."""
    actions = set()
    for path in sorted((REPOSITORY / "src" / "healthlake").rglob("*.rs")):
        text = path.read_text()
        # Unit tests of the adapter may name operations the operator does not call.
        text = text.split("#[cfg(test)]")[0]
        for operation in _SDK_OPERATION.findall(text):
            words = [("FHIR" if word == "fhir" else word.capitalize()) for word in operation.split("_")]
            actions.add("healthlake:" + "".join(words))
    return actions


# What the README and the issue list: the code must use exactly these.
HEALTHLAKE_ACTIONS = {
    "healthlake:CreateFHIRDatastore",
    "healthlake:DeleteFHIRDatastore",
    "healthlake:DescribeFHIRDatastore",
    "healthlake:ListFHIRDatastores",
    "healthlake:StartFHIRImportJob",
    "healthlake:DescribeFHIRImportJob",
    "healthlake:StartFHIRExportJob",
    "healthlake:DescribeFHIRExportJob",
    "healthlake:ListTagsForResource",
    "healthlake:TagResource",
    "healthlake:UntagResource",
}
