//! kubectl 1.32, unmodified, against the served API: server-side apply of crds/ and an object,
//! get with printer columns, wait for a condition, delete.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use healthlake_operator::apiserver::ApiServer;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use super::support::{PATIENCE, eventually};

/// Runs kubectl with the kubeconfig; returns (success, stdout, stderr).
async fn kubectl(kubeconfig: &Path, arguments: &[&str]) -> (bool, String, String) {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(arguments);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the kubectl task finishes")
        .expect("kubectl runs (it is installed on this machine and on CI)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const DATASTORE: &str = r#"
apiVersion: healthlake.fhir-operator.io/v1alpha1
kind: FHIRDatastore
metadata:
  name: patients
  namespace: default
spec:
  datastoreTypeVersion: R4
  deletionPolicy: Delete
  tags:
    team: clinical-data
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_waits_for_and_deletes() {
    let server = ApiServer::new();
    let served = server.serve("127.0.0.1:0").await.unwrap();
    let kubeconfig = served.kubeconfig_path().to_path_buf();
    let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");

    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["apply", "--server-side", "-f", crds]).await;
    assert!(ok, "apply of crds/ failed: {stdout}{stderr}");
    assert_eq!(stdout.matches("serverside-applied").count(), 3, "{stdout}");

    let directory = tempfile::tempdir().unwrap();
    let manifest = directory.path().join("datastore.yaml");
    std::fs::write(&manifest, DATASTORE).unwrap();
    let manifest = manifest.to_str().unwrap().to_string();
    let (ok, stdout, stderr) =
        kubectl(&kubeconfig, &["apply", "--server-side", "-f", &manifest]).await;
    assert!(ok, "apply of the datastore failed: {stdout}{stderr}");
    assert!(
        stdout.contains("fhirdatastore.healthlake.fhir-operator.io/patients serverside-applied"),
        "{stdout}"
    );

    // kubectl create namespace sends the Namespace as protobuf.
    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["create", "namespace", "scratch"]).await;
    assert!(ok, "namespace creation failed: {stdout}{stderr}");

    // The repository's example manifests apply as they are on a cluster that has only the CRDs:
    // their namespace is one of them, in the file that sorts first.
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let (ok, stdout, stderr) =
        kubectl(&kubeconfig, &["apply", "--server-side", "-f", examples]).await;
    assert!(ok, "apply of deploy/examples/ failed: {stdout}{stderr}");
    let example_count = std::fs::read_dir(examples).unwrap().count();
    assert_eq!(
        stdout.matches("serverside-applied").count(),
        example_count,
        "{stdout}"
    );
    assert!(
        stdout.starts_with("namespace/clinical-data serverside-applied"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["get", "healthlake", "-n", "clinical-data", "-o", "name"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), example_count - 1, "{stdout}");

    // Admission answers kubectl with the validator's field errors, and kubectl's strict field
    // validation refuses unknown fields.
    let invalid = directory.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        DATASTORE.replace("deletionPolicy: Delete", "deletionPolicy: Maybe"),
    )
    .unwrap();
    let (ok, _, stderr) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", invalid.to_str().unwrap()],
    )
    .await;
    assert!(!ok, "an invalid deletionPolicy is refused");
    assert!(
        stderr.contains("spec.deletionPolicy: Unsupported value: \"Maybe\""),
        "{stderr}"
    );
    let unknown = directory.path().join("unknown.yaml");
    std::fs::write(
        &unknown,
        DATASTORE.replace(
            "deletionPolicy: Delete",
            "deletionPolicy: Delete\n  deletionPolicyy: Delete",
        ),
    )
    .unwrap();
    let (ok, _, stderr) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", unknown.to_str().unwrap()],
    )
    .await;
    assert!(!ok, "an unknown field is refused");
    assert!(
        stderr.contains("unknown field \"spec.deletionPolicyy\""),
        "{stderr}"
    );

    // Re-applying the same manifest is a no-op, not a conflict.
    let (ok, stdout, stderr) =
        kubectl(&kubeconfig, &["apply", "--server-side", "-f", &manifest]).await;
    assert!(ok, "re-apply failed: {stdout}{stderr}");

    // kubectl wait, started before the condition holds, must see it arrive through its watch.
    let waiting = {
        let kubeconfig = kubeconfig.clone();
        tokio::spawn(async move {
            kubectl(
                &kubeconfig,
                &[
                    "wait",
                    "--for=condition=Ready",
                    "fhirds/patients",
                    "--timeout=60s",
                ],
            )
            .await
        })
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("healthlake.fhir-operator.io", "v1alpha1", "FHIRDatastore"),
        "fhirdatastores",
    );
    let datastores: Api<DynamicObject> =
        Api::namespaced_with(server.client(), "default", &resource);
    let status = json!({"status": {
        "datastoreStatus": "ACTIVE",
        "datastoreId": "0123456789abcdef0123456789abcdef",
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Active", "message": "the datastore is active",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
        }],
    }});
    datastores
        .patch_status("patients", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let (ok, stdout, stderr) = tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "kubectl wait failed: {stdout}{stderr}");
    assert!(stdout.contains("condition met"), "{stdout}");

    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["get", "fhirds"]).await;
    assert!(ok, "get failed: {stdout}{stderr}");
    let header = stdout.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "READY",
        "REASON",
        "STATUS",
        "DATASTORE ID",
        "DELETION",
        "AGE",
    ] {
        assert!(
            header.contains(column),
            "column {column} missing from {stdout}"
        );
    }
    let row = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("patients")
            && row.contains("ACTIVE")
            && row.contains("0123456789abcdef0123456789abcdef"),
        "{stdout}"
    );

    let (ok, stdout, _) = kubectl(&kubeconfig, &["get", "healthlake"]).await;
    assert!(
        ok && stdout.contains("fhirdatastore.healthlake.fhir-operator.io/patients"),
        "the category lists it: {stdout}"
    );

    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["delete", "fhirds", "patients", "--timeout=60s"],
    )
    .await;
    assert!(ok, "delete failed: {stdout}{stderr}");
    assert!(stdout.contains("deleted"), "{stdout}");
    eventually("the datastore to be gone", PATIENCE, || {
        let datastores = datastores.clone();
        async move {
            datastores
                .get_opt("patients")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    let (ok, _, stderr) = kubectl(&kubeconfig, &["get", "fhirds", "patients"]).await;
    assert!(!ok && stderr.contains("NotFound"), "{stderr}");
}

#[tokio::test]
async fn tables_answer_get_and_watch_with_the_printer_columns() {
    // What `kubectl get` and `kubectl get --watch` ask for, checked on the wire.
    let server = ApiServer::new();
    server
        .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
        .unwrap();
    let client = server.client();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("healthlake.fhir-operator.io", "v1alpha1", "FHIRDatastore"),
        "fhirdatastores",
    );
    let datastores: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "healthlake.fhir-operator.io/v1alpha1",
        "kind": "FHIRDatastore",
        "metadata": {"name": "tabled"},
        "spec": {"deletionPolicy": "Retain"},
    }))
    .unwrap();
    datastores
        .create(&Default::default(), &object)
        .await
        .unwrap();
    let status = json!({"status": {"datastoreStatus": "CREATING"}});
    datastores
        .patch_status("tabled", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();

    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let path = "/apis/healthlake.fhir-operator.io/v1alpha1/namespaces/default/fhirdatastores";
    let list = http::Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = client.request(list).await.unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        vec![
            "Name",
            "Ready",
            "Reason",
            "Status",
            "Datastore ID",
            "Deletion",
            "Endpoint",
            "Age"
        ]
    );
    assert_eq!(table["rows"][0]["cells"][0], "tabled");
    assert_eq!(table["rows"][0]["cells"][3], "CREATING");

    let watch = http::Request::get(format!(
        "{path}?watch=true&resourceVersion=0&timeoutSeconds=1"
    ))
    .header("Accept", accept)
    .body(Vec::new())
    .unwrap();
    let stream = client.request_text(watch).await.unwrap();
    let first: serde_json::Value = serde_json::from_str(stream.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Table");
    assert_eq!(first["object"]["rows"][0]["cells"][3], "CREATING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_of_a_custom_resource_sends_a_merge_patch() {
    // `kubectl apply` without --server-side computes a three-way patch; for a custom resource it
    // is a JSON merge patch (strategic merge is refused with 415 on custom resources).
    let server = ApiServer::new();
    server
        .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
        .unwrap();
    let served = server.serve("127.0.0.1:0").await.unwrap();
    let kubeconfig = served.kubeconfig_path().to_path_buf();
    let directory = tempfile::tempdir().unwrap();
    let manifest = directory.path().join("datastore.yaml");
    let manifest_path = manifest.to_str().unwrap().to_string();

    std::fs::write(&manifest, DATASTORE).unwrap();
    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["apply", "-f", &manifest_path]).await;
    assert!(ok, "first apply failed: {stdout}{stderr}");
    assert!(stdout.contains("created"), "{stdout}");

    std::fs::write(
        &manifest,
        DATASTORE.replace("team: clinical-data", "team: research"),
    )
    .unwrap();
    let (ok, stdout, stderr) = kubectl(&kubeconfig, &["apply", "-f", &manifest_path]).await;
    assert!(ok, "second apply failed: {stdout}{stderr}");
    assert!(stdout.contains("configured"), "{stdout}");

    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &[
            "get",
            "fhirds",
            "patients",
            "-o",
            "jsonpath={.spec.tags.team}",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "research");

    // kubectl patch's default type (strategic) is refused on a custom resource, as on a real
    // cluster; --type merge works.
    let (ok, _, stderr) = kubectl(
        &kubeconfig,
        &[
            "patch",
            "fhirds",
            "patients",
            "-p",
            r#"{"spec":{"tags":{"team":"x"}}}"#,
        ],
    )
    .await;
    assert!(!ok, "a strategic merge patch is refused");
    assert!(
        stderr.contains("UnsupportedMediaType") || stderr.contains("unknown format"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &[
            "patch",
            "fhirds",
            "patients",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"tags":{"team":"x"}}}"#,
        ],
    )
    .await;
    assert!(ok, "merge patch failed: {stdout}{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_events_lists_what_kube_runtime_recorder_published() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::Resource;
    use kube::api::PostParams;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let server = ApiServer::new();
    server
        .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
        .unwrap();
    let served = server.serve("127.0.0.1:0").await.unwrap();
    let kubeconfig = served.kubeconfig_path().to_path_buf();
    let client = server.client();
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some("clinical-data".into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("healthlake.fhir-operator.io", "v1alpha1", "FHIRDatastore"),
        "fhirdatastores",
    );
    let datastores: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "clinical-data", &resource);
    let mut references = Vec::new();
    for name in ["patients", "research"] {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "healthlake.fhir-operator.io/v1alpha1",
            "kind": "FHIRDatastore",
            "metadata": {"name": name},
            "spec": {"deletionPolicy": "Retain"},
        }))
        .unwrap();
        let created = datastores
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        references.push(created.object_ref(&resource));
    }

    // The operator publishes through kube-runtime's Recorder: events.k8s.io/v1 Events with
    // eventTime and, for a repeat, a series (sent as a merge patch), never lastTimestamp.
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "healthlake-operator".into(),
            instance: Some("healthlake-operator-0".into()),
        },
    );
    let creating = Event {
        type_: EventType::Normal,
        reason: "Creating".into(),
        note: Some("creating datastore patients in us-east-1".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&creating, &references[0]).await.unwrap();
    recorder.publish(&creating, &references[0]).await.unwrap();
    let throttled = Event {
        type_: EventType::Warning,
        reason: "Throttled".into(),
        note: Some("throttled by HealthLake: Rate exceeded".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&throttled, &references[1]).await.unwrap();

    let rows_of =
        |stdout: &str| -> Vec<String> { stdout.lines().skip(1).map(str::to_string).collect() };
    for arguments in [
        &[
            "get",
            "events",
            "-n",
            "clinical-data",
            "--sort-by=.lastTimestamp",
        ][..],
        &["get", "events", "-n", "clinical-data"],
        &["get", "events", "-A", "--sort-by=.lastTimestamp"],
    ] {
        let (ok, stdout, stderr) = kubectl(&kubeconfig, arguments).await;
        assert!(ok, "{arguments:?} failed: {stdout}{stderr}");
        let header = stdout.lines().next().unwrap_or_default();
        for column in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
            assert!(
                header.contains(column),
                "{arguments:?}: no {column} in {stdout}{stderr}"
            );
        }
        let rows = rows_of(&stdout);
        assert_eq!(rows.len(), 2, "{arguments:?}: {stdout}{stderr}");
        assert!(
            rows.iter().any(|row| row.contains("Normal")
                && row.contains("Creating")
                && row.contains("fhirdatastore/patients")
                && row.contains("creating datastore patients in us-east-1")),
            "{arguments:?}: {stdout}"
        );
        assert!(
            rows.iter().any(|row| row.contains("Warning")
                && row.contains("Throttled")
                && row.contains("fhirdatastore/research")),
            "{arguments:?}: {stdout}"
        );
    }

    // -o wide adds the source and the count a series carries.
    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["get", "events", "-n", "clinical-data", "-o", "wide"],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    let header = stdout.lines().next().unwrap_or_default();
    for column in ["SOURCE", "FIRST SEEN", "COUNT", "NAME"] {
        assert!(header.contains(column), "no {column} in {stdout}");
    }
    let repeated = rows_of(&stdout)
        .into_iter()
        .find(|row| row.contains("Creating"))
        .unwrap_or_default();
    let cells: Vec<&str> = repeated.split_whitespace().collect();
    assert!(
        repeated.contains("healthlake-operator, healthlake-operator-0") && cells.contains(&"2"),
        "{stdout}"
    );

    // The core v1 view carries the fields kubectl sorts and prints on, converted from
    // events.k8s.io/v1 as a real API server converts them.
    let (ok, stdout, stderr) = kubectl(
        &kubeconfig,
        &["get", "events", "-n", "clinical-data", "-o", "json"],
    )
    .await;
    assert!(ok, "{stderr}");
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let repeated = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["reason"] == "Creating")
        .unwrap();
    assert_eq!(
        repeated["message"],
        "creating datastore patients in us-east-1"
    );
    assert_eq!(repeated["involvedObject"]["kind"], "FHIRDatastore");
    assert_eq!(repeated["reportingComponent"], "healthlake-operator");
    assert_eq!(repeated["series"]["count"], 2);
    assert!(repeated["eventTime"].is_string(), "{repeated}");
    assert!(
        repeated.as_object().unwrap().contains_key("lastTimestamp")
            && repeated["lastTimestamp"].is_null(),
        "{repeated}"
    );
}
