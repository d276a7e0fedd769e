"""The Argo CD health checks, run by a real Lua 5.1 interpreter (Argo CD's gopher-lua implements
Lua 5.1) against a fixture object for every case, the argocd-cm snippet that installs them, the
Application example and the sync waves of the examples."""

from pathlib import Path

import pytest
import yaml
from lupa import lua51

from permissions import REPOSITORY

ARGOCD = REPOSITORY / "deploy" / "argocd"
HEALTH_SCRIPT = (ARGOCD / "health.lua").read_text()
KINDS = ["FHIRDatastore", "FHIRImportJob", "FHIRExportJob"]
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


def health_of(obj):
    """Runs health.lua as Argo CD does: `obj` is a global, the chunk returns the health table."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)

    def to_lua(value):
        if isinstance(value, dict):
            return lua.table_from({key: to_lua(item) for key, item in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(item) for item in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(HEALTH_SCRIPT)
    return {"status": result["status"], "message": result["message"]}


def test_the_interpreter_is_lua_5_1():
    assert lua51.LuaRuntime().eval("_VERSION") == "Lua 5.1"


@pytest.mark.parametrize("case", CASES, ids=[Path(case["inputPath"]).stem for case in CASES])
def test_health(case):
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert health_of(obj) == case["healthStatus"]


def test_every_fixture_is_a_case_and_every_kind_meets_every_status():
    fixtures = {path.relative_to(ARGOCD).as_posix() for path in (ARGOCD / "testdata").glob("*.yaml")}
    assert fixtures == {case["inputPath"] for case in CASES}
    seen = set()
    for case in CASES:
        obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
        seen.add((obj["kind"], case["healthStatus"]["status"]))
    assert seen == {(kind, status) for kind in KINDS for status in ("Healthy", "Progressing", "Degraded")}


def test_the_argocd_cm_snippet_installs_exactly_the_tested_script_for_the_three_kinds():
    snippet = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert set(snippet) == {"data"}
    assert snippet["data"] == {
        f"resource.customizations.health.healthlake.fhir-operator.io_{kind}": HEALTH_SCRIPT for kind in KINDS
    }


def test_the_applications_point_at_paths_of_this_repository():
    applications = [d for d in yaml.safe_load_all((ARGOCD / "application.yaml").read_text()) if d]
    assert [a["kind"] for a in applications] == ["Application", "Application"]
    for application in applications:
        assert (REPOSITORY / application["spec"]["source"]["path"]).is_dir()
    operator, objects = applications
    assert operator["spec"]["source"]["path"] == "deploy/argocd/operator"
    assert objects["spec"]["source"]["path"] == "deploy/examples"
    # Pruning a FHIRDatastore deletes the datastore in AWS.
    assert objects["spec"]["syncPolicy"]["automated"]["prune"] is False


def test_the_examples_sync_datastores_before_their_jobs():
    waves = {}
    for path in sorted((REPOSITORY / "deploy" / "examples").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj["kind"] != "Namespace":
                waves[(obj["kind"], obj["metadata"]["name"])] = int(
                    obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    datastore_waves = {wave for (kind, _), wave in waves.items() if kind == "FHIRDatastore"}
    job_waves = {wave for (kind, _), wave in waves.items() if kind != "FHIRDatastore"}
    assert datastore_waves and job_waves
    assert max(datastore_waves) < min(job_waves)
