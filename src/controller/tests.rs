//! Status writes against the in-memory API server, with the CRDs' schemas and rules.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use super::{OwnWrites, Written, write_status};
use crate::api::{DatastoreStatus, FHIRDatastore, FHIRDatastoreStatus};
use crate::apiserver::ApiServer;

const DATASTORE_ID: &str = "0123456789abcdef0123456789abcdef";

fn own_writes() -> OwnWrites<FHIRDatastore> {
    OwnWrites::new(kube::runtime::reflector::store().0)
}

fn versions(object: &FHIRDatastore) -> Vec<String> {
    object.resource_version().into_iter().collect()
}

async fn datastores() -> (ApiServer, Api<FHIRDatastore>) {
    let server = ApiServer::new();
    server
        .load_crds_from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
        .expect("the committed crds load");
    let client = server.client();
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "clinical"}}))
            .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    let api = Api::namespaced(client, "clinical");
    let object: FHIRDatastore = serde_json::from_value(serde_json::json!({
        "apiVersion": "healthlake.fhir-operator.io/v1alpha1",
        "kind": "FHIRDatastore",
        "metadata": {"name": "patients"},
        "spec": {"deletionPolicy": "Delete"},
    }))
    .expect("manifest");
    api.create(&PostParams::default(), &object)
        .await
        .expect("admitted");
    (server, api)
}

#[tokio::test]
async fn a_status_computed_from_an_old_copy_loses_to_the_newer_one() {
    let (_server, api) = datastores().await;
    let copy_a = api.get("patients").await.expect("copy A");

    // Another writer (a newer reconcile, another replica) records the datastore's id.
    let newer = FHIRDatastoreStatus {
        datastore_id: Some(DATASTORE_ID.to_owned()),
        datastore_status: Some(DatastoreStatus::Active),
        region: Some("us-east-1".to_owned()),
        ..FHIRDatastoreStatus::default()
    };
    api.patch_status(
        "patients",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": newer })),
    )
    .await
    .expect("newer status written");

    // A status computed from copy A, which knew no id, is refused.
    let from_a = FHIRDatastoreStatus {
        datastore_status: Some(DatastoreStatus::Creating),
        region: Some("us-east-1".to_owned()),
        ..FHIRDatastoreStatus::default()
    };
    let written = write_status(
        &api,
        &own_writes(),
        "patients",
        &versions(&copy_a),
        &copy_a.status.clone().unwrap_or_default(),
        &from_a,
    )
    .await
    .expect("the write reached the server");
    assert_eq!(written, Written::Stale);
    let stored = api
        .get("patients")
        .await
        .expect("stored")
        .status
        .expect("status");
    assert_eq!(stored.datastore_id.as_deref(), Some(DATASTORE_ID));
    assert_eq!(stored.datastore_status, Some(DatastoreStatus::Active));

    // Computed from the fresh copy, the same kind of write goes through.
    let fresh = api.get("patients").await.expect("fresh copy");
    let current = fresh.status.clone().unwrap_or_default();
    let desired = FHIRDatastoreStatus {
        observed_generation: fresh.metadata.generation,
        ..current.clone()
    };
    let written = write_status(
        &api,
        &own_writes(),
        "patients",
        &versions(&fresh),
        &current,
        &desired,
    )
    .await
    .expect("written");
    assert_eq!(written, Written::Done);
    let stored = api.get("patients").await.expect("stored");
    assert_eq!(
        stored.status.and_then(|status| status.observed_generation),
        fresh.metadata.generation
    );
}

#[test]
fn polls_never_wait_longer_than_their_interval_and_resyncs_never_shorter() {
    let base = Duration::from_secs(45);
    for _ in 0..1_000 {
        let poll = super::jitter_below(base, 20);
        assert!(poll <= base && poll >= Duration::from_secs(36), "{poll:?}");
        let resync = super::jitter(base, 10);
        assert!(
            resync >= base && resync <= Duration::from_millis(49_500),
            "{resync:?}"
        );
    }
}

#[test]
fn the_cache_keeps_only_what_the_operator_reads() {
    let mut object = FHIRDatastore::new(
        "patients",
        serde_json::from_value(serde_json::json!({
            "datastoreTypeVersion": "R4"
        }))
        .expect("spec"),
    );
    let region = (
        crate::api::REGION_ANNOTATION.to_owned(),
        "us-east-1/uid-1".to_owned(),
    );
    let retry_at = (
        crate::decide::stall::RETRY_AT_ANNOTATION.to_owned(),
        "2026-12-01T00:00:00Z".to_owned(),
    );
    object.metadata.annotations = Some(
        [
            (
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                "{}".to_owned(),
            ),
            (
                "argocd.argoproj.io/tracking-id".to_owned(),
                "app:x".to_owned(),
            ),
            region.clone(),
            retry_at.clone(),
        ]
        .into(),
    );
    object.metadata.labels = Some([("team".to_owned(), "clinical".to_owned())].into());
    object.metadata.managed_fields = Some(vec![Default::default()]);
    let mut cached = object.clone();
    super::slim_datastore(&mut cached);
    assert_eq!(cached.metadata.managed_fields, None);
    assert_eq!(cached.metadata.labels, None);
    assert_eq!(
        cached.metadata.annotations,
        Some([region, retry_at.clone()].into()),
        "the region annotation matters until status.region is written"
    );

    object.status = Some(FHIRDatastoreStatus {
        region: Some("us-east-1".to_owned()),
        ..FHIRDatastoreStatus::default()
    });
    super::slim_datastore(&mut object);
    assert_eq!(object.metadata.annotations, Some([retry_at].into()));
    object.metadata.annotations = Some(
        [(
            crate::api::REGION_ANNOTATION.to_owned(),
            "us-east-1/uid-1".to_owned(),
        )]
        .into(),
    );
    super::slim_datastore(&mut object);
    assert_eq!(object.metadata.annotations, None);
}

/// After a 409 the status is settled again on a fresh copy, but never on another object that
/// took the name meanwhile: what AWS said about the old object would land in the new one's
/// status (a job recreated under its name would record the old job's id and never start).
#[tokio::test]
async fn a_reread_after_a_conflict_refuses_an_object_created_again_under_the_name() {
    let (_server, api) = datastores().await;
    let first = api.get("patients").await.expect("stored");
    let meta = super::object_meta(&first).expect("meta");
    let reread: FHIRDatastore = super::reread(&api, &meta).await.expect("the same object");
    assert_eq!(reread.metadata.uid, first.metadata.uid);

    api.delete("patients", &Default::default())
        .await
        .expect("deleted");
    assert!(matches!(
        super::reread(&api, &meta).await,
        Err(super::Error::Replaced)
    ));
    let mut again = first.clone();
    again.metadata = kube::api::ObjectMeta {
        name: Some("patients".to_owned()),
        ..Default::default()
    };
    again.status = None;
    api.create(&PostParams::default(), &again)
        .await
        .expect("created again");
    assert!(matches!(
        super::reread(&api, &meta).await,
        Err(super::Error::Replaced)
    ));
}

#[test]
fn change_memory_passes_changes_and_forgets_objects_not_seen_for_an_hour() {
    let start = tokio::time::Instant::now();
    let mut memory = super::ChangeMemory::default();
    assert!(memory.changed("a".to_owned(), 1, start), "a new object");
    assert!(!memory.changed("a".to_owned(), 1, start), "the same key");
    assert!(memory.changed("a".to_owned(), 2, start), "a new key");
    // A deleted object's entry goes with the next sweep, an hour on.
    assert!(memory.changed("deleted".to_owned(), 7, start));
    let later = start + super::CHANGE_MEMORY;
    assert!(
        memory.changed("a".to_owned(), 2, later),
        "an hour later the same key passes again"
    );
    assert!(!memory.entries.contains_key("deleted"));
    assert!(!memory.changed("a".to_owned(), 2, later));
}
