//! Phases that last far longer than HealthLake takes (a datastore CREATING, a job QUEUED) are
//! pointed out once, with a Warning event and the Reconciling message, while polling goes on.

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob};
use healthlake_operator::emulator::{EmulatorConfig, Operation, Profile};
use k8s_openapi::api::events::v1::Event;
use kube::api::PostParams;

use super::datastore::{datastore, has_id, ready};
use super::harness::{Rig, events_about, eventually, unlimited, wait_for};
use super::jobs::import_job;
use super::readiness::{job_condition, job_status, reconciling_reason};

/// The Warning events with `reason` about `name`, with how many times each was seen.
async fn warnings(rig: &Rig, kind: &str, name: &str, reason: &str) -> Vec<(Event, i32)> {
    events_about(rig, kind, name)
        .await
        .into_iter()
        .filter(|event| {
            event.type_.as_deref() == Some("Warning") && event.reason.as_deref() == Some(reason)
        })
        .map(|event| {
            let count = event
                .series
                .as_ref()
                .map(|series| series.count)
                .or(event.deprecated_count)
                .unwrap_or(1);
            (event, count)
        })
        .collect()
}

fn reconciling_message(object: &FHIRDatastore) -> String {
    object
        .status
        .as_ref()
        .and_then(|status| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Reconciling")
        })
        .map(|condition| condition.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_creating_far_longer_than_usual_is_pointed_out_once_while_polling_goes_on() {
    // Creating takes 25 minutes of the emulator's clock; two minutes is "far longer" here.
    let rig = Rig::start_with(
        EmulatorConfig::for_tests().with_profile(Profile::Realistic),
        unlimited(),
        |settings| settings.datastore_stuck_after = Duration::from_secs(120),
    )
    .await;
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore("patients", "  deletionPolicy: Delete\n"),
    )
    .await
    .expect("admitted");
    let creating = wait_for(&api, "patients", "creating", |object| {
        object
            .status
            .as_ref()
            .and_then(|status| status.datastore_status.as_ref())
            .is_some_and(|state| state.to_string() == "CREATING")
    })
    .await;
    assert!(!reconciling_message(&creating).contains("longer than HealthLake usually takes"));
    assert!(
        warnings(&rig, "FHIRDatastore", "patients", "TakingLong")
            .await
            .is_empty()
    );

    rig.advance(Duration::from_secs(121));
    let stuck = wait_for(&api, "patients", "pointed out as taking long", |object| {
        reconciling_message(object).contains("longer than HealthLake usually takes")
    })
    .await;
    assert_eq!(reconciling_reason(&stuck), "Creating", "still Reconciling");
    eventually("a TakingLong warning", || async {
        !warnings(&rig, "FHIRDatastore", "patients", "TakingLong")
            .await
            .is_empty()
    })
    .await;

    // Polling goes on, and the warning is not repeated.
    for _ in 0..3 {
        let described = rig.calls(Operation::DescribeFhirDatastore);
        rig.advance(Duration::from_secs(60));
        eventually("another describe", || async {
            rig.calls(Operation::DescribeFhirDatastore) > described
        })
        .await;
    }
    rig.advance(Duration::from_secs(25 * 60));
    let active = wait_for(&api, "patients", "Ready", ready).await;
    assert!(!reconciling_message(&active).contains("longer than HealthLake usually takes"));
    let warned = warnings(&rig, "FHIRDatastore", "patients", "TakingLong").await;
    assert_eq!(warned.len(), 1, "one TakingLong event: {warned:#?}");
    assert_eq!(warned[0].1, 1, "published once: {warned:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_far_longer_than_usual_is_pointed_out_once() {
    // Jobs run 15 minutes of the emulator's clock; the second one queues behind the first.
    let rig = Rig::start_with(
        EmulatorConfig::for_tests().with_profile(Profile::Realistic),
        unlimited(),
        |settings| settings.job_stuck_after = Duration::from_secs(300),
    )
    .await;
    let datastores = rig.api::<FHIRDatastore>();
    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    wait_for(&datastores, "patients", "created", has_id).await;
    rig.advance(Duration::from_secs(25 * 60));
    wait_for(&datastores, "patients", "Ready", ready).await;

    let imports = rig.api::<FHIRImportJob>();
    for name in ["first", "second"] {
        imports
            .create(&PostParams::default(), &import_job(name, "patients"))
            .await
            .expect("admitted");
        wait_for(&imports, name, "started", |object| {
            job_status(object).is_some()
        })
        .await;
    }
    rig.advance(Duration::from_secs(120));
    wait_for(&imports, "first", "in progress", |object| {
        job_status(object).as_deref() == Some("IN_PROGRESS")
    })
    .await;
    wait_for(&imports, "second", "queued", |object| {
        job_status(object).as_deref() == Some("QUEUED")
    })
    .await;
    assert!(
        warnings(&rig, "FHIRImportJob", "second", "TakingLong")
            .await
            .is_empty()
    );

    rig.advance(Duration::from_secs(240));
    let stuck = wait_for(&imports, "second", "pointed out as taking long", |object| {
        job_condition(object, "Reconciling").is_some_and(|condition| {
            condition
                .message
                .contains("longer than HealthLake usually takes")
        })
    })
    .await;
    assert_eq!(job_status(&stuck).as_deref(), Some("QUEUED"));
    eventually("a TakingLong warning on the queued job", || async {
        !warnings(&rig, "FHIRImportJob", "second", "TakingLong")
            .await
            .is_empty()
    })
    .await;
    for _ in 0..2 {
        let described = rig.calls(Operation::DescribeFhirImportJob);
        rig.advance(Duration::from_secs(30));
        eventually("another describe", || async {
            rig.calls(Operation::DescribeFhirImportJob) > described
        })
        .await;
    }
    let warned = warnings(&rig, "FHIRImportJob", "second", "TakingLong").await;
    assert_eq!(warned.len(), 1, "one TakingLong event: {warned:#?}");
    assert_eq!(warned[0].1, 1, "published once: {warned:#?}");
    assert!(
        warnings(&rig, "FHIRImportJob", "first", "TakingLong")
            .await
            .is_empty()
    );
}
