//! Crash safety: the operator stops right after AWS answered and before the answer reached the
//! object's status; fresh controllers with empty caches must converge without a duplicate
//! datastore or job and without deleting twice.

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob, REGION_ANNOTATION};
use healthlake_operator::apiserver::Verb;
use healthlake_operator::emulator::{Fault, Operation};
use kube::api::{DeleteParams, PostParams};

use super::datastore::{CREATION, create_ready, datastore};
use super::harness::{Rig, eventually, fast_settings, is_true, wait_for, wait_gone};
use super::jobs::import_job;

/// Makes every status write of `status_resource` fail, as if the operator died right after AWS
/// answered and before the answer reached the object.
pub fn block_status_writes(rig: &Rig, status_resource: &str) {
    rig.apiserver
        .fail_next(Verb::Patch, status_resource, 500, 10_000);
}

/// Waits until AWS has answered, then stops the operator and lifts the block: the state such a
/// crash leaves behind.
pub async fn crash_once_aws_answered(rig: &mut Rig, done: impl Fn(&Rig) -> bool) {
    eventually("AWS answered", || async { done(rig) }).await;
    rig.stop_operator().await;
    rig.apiserver.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_create_and_status_write_never_duplicates_the_datastore() {
    let mut rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    // The create answers slowly, so that status writes are blocked after the region is pinned
    // and before the id could be written.
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
    wait_for(&api, "patients", "the region pinned", |object| {
        object
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|annotations| {
                annotations
                    .get(REGION_ANNOTATION)
                    .is_some_and(|value| value.starts_with(&format!("{}/", rig.emulator.region())))
            })
    })
    .await;
    block_status_writes(&rig, "fhirdatastores/status");
    crash_once_aws_answered(&mut rig, |rig| rig.emulator.state().datastores.len() == 1).await;
    rig.emulator.clear_faults();
    let lost = api.get("patients").await.expect("object");
    assert!(
        lost.status.and_then(|status| status.datastore_id).is_none(),
        "the crash lost the id"
    );

    // Restarted under another default region (`--region eu-west-1`): the annotation written with
    // the finalizer still sends it to the region the datastore was created in.
    rig.start_operator(fast_settings("eu-west-1"));
    rig.advance(CREATION);
    let ready = wait_for(&api, "patients", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    let datastores = rig.emulator.state().datastores;
    assert_eq!(datastores.len(), 1, "one datastore for one object");
    assert_eq!(
        ready
            .status
            .as_ref()
            .and_then(|status| status.region.as_deref()),
        Some(rig.emulator.region()),
        "the region pinned before the crash"
    );
    let id = datastores.keys().next().cloned();
    assert_eq!(
        ready.status.and_then(|status| status.datastore_id),
        id,
        "the new controllers found the datastore by its owner tag"
    );
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_start_and_status_write_never_duplicates_the_job() {
    let mut rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let imports = rig.api::<FHIRImportJob>();
    block_status_writes(&rig, "fhirimportjobs/status");
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    crash_once_aws_answered(&mut rig, |rig| rig.emulator.state().jobs.len() == 1).await;
    let lost = imports.get("nightly").await.expect("object");
    assert!(
        lost.status.and_then(|status| status.job_id).is_none(),
        "the crash lost the job id"
    );

    rig.start_operator(fast_settings(rig.emulator.region()));
    rig.advance(Duration::from_secs(15));
    let done = wait_for(&imports, "nightly", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    let jobs = rig.emulator.state().jobs;
    assert_eq!(
        jobs.len(),
        1,
        "the ClientToken made every repeated start return the first job"
    );
    assert_eq!(
        done.status.and_then(|status| status.job_id),
        jobs.keys().next().cloned()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_delete_and_status_write_deletes_once() {
    let mut rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let object = create_ready(&rig, "doomed", "  deletionPolicy: Delete\n").await;
    let id = object
        .status
        .and_then(|status| status.datastore_id)
        .expect("id");
    block_status_writes(&rig, "fhirdatastores/status");
    api.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let deleting = |rig: &Rig| {
        rig.emulator
            .state()
            .datastores
            .get(&id)
            .is_some_and(|record| record.status.aws_name() == "DELETING")
    };
    crash_once_aws_answered(&mut rig, deleting).await;

    rig.start_operator(fast_settings(rig.emulator.region()));
    rig.advance(Duration::from_secs(5));
    wait_gone(&api, "doomed").await;
    assert_eq!(
        rig.calls(Operation::DeleteFhirDatastore),
        1,
        "the new controllers saw DELETING and waited"
    );
    assert_eq!(
        rig.emulator.state().datastores[&id].status.aws_name(),
        "DELETED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_restarted_at_any_moment_converge() {
    let mut rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    // Restart the controllers again and again while time moves on, at moments that fall
    // anywhere in the create / start / poll sequence.
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(40 + 25 * round)).await;
        rig.stop_operator().await;
        rig.advance(Duration::from_secs(2));
        rig.start_operator(fast_settings(rig.emulator.region()));
    }
    let converged = async {
        loop {
            rig.advance(Duration::from_secs(2));
            if let Ok(Some(job)) = imports.get_opt("nightly").await
                && job
                    .status
                    .as_ref()
                    .is_some_and(|status| is_true(&status.conditions, "Ready"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), converged)
        .await
        .expect("converged after the restarts");
    let state = rig.emulator.state();
    assert_eq!(state.datastores.len(), 1);
    assert_eq!(state.jobs.len(), 1);
}
