"""deploy/iam: the operator's least-privilege policy and the trust policies, as IAM reads them."""

import json

import yaml

from permissions import HEALTHLAKE_ACTIONS, REPOSITORY, healthlake_actions_in_code

IAM = REPOSITORY / "deploy" / "iam"


def policy(name):
    document = json.loads((IAM / name).read_text())
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement.get("Sid")
    return document


def actions(statement):
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def test_the_code_calls_exactly_the_documented_healthlake_operations():
    assert healthlake_actions_in_code() == HEALTHLAKE_ACTIONS


def test_the_policy_allows_exactly_the_healthlake_actions_the_code_calls():
    granted = [a for s in policy("operator-policy.json")["Statement"] for a in actions(s) if a.startswith("healthlake:")]
    assert len(granted) == len(set(granted)), "an action is granted twice"
    assert set(granted) == healthlake_actions_in_code()


def test_only_the_actions_without_resource_types_get_every_resource():
    for statement in policy("operator-policy.json")["Statement"]:
        healthlake = [a for a in actions(statement) if a.startswith("healthlake:")]
        if statement["Resource"] == "*":
            # AWS's service authorization reference lists no resource type for these two.
            assert set(healthlake) <= {"healthlake:CreateFHIRDatastore", "healthlake:ListFHIRDatastores"}
            assert healthlake, "only HealthLake statements may name every resource"
        elif healthlake:
            assert statement["Resource"].startswith("arn:aws:healthlake:") and ":datastore/fhir/" in statement["Resource"]


def test_pass_role_only_to_healthlake():
    statements = [s for s in policy("operator-policy.json")["Statement"] if "iam:PassRole" in actions(s)]
    assert len(statements) == 1
    statement = statements[0]
    assert actions(statement) == ["iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "healthlake.amazonaws.com"}}
    assert "*" not in json.dumps(statement["Resource"])


def test_kms_only_through_healthlake():
    statements = [s for s in policy("operator-policy.json")["Statement"] if any(a.startswith("kms:") for a in actions(s))]
    assert len(statements) == 1
    statement = statements[0]
    assert sorted(actions(statement)) == ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
    assert statement["Condition"] == {"StringLike": {"kms:ViaService": "healthlake.*.amazonaws.com"}}


def test_nothing_else_is_granted():
    for statement in policy("operator-policy.json")["Statement"]:
        for action in actions(statement):
            assert action.split(":")[0] in {"healthlake", "iam", "kms"}, action
            assert "*" not in action, action


def test_the_irsa_trust_policy_names_the_operator_service_account():
    base = [d for d in yaml.safe_load_all((REPOSITORY / "deploy" / "base" / "namespace.yaml").read_text()) if d]
    namespace = base[0]["metadata"]["name"]
    statement = policy("trust-policy-irsa.json")["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert ":oidc-provider/" in statement["Principal"]["Federated"]
    conditions = statement["Condition"]["StringEquals"]
    assert sorted(key.rsplit(":", 1)[1] for key in conditions) == ["aud", "sub"]
    assert set(conditions.values()) == {f"system:serviceaccount:{namespace}:healthlake-operator", "sts.amazonaws.com"}


def test_the_pod_identity_trust_policy_lets_eks_pod_identity_assume_the_role():
    statement = policy("trust-policy-pod-identity.json")["Statement"][0]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(actions(statement)) == ["sts:AssumeRole", "sts:TagSession"]
