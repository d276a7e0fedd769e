//! The region annotation written with the finalizer: a `spec.region` added in the crash window,
//! a deletion in it, and an annotation copied with another object's manifest never move, leave
//! behind or duplicate a datastore.

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, REGION_ANNOTATION};
use healthlake_operator::emulator::{Fault, Operation};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::crash::{block_status_writes, crash_once_aws_answered};
use super::datastore::{CREATION, datastore};
use super::harness::{Rig, fast_settings, wait_for};

/// The crash window of these tests: the region annotation is written and AWS creates the
/// datastore, but every status write fails and the operator stops before one lands; then, while
/// it is down, the user adds `spec.region: eu-west-1` (admitted: no `status.region` yet).
async fn crash_after_create_then_add_region(rig: &mut Rig, api: &Api<FHIRDatastore>) {
    rig.emulator.inject(Fault::Latency {
        operation: Some(Operation::CreateFhirDatastore),
        millis: 1_000,
    });
    api.create(
        &PostParams::default(),
        &datastore("patients", "  deletionPolicy: Delete\n"),
    )
    .await
    .expect("admitted");
    wait_for(api, "patients", "the region annotated", |object| {
        object
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|annotations| annotations.contains_key(REGION_ANNOTATION))
    })
    .await;
    block_status_writes(rig, "fhirdatastores/status");
    crash_once_aws_answered(rig, |rig| rig.emulator.state().datastores.len() == 1).await;
    rig.emulator.clear_faults();
    let lost = api.get("patients").await.expect("object");
    assert!(
        lost.status
            .as_ref()
            .and_then(|status| status.region.as_ref())
            .is_none(),
        "no status write got through"
    );
    api.patch(
        "patients",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "spec": { "region": "eu-west-1" } })),
    )
    .await
    .expect("the CRD admits spec.region while status.region is unset");
}

/// The annotation pins region A (the default) and the datastore is created there, but the crash
/// loses the id before any status write. While the operator is down the user adds `spec.region:
/// eu-west-1`: the CRD's rule allows it, as no `status.region` exists yet. The restarted operator
/// must still look for the datastore where it was created, not create a second one in eu-west-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_region_added_after_a_crash_never_duplicates_the_datastore() {
    let mut rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    crash_after_create_then_add_region(&mut rig, &api).await;

    rig.start_operator(fast_settings(rig.emulator.region()));
    // Let the restarted operator act (and create, if it is going to).
    for _ in 0..20 {
        rig.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.advance(CREATION);
    let settled = wait_for(&api, "patients", "a status with a region", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| status.datastore_id.is_some())
    })
    .await;
    let in_default = rig
        .emulator
        .state_in(rig.emulator.region())
        .datastores
        .len();
    let in_eu = rig.emulator.state_in("eu-west-1").datastores.len();
    assert_eq!(
        (in_default, in_eu),
        (1, 0),
        "one datastore for one object, status {:#?}",
        settled.status
    );
}

/// The same crash window, then the object is deleted after `spec.region` was added: the
/// operator must delete the datastore it created (deletionPolicy Delete), not release the object
/// after looking in the new region, leaving a datastore no object points at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_after_spec_region_added_in_the_crash_window_leaves_no_datastore_behind() {
    let mut rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    crash_after_create_then_add_region(&mut rig, &api).await;
    api.delete("patients", &kube::api::DeleteParams::default())
        .await
        .expect("delete accepted");

    rig.start_operator(fast_settings(rig.emulator.region()));
    rig.advance(CREATION);
    // Whatever the operator does, the object may only go once the datastore is being deleted.
    let gone = async {
        loop {
            rig.advance(Duration::from_secs(5));
            if api.get_opt("patients").await.expect("read").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .expect("the object goes");
    let left: Vec<_> = rig
        .emulator
        .state()
        .datastores
        .values()
        .map(|record| record.status.aws_name().to_owned())
        .collect();
    assert!(
        left.iter()
            .all(|status| status == "DELETING" || status == "DELETED"),
        "the datastore the object created was left {left:?} with no object"
    );
}

/// A manifest copied from `kubectl get -o yaml` of an object elsewhere carries the region
/// annotation (bound to that object's uid) and even the finalizer, and no `spec.region`: the
/// region is still the operator's `--region`, as README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_region_annotation_does_not_choose_the_region() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    for (name, finalizers) in [
        ("copied", vec![]),
        (
            "copied-with-finalizer",
            vec![healthlake_operator::api::DATASTORE_FINALIZER.to_owned()],
        ),
    ] {
        let mut object = datastore(name, "  deletionPolicy: Delete\n");
        object.metadata.annotations = Some(
            [(
                REGION_ANNOTATION.to_owned(),
                "eu-west-1/0f6c3f0e-1111-4a4a-9b9b-123456789abc".to_owned(),
            )]
            .into(),
        );
        object.metadata.finalizers = Some(finalizers);
        api.create(&PostParams::default(), &object)
            .await
            .expect("admitted");
        let created = wait_for(&api, name, "an id", |object| {
            object
                .status
                .as_ref()
                .is_some_and(|status| status.datastore_id.is_some())
        })
        .await;
        assert_eq!(
            created.status.and_then(|status| status.region).as_deref(),
            Some(rig.emulator.region()),
            "{name}: no spec.region, so the operator's --region"
        );
    }
}
