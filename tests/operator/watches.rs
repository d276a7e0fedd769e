//! Fewer polls: a datastore change that jobs do not read (its tags) costs running jobs no
//! Describe call; jobs are polled on their own schedule and re-reconciled only when their
//! datastore's readiness, id or region changes.

use std::collections::BTreeMap;
use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob};
use healthlake_operator::emulator::{DatastoreSeed, EmulatorConfig, Operation};
use kube::api::{Patch, PatchParams, PostParams};

use super::datastore::{datastore, ready};
use super::harness::{Rig, condition, event_reasons, eventually, unlimited, wait_for};
use super::jobs::import_job;

const JOBS: usize = 20;

/// Whether the job's status comes from a Describe call (not only from its start).
fn described(object: &FHIRImportJob) -> bool {
    object.status.as_ref().is_some_and(|status| {
        status.conditions.iter().any(|condition| {
            condition.type_ == "Reconciling"
                && condition.status == "True"
                && condition.message.starts_with("job ")
        })
    })
}

/// Adopts a seeded ACTIVE datastore named `name` and waits until it is Ready.
async fn adopt_ready(rig: &Rig, name: &str, yaml_extra: &str) -> String {
    let id = rig
        .emulator
        .emulator()
        .seed_datastore(DatastoreSeed::new(name))
        .expect("seeded");
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore(name, &format!("  datastoreId: {id}\n{yaml_extra}")),
    )
    .await
    .expect("admitted");
    wait_for(&api, name, "Ready", ready).await;
    id
}

/// The DescribeFHIRImportJob calls after the first `skip` that ask about jobs on `datastore_id`.
fn describes_on(rig: &Rig, skip: usize, datastore_id: &str) -> usize {
    rig.emulator
        .calls_of(Operation::DescribeFhirImportJob)
        .iter()
        .skip(skip)
        .filter(|call| call.parameters["DatastoreId"] == datastore_id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datastore_tag_change_costs_its_running_jobs_no_describe_call() {
    // Running jobs are polled once an hour and objects in sync resynced once an hour, so that no
    // scheduled poll falls in the test: every Describe*Job call below is caused by a change.
    let rig = Rig::start_with(EmulatorConfig::for_tests(), unlimited(), |settings| {
        settings.poll_long = Duration::from_secs(3600);
        settings.resync = Duration::from_secs(3600);
    })
    .await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    let id = adopt_ready(&rig, "patients", "  tags:\n    team: clinical\n").await;

    let names: Vec<String> = (0..JOBS).map(|index| format!("load-{index}")).collect();
    for name in &names {
        imports
            .create(&PostParams::default(), &import_job(name, "patients"))
            .await
            .expect("admitted");
    }
    for name in &names {
        let running = wait_for(&imports, name, "described after its start", described).await;
        let status = running
            .status
            .and_then(|status| status.job_status)
            .map(|status| status.to_string());
        assert!(
            matches!(
                status.as_deref(),
                Some("SUBMITTED" | "QUEUED" | "IN_PROGRESS")
            ),
            "{name} is running: {status:?}"
        );
    }
    assert_eq!(rig.calls(Operation::StartFhirImportJob), JOBS);
    let before = rig.calls(Operation::DescribeFhirImportJob);

    // The user changes the datastore's tags; the operator syncs them.
    let patch = serde_json::json!({"spec": {"tags": {"team": "oncology", "cost-center": "42"}}});
    datastores
        .patch("patients", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("tags patched");
    let expected = BTreeMap::from([
        ("team".to_owned(), "oncology".to_owned()),
        ("cost-center".to_owned(), "42".to_owned()),
    ]);
    eventually("the tags reach AWS", || async {
        let tags = &rig.emulator.state().datastores[&id].tags;
        expected
            .iter()
            .all(|(key, value)| tags.get(key) == Some(value))
    })
    .await;
    wait_for(
        &datastores,
        "patients",
        "in sync with the new tags",
        |object| {
            ready(object)
                && object.status.as_ref().is_some_and(|status| {
                    status.observed_generation == object.metadata.generation
                        && condition(&status.conditions, "Reconciling").0 == "False"
                        && status.tags.as_ref().is_some_and(|tags| {
                            expected
                                .iter()
                                .all(|(key, value)| tags.get(key) == Some(value))
                        })
                })
        },
    )
    .await;

    // A change jobs do read, made after the tag change on the same watch: a datastore becoming
    // Ready starts the job waiting for it. Once that job is described, the tag change has long
    // reached the job controllers.
    imports
        .create(&PostParams::default(), &import_job("sentinel", "later"))
        .await
        .expect("admitted");
    wait_for(
        &imports,
        "sentinel",
        "waiting for its datastore",
        |object| {
            object.status.as_ref().is_some_and(|status| {
                condition(&status.conditions, "Reconciling").1 == "WaitingForDatastore"
            })
        },
    )
    .await;
    let later = adopt_ready(&rig, "later", "").await;
    wait_for(&imports, "sentinel", "started and described", described).await;
    assert!(describes_on(&rig, before, &later) >= 1, "the sentinel job");

    assert_eq!(
        describes_on(&rig, before, &id),
        0,
        "the tag change caused no Describe call of the datastore's {JOBS} running jobs"
    );
}

/// Under load a watch delivers the operator's own writes late. The polls that run meanwhile act
/// on what the operator wrote, not on the older copy in its cache: a datastore is looked up by
/// name and created once, a job started once, each with one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watch_never_repeats_a_lookup_a_start_or_an_event() {
    // The lag is the API server's, on the real clock (the emulator's clock cannot move it), so
    // the test waits it out: twice, a little over a second.
    const LAG: Duration = Duration::from_millis(600);
    let mut rig = Rig::start().await;
    // Restarted so that every watch of the operator lags, from its first list on.
    rig.stop_operator().await;
    rig.apiserver.set_watch_lag(LAG);
    rig.start_operator(super::harness::fast_settings(rig.emulator.region()));

    let datastores = rig.api::<FHIRDatastore>();
    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    wait_for(&datastores, "patients", "created", super::datastore::has_id).await;
    // Long enough for dozens of polls (every 20 ms) on the cached copy without the id.
    tokio::time::sleep(2 * LAG).await;
    rig.advance(super::datastore::CREATION);
    wait_for(&datastores, "patients", "Ready", ready).await;

    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("loaded", "patients"))
        .await
        .expect("admitted");
    wait_for(&imports, "loaded", "started", |object| {
        super::jobs::import_status(object).is_some()
    })
    .await;
    tokio::time::sleep(2 * LAG).await;

    assert_eq!(
        rig.calls(Operation::ListFhirDatastores),
        1,
        "lookups by name"
    );
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1, "creates");
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1, "starts");
    assert_eq!(
        event_reasons(&rig, "FHIRDatastore", "patients", false).await,
        ["Created"]
    );
    assert_eq!(
        event_reasons(&rig, "FHIRImportJob", "loaded", false).await,
        ["Started"]
    );
}
