//! Recovery without a restart (issue 8, section 1): a stall belongs to one object (its uid), and
//! a Stalled object is tried again on a slow schedule, at once on a new `retry-at` annotation, and
//! after a restart only when the schedule says so.
//!
//! The schedule runs on the emulator's clock, which the operator shares: with `fast_settings` the
//! first retry comes 60 s after the stall, then the gaps double (120 s, 240 s, ...) up to 600 s.
//! The clock is frozen between advances, so "after 59 s" and "after 60 s" are exact. A Stalled
//! object is looked at again at least every resync (300 ms of real time), so a retry that came due
//! is made within a fraction of a second; [`QUIET`] is long enough for one that is not due to
//! have shown up if the operator were to make it.
//!
//! Before the change (commit d51608a) failure memory was keyed by kind/namespace/name and lived
//! only in the process, terminal errors were held until the generation changed, and there was no
//! slow retry: run against that commit, every test here fails (seven wait in vain for a call or a
//! status that never comes; the restart test sees a call the hold should have prevented).

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob};
use healthlake_operator::emulator::{CallRecord, ErrorType, Fault, Operation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::datastore::{CREATION, create_ready, datastore, has_id};
use super::harness::{Rig, condition, eventually, fast_settings, is_true, wait_for, wait_gone};
use super::jobs::{import_job, import_status};

/// The annotation whose new value retries a Stalled object at once, spelled as a user types it.
const RETRY_AT: &str = "healthlake.fhir-operator.io/retry-at";

/// The first slow retry after a stall (`stalled_retry_base` of `fast_settings`), on the
/// emulator's clock.
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// Real time in which the operator looks at a Stalled object more than three times (the resync
/// of `fast_settings` is 300 ms): a call it were going to make would have been made.
const QUIET: Duration = Duration::from_millis(1_000);

/// The emulator's fast profile takes about 13 s of its clock from SUBMITTED to COMPLETED; this is
/// more, and still less than [`FIRST_RETRY`].
const JOB_RUN: Duration = Duration::from_secs(15);

/// The emulator's fast profile: deleting a datastore takes five seconds of its clock.
const DELETION: Duration = Duration::from_secs(5);

/// StartFHIRImportJob calls made for the job named `job_name`, in order.
fn starts_of(rig: &Rig, job_name: &str) -> Vec<CallRecord> {
    rig.emulator
        .calls_of(Operation::StartFhirImportJob)
        .into_iter()
        .filter(|call| call.parameters["JobName"] == job_name)
        .collect()
}

/// True when `conditions` say Stalled=True with `reason`.
fn stalled_by(conditions: Option<&Vec<Condition>>, reason: &str) -> bool {
    conditions.is_some_and(|conditions| {
        condition(conditions, "Stalled") == ("True".to_owned(), reason.to_owned())
    })
}

fn job_stalled_by(object: &FHIRImportJob, reason: &str) -> bool {
    stalled_by(
        object.status.as_ref().map(|status| &status.conditions),
        reason,
    )
}

fn datastore_stalled_by(object: &FHIRDatastore, reason: &str) -> bool {
    stalled_by(
        object.status.as_ref().map(|status| &status.conditions),
        reason,
    )
}

fn job_ready(object: &FHIRImportJob) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|status| is_true(&status.conditions, "Ready"))
}

fn started(object: &FHIRImportJob) -> bool {
    object
        .status
        .as_ref()
        .is_some_and(|status| status.job_id.is_some())
}

fn aws_job_status(rig: &Rig, object: &FHIRImportJob) -> Option<String> {
    let job_id = object.status.as_ref()?.job_id.clone()?;
    rig.emulator
        .state()
        .jobs
        .get(&job_id)
        .map(|job| job.status.aws_name().to_owned())
}

/// Datastore `patients` Ready, StartFHIRImportJob denied, and import job `name` Stalled with
/// reason AccessDenied after one call.
async fn stall_an_import(rig: &Rig, name: &str) -> FHIRImportJob {
    create_ready(rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::StartFhirImportJob,
    });
    stall_another_import(rig, name).await
}

/// Creates import job `name` on `patients` and waits until it is Stalled by AccessDenied.
async fn stall_another_import(rig: &Rig, name: &str) -> FHIRImportJob {
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job(name, "patients"))
        .await
        .expect("admitted");
    let stalled = wait_for(&imports, name, "Stalled by AccessDenied", |object| {
        job_stalled_by(object, "AccessDenied")
    })
    .await;
    assert_eq!(starts_of(rig, name).len(), 1, "one denied start");
    stalled
}

/// Runs a started job to its end and checks that AWS and the object both say COMPLETED.
async fn runs_to_completion(rig: &Rig, name: &str) -> FHIRImportJob {
    let imports = rig.api::<FHIRImportJob>();
    rig.advance(JOB_RUN);
    let done = wait_for(&imports, name, "Ready", job_ready).await;
    assert_eq!(import_status(&done).as_deref(), Some("COMPLETED"));
    assert_eq!(aws_job_status(rig, &done).as_deref(), Some("COMPLETED"));
    done
}

/// Issue 8's first scenario: IAM fixed, the job deleted and applied again. The new object has a
/// new uid, so nothing the operator remembers of the old one applies to it: it gets a status and
/// its job starts at once, with no restart and without waiting for the slow schedule (the clock
/// moves only for the job to run, less than the first slow retry).
///
/// Before: failure memory was keyed by kind/namespace/name and held until the generation changed.
/// The new object is generation 1 like the old one, so the operator neither called AWS nor wrote
/// a status, and the wait for the start timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_created_again_under_the_same_name_starts_at_once() {
    let rig = Rig::start().await;
    let imports = rig.api::<FHIRImportJob>();
    let old = stall_an_import(&rig, "nightly").await;
    rig.emulator.clear_faults();
    imports
        .delete("nightly", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&imports, "nightly").await;
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted again");

    let old_uid = old.metadata.uid.clone().expect("uid");
    let submitted = wait_for(&imports, "nightly", "started again", |object| {
        object.metadata.uid.as_ref() != Some(&old_uid) && started(object)
    })
    .await;
    let new_uid = submitted.metadata.uid.clone().expect("uid");
    let starts = starts_of(&rig, "nightly");
    assert_eq!(starts.len(), 2, "one denied start, one for the new object");
    assert_eq!(
        starts[1].parameters["ClientToken"], new_uid,
        "the new object's own start"
    );
    assert!(starts[1].succeeded());
    runs_to_completion(&rig, "nightly").await;
    assert_eq!(starts_of(&rig, "nightly").len(), 2);
}

/// Once the cause is fixed outside Kubernetes (here IAM), a Stalled job starts by itself on the
/// slow schedule, with no spec change (a job's spec is immutable) and no restart: nothing 59 s
/// after the stall, the start at 60 s.
///
/// Before: a terminal error was held until the generation changed, which for a job never
/// happens; the start never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_job_starts_on_the_slow_schedule_once_the_cause_is_fixed() {
    let rig = Rig::start().await;
    let imports = rig.api::<FHIRImportJob>();
    stall_an_import(&rig, "nightly").await;
    rig.emulator.clear_faults();

    rig.advance(FIRST_RETRY - Duration::from_secs(1));
    tokio::time::sleep(QUIET).await;
    assert_eq!(starts_of(&rig, "nightly").len(), 1, "no retry before 60 s");
    let held = imports.get("nightly").await.expect("job");
    assert!(job_stalled_by(&held, "AccessDenied"));

    rig.advance(Duration::from_secs(1));
    wait_for(&imports, "nightly", "started", started).await;
    assert_eq!(starts_of(&rig, "nightly").len(), 2);
    let done = runs_to_completion(&rig, "nightly").await;
    assert_eq!(
        condition(&done.status.expect("status").conditions, "Stalled").0,
        "False",
        "the stall is over"
    );
}

/// While the cause persists the retries are slow and capped, never hot: measured from the stall,
/// they come at 60 s, 180 s, 420 s, 900 s (gaps of 60, 120, 240, 480 s), then every 600 s (the
/// cap), and not one call in between, however often the operator looks at the object.
///
/// Before: no retry at all; the count stayed at one and the wait for the second call timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_retries_double_up_to_the_cap_and_are_never_hot() {
    let rig = Rig::start().await;
    stall_an_import(&rig, "nightly").await;
    let mut elapsed = Duration::ZERO;
    // (seconds after the stall of a retry, calls made by then)
    for (due, calls) in [(60, 2), (180, 3), (420, 4), (900, 5), (1500, 6), (2100, 7)] {
        let due = Duration::from_secs(due);
        rig.advance(due - Duration::from_secs(1) - elapsed);
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            starts_of(&rig, "nightly").len(),
            calls - 1,
            "no call in the second before the retry due {due:?} after the stall"
        );
        rig.advance(Duration::from_secs(1));
        elapsed = due;
        eventually(
            &format!("the retry due {due:?} after the stall"),
            || async { starts_of(&rig, "nightly").len() >= calls },
        )
        .await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            starts_of(&rig, "nightly").len(),
            calls,
            "one call per retry, {due:?} after the stall"
        );
    }
    let imports = rig.api::<FHIRImportJob>();
    let still = imports.get("nightly").await.expect("job");
    assert!(job_stalled_by(&still, "AccessDenied"));
}

/// A datastore whose creation is denied is Stalled, and created on the slow schedule once the
/// permission is granted, with no restart. While it is held the operator makes no AWS call for
/// it at all (not even the lookup that precedes a create).
///
/// Before: held until the generation changed; the datastore was never created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_whose_creation_was_denied_is_created_once_permitted() {
    let rig = Rig::start().await;
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::CreateFhirDatastore,
    });
    let datastores = rig.api::<FHIRDatastore>();
    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    wait_for(
        &datastores,
        "patients",
        "Stalled by AccessDenied",
        |object| datastore_stalled_by(object, "AccessDenied"),
    )
    .await;
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);
    assert!(rig.emulator.state().datastores.is_empty());
    rig.emulator.clear_faults();

    let calls = rig.emulator.calls().len();
    rig.advance(FIRST_RETRY - Duration::from_secs(1));
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        rig.emulator.calls().len(),
        calls,
        "no AWS call while the retry is not due"
    );

    rig.advance(Duration::from_secs(1));
    wait_for(&datastores, "patients", "created", has_id).await;
    rig.advance(CREATION);
    let ready = wait_for(&datastores, "patients", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 2);
    let id = ready
        .status
        .and_then(|status| status.datastore_id)
        .expect("id");
    let state = rig.emulator.state();
    assert_eq!(state.datastores.len(), 1);
    assert_eq!(state.datastores[&id].status.aws_name(), "ACTIVE");
}

/// A deletion whose DeleteFHIRDatastore is denied holds the finalizer (the datastore is still in
/// AWS, full of data) and shows Stalled; once the permission is granted the slow retry deletes
/// the datastore in AWS and releases the finalizer, with no restart.
///
/// Before: the stall was held until the generation changed; the finalizer stayed, the datastore
/// stayed ACTIVE in AWS, and the wait for DELETING timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_held_by_a_denied_delete_is_released_once_permitted() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let ready = create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let id = ready
        .status
        .and_then(|status| status.datastore_id)
        .expect("id");
    let aws_status = |rig: &Rig| {
        rig.emulator
            .state()
            .datastores
            .get(&id)
            .map(|record| record.status.aws_name().to_owned())
    };
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::DeleteFhirDatastore,
    });
    datastores
        .delete("patients", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let stalled = wait_for(
        &datastores,
        "patients",
        "Stalled by AccessDenied",
        |object| datastore_stalled_by(object, "AccessDenied"),
    )
    .await;
    assert!(stalled.metadata.deletion_timestamp.is_some());
    assert_eq!(
        stalled.metadata.finalizers.as_deref(),
        Some(&["healthlake.fhir-operator.io/datastore-cleanup".to_owned()][..]),
        "the finalizer is held while the datastore is in AWS"
    );
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 1);
    assert_eq!(aws_status(&rig).as_deref(), Some("ACTIVE"));
    rig.emulator.clear_faults();

    rig.advance(FIRST_RETRY - Duration::from_secs(1));
    tokio::time::sleep(QUIET).await;
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 1, "not yet due");

    rig.advance(Duration::from_secs(1));
    eventually("the datastore is being deleted in AWS", || async {
        aws_status(&rig).as_deref() == Some("DELETING")
    })
    .await;
    rig.advance(DELETION);
    wait_gone(&datastores, "patients").await;
    assert_eq!(aws_status(&rig).as_deref(), Some("DELETED"));
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 2);
}

/// A new value of the `retry-at` annotation retries a Stalled object at once, without waiting
/// for the schedule (the clock never moves before the start here); the same value seen again,
/// however often the object is reconciled, retries nothing.
///
/// Before: the annotation meant nothing and annotations do not change the generation; no call
/// was made and the wait for the second call timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_retry_at_annotation_retries_at_once_and_only_once() {
    let rig = Rig::start().await;
    let imports = rig.api::<FHIRImportJob>();
    stall_an_import(&rig, "nightly").await;
    let now = || {
        jiff::Timestamp::try_from(rig.emulator.emulator().now())
            .expect("the emulator's time is a timestamp")
    };
    let annotate = |annotations: serde_json::Value| {
        let imports = imports.clone();
        async move {
            imports
                .patch(
                    "nightly",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
                )
                .await
                .expect("annotated");
        }
    };

    // Still denied: one retry for the new value, then none for the same value.
    let first = now().to_string();
    annotate(json!({ RETRY_AT: first })).await;
    eventually("the retry asked for", || async {
        starts_of(&rig, "nightly").len() == 2
    })
    .await;
    annotate(json!({ RETRY_AT: first, "team": "clinical" })).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        starts_of(&rig, "nightly").len(),
        2,
        "the same value does not retry again"
    );
    let still = imports.get("nightly").await.expect("job");
    assert!(job_stalled_by(&still, "AccessDenied"));

    // Fixed, and asked again: starts at once.
    rig.emulator.clear_faults();
    let second = (now() + jiff::SignedDuration::from_secs(1)).to_string();
    annotate(json!({ RETRY_AT: second })).await;
    wait_for(&imports, "nightly", "started", started).await;
    assert_eq!(starts_of(&rig, "nightly").len(), 3);
    runs_to_completion(&rig, "nightly").await;
}

/// The hold is derived from the object's own status (Stalled at its generation, since its
/// `lastTransitionTime`), so a restarted operator with empty memory makes no call for a Stalled
/// object before the schedule says so, and then exactly one. A second job created after the
/// restart (and denied too) shows that the new controllers are running and calling AWS.
///
/// Before: the hold lived only in the process's memory, so the restarted operator called
/// StartFHIRImportJob for the Stalled job at once (two calls where one was expected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_hold_without_calling_aws() {
    let mut rig = Rig::start().await;
    stall_an_import(&rig, "nightly").await;
    rig.stop_operator().await;
    rig.start_operator(fast_settings(rig.emulator.region()));

    stall_another_import(&rig, "probe").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        starts_of(&rig, "nightly").len(),
        1,
        "no call for the held job after the restart"
    );

    // The stall time in status has whole seconds: a margin of one second covers the fraction.
    rig.advance(FIRST_RETRY + Duration::from_secs(1));
    eventually("the scheduled retry", || async {
        starts_of(&rig, "nightly").len() >= 2
    })
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        starts_of(&rig, "nightly").len(),
        2,
        "exactly one attempt when the schedule came"
    );
}

/// A ValidationException on start (AWS reports a missing bucket or a role it cannot assume that
/// way) is fixed outside Kubernetes: the job is Stalled, then retried on the schedule, and starts
/// once AWS accepts it.
///
/// Before: held until the generation changed; the job stayed Stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_error_fixed_outside_kubernetes_is_retried_and_the_job_runs() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::FailNext {
        operation: Operation::StartFhirImportJob,
        error: ErrorType::ValidationException,
        count: 1,
        message: Some("the input bucket does not exist".to_owned()),
    });
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    wait_for(
        &imports,
        "nightly",
        "Stalled by ValidationException",
        |object| job_stalled_by(object, "ValidationException"),
    )
    .await;
    assert_eq!(starts_of(&rig, "nightly").len(), 1);

    rig.advance(FIRST_RETRY);
    wait_for(&imports, "nightly", "started", started).await;
    assert_eq!(starts_of(&rig, "nightly").len(), 2);
    runs_to_completion(&rig, "nightly").await;
}
