//! Regions end to end: a datastore stays in the region it was created in when the operator's
//! default region changes, create-only values in effect may be written back into the spec, and a
//! job keeps following the region it runs in after its FHIRDatastore object is gone.

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob};
use healthlake_operator::emulator::Operation;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

use super::datastore::{create_ready, ready};
use super::harness::{Rig, condition, eventually, fast_settings, is_true, wait_for, wait_gone};
use super::jobs::import_job;

/// The emulator's fast profile: deleting a datastore takes five seconds of its clock.
const DELETION: Duration = Duration::from_secs(5);

fn id_of(object: &FHIRDatastore) -> String {
    object
        .status
        .as_ref()
        .and_then(|status| status.datastore_id.clone())
        .expect("datastore id in status")
}

fn region_of(object: &FHIRDatastore) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.region.clone())
}

fn aws_status_in(rig: &Rig, region: &str, id: &str) -> Option<String> {
    rig.emulator
        .state_in(region)
        .datastores
        .get(id)
        .map(|record| record.status.aws_name().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_stays_in_its_region_when_the_default_region_changes() {
    let mut rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let created = create_ready(&rig, "patients", "  tags:\n    team: clinical\n").await;
    let id = id_of(&created);
    assert_eq!(region_of(&created).as_deref(), Some("us-east-1"));

    // The operator is restarted with another default region, as after `--region eu-west-1`.
    rig.stop_operator().await;
    let described = rig
        .emulator
        .calls_of_in("us-east-1", Operation::DescribeFhirDatastore)
        .len();
    rig.start_operator(fast_settings("eu-west-1"));
    eventually(
        "the restarted operator describes the datastore where it is",
        || async {
            rig.emulator
                .calls_of_in("us-east-1", Operation::DescribeFhirDatastore)
                .len()
                >= described + 2
        },
    )
    .await;
    let after = api.get("patients").await.expect("object");
    let status = after.status.clone().expect("status");
    assert_eq!(status.region.as_deref(), Some("us-east-1"), "region pinned");
    assert!(ready(&after), "still Ready: {status:#?}");
    assert_eq!(status.datastore_id.as_deref(), Some(id.as_str()));
    assert_eq!(condition(&status.conditions, "Stalled").0, "False");
    assert!(
        rig.emulator
            .calls()
            .iter()
            .all(|call| call.region.as_deref() != Some("eu-west-1")),
        "nothing was asked of eu-west-1"
    );

    // Deleting the object deletes the datastore where it is, and only then lets the object go.
    api.delete("patients", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the datastore is being deleted in us-east-1", || async {
        aws_status_in(&rig, "us-east-1", &id).as_deref() == Some("DELETING")
    })
    .await;
    let deleting = api
        .get_opt("patients")
        .await
        .expect("read")
        .expect("the object waits for AWS to finish deleting");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        deleting.metadata.finalizers.as_deref(),
        Some(&["healthlake.fhir-operator.io/datastore-cleanup".to_owned()][..])
    );
    rig.advance(DELETION);
    wait_gone(&api, "patients").await;
    assert_eq!(
        aws_status_in(&rig, "us-east-1", &id).as_deref(),
        Some("DELETED")
    );
    assert_eq!(
        rig.emulator
            .calls_of_in("us-east-1", Operation::DeleteFhirDatastore)
            .len(),
        1
    );
    assert!(
        rig.emulator
            .calls()
            .iter()
            .all(|call| call.region.as_deref() != Some("eu-west-1")),
        "nothing was asked of eu-west-1"
    );
}

/// Applies a JSON merge patch to the datastore's spec, as `kubectl patch --type merge` does.
async fn patch_spec(
    api: &kube::Api<FHIRDatastore>,
    name: &str,
    spec: serde_json::Value,
) -> Result<FHIRDatastore, kube::Error> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "spec": spec })),
    )
    .await
}

fn refusal(result: Result<FHIRDatastore, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected the API server to refuse the patch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_the_region_and_name_in_effect_into_the_spec_is_accepted() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let created = create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let id = id_of(&created);
    let before = rig.emulator.state().datastores[&id].clone();

    // Another region is a change, refused by the CRD's rule.
    let refused =
        refusal(patch_spec(&api, "patients", serde_json::json!({"region": "eu-west-1"})).await);
    assert_eq!(refused.code, 422, "{refused:?}");
    assert!(
        refused
            .message
            .contains("spec.region cannot be added or removed after creation"),
        "{}",
        refused.message
    );

    // The region the datastore is in, as a GitOps tool writes the default back.
    let patched = patch_spec(&api, "patients", serde_json::json!({"region": "us-east-1"}))
        .await
        .expect("the region in effect is accepted");
    assert_eq!(patched.spec.region.as_deref(), Some("us-east-1"));
    // Now present, it is immutable like any set region.
    let refused =
        refusal(patch_spec(&api, "patients", serde_json::json!({"region": "eu-west-1"})).await);
    assert_eq!(refused.code, 422, "{refused:?}");
    assert!(
        refused.message.contains("region is immutable"),
        "{}",
        refused.message
    );

    // The name in effect is metadata.name.
    let patched = patch_spec(
        &api,
        "patients",
        serde_json::json!({"datastoreName": "patients"}),
    )
    .await
    .expect("the name in effect is accepted");
    assert_eq!(patched.spec.datastore_name.as_deref(), Some("patients"));
    let refused = refusal(
        patch_spec(
            &api,
            "patients",
            serde_json::json!({"datastoreName": "someone-else"}),
        )
        .await,
    );
    assert_eq!(refused.code, 422, "{refused:?}");

    // The operator reconciles the new generation and nothing changes in AWS.
    let settled = wait_for(&api, "patients", "the new generation observed", |object| {
        ready(object)
            && object
                .status
                .as_ref()
                .is_some_and(|status| status.observed_generation == object.metadata.generation)
    })
    .await;
    let status = settled.status.expect("status");
    assert_eq!(status.datastore_id.as_deref(), Some(id.as_str()));
    assert_eq!(status.region.as_deref(), Some("us-east-1"));
    let state = rig.emulator.state();
    assert_eq!(state.datastores.len(), 1, "no second datastore");
    assert_eq!(state.datastores[&id], before, "the datastore is untouched");
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 0);
    assert_eq!(rig.calls(Operation::TagResource), 0);
    assert_eq!(rig.calls(Operation::UntagResource), 0);
}

fn job_status(object: &FHIRImportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_status.as_ref())
        .map(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_another_region_completes_after_its_datastore_object_is_deleted() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    let created = create_ready(
        &rig,
        "europe",
        "  region: eu-west-1\n  deletionPolicy: Retain\n",
    )
    .await;
    let datastore_id = id_of(&created);
    assert_eq!(region_of(&created).as_deref(), Some("eu-west-1"));
    assert!(
        rig.emulator
            .state_in("eu-west-1")
            .datastores
            .contains_key(&datastore_id)
    );

    imports
        .create(&PostParams::default(), &import_job("nightly", "europe"))
        .await
        .expect("admitted");
    let started = wait_for(&imports, "nightly", "submitted", |object| {
        job_status(object).is_some()
    })
    .await;
    let status = started.status.expect("status");
    assert_eq!(status.region.as_deref(), Some("eu-west-1"));
    let job_id = status.job_id.clone().expect("job id");

    // The FHIRDatastore object goes; the datastore is retained in AWS and the job runs on.
    datastores
        .delete("europe", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&datastores, "europe").await;
    assert_eq!(
        aws_status_in(&rig, "eu-west-1", &datastore_id).as_deref(),
        Some("ACTIVE")
    );

    rig.advance(Duration::from_secs(2));
    wait_for(&imports, "nightly", "in progress", |object| {
        job_status(object).as_deref() == Some("IN_PROGRESS")
    })
    .await;
    rig.advance(Duration::from_secs(10));
    let done = wait_for(&imports, "nightly", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    assert_eq!(job_status(&done).as_deref(), Some("COMPLETED"));
    let status = done.status.expect("status");
    assert_eq!(status.job_id.as_deref(), Some(job_id.as_str()));
    assert_eq!(status.region.as_deref(), Some("eu-west-1"));
    assert_eq!(condition(&status.conditions, "Stalled").0, "False");
    let record = rig.emulator.state_in("eu-west-1").jobs[&job_id].progress;
    let progress = status.progress.expect("progress");
    assert_eq!(
        progress.total_number_of_resources_imported,
        Some(record.resources_imported as i64)
    );
    assert!(record.resources_imported > 0);
    assert!(
        !rig.emulator
            .calls_of_in("eu-west-1", Operation::DescribeFhirImportJob)
            .is_empty()
    );
    assert!(
        rig.emulator
            .calls_of_in("us-east-1", Operation::DescribeFhirImportJob)
            .is_empty(),
        "the job was never looked for in the default region"
    );
}
