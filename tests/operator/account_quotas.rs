//! HealthLake's account-wide quotas: at most ten datastores per account and region, and one
//! running import job per account and region. The operator waits for them, slowly and visibly,
//! never in a hot loop and never creating a second datastore for an object.

use std::collections::BTreeMap;
use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRImportJob, OWNER_UID_TAG};
use healthlake_operator::emulator::{CallRecord, EmulatorConfig, Operation};
use kube::api::{Api, DeleteParams, PostParams};

use super::datastore::{CREATION, create_ready, datastore, has_id, ready};
use super::harness::{Rig, condition, eventually, fast_settings, is_true, unlimited, wait_for};
use super::jobs::import_job;

/// The emulator's fast profile deletes a datastore in five seconds of its clock.
const DELETION: Duration = Duration::from_secs(5);

/// Longer than two of the operator's real-time looks at a waiting object (it looks again at
/// least every `resync`, 300 ms in the test settings): long enough for a hot loop to show.
const QUIET: Duration = Duration::from_millis(700);

fn quota_reached(object: &FHIRDatastore) -> bool {
    object.status.as_ref().is_some_and(|status| {
        condition(&status.conditions, "Reconciling")
            == ("True".to_owned(), "AccountQuotaReached".to_owned())
    })
}

/// The CreateFHIRDatastore calls HealthLake refused.
fn refused_creates(rig: &Rig) -> Vec<CallRecord> {
    rig.emulator
        .calls_of(Operation::CreateFhirDatastore)
        .into_iter()
        .filter(|call| !call.succeeded())
        .collect()
}

/// Datastores in the region that count against the quota (all but DELETED ones).
fn live_datastores(rig: &Rig) -> usize {
    rig.emulator.state().live_datastores()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_datastores_against_a_quota_of_ten_wait_on_the_slow_schedule_without_duplicates() {
    let rig = Rig::start_with(
        EmulatorConfig::for_tests().with_max_datastores(Some(10)),
        unlimited(),
        |_| {},
    )
    .await;
    let schedule = fast_settings(rig.emulator.region()).stalled_retry();
    let api = rig.api::<FHIRDatastore>();
    let names: Vec<String> = (0..12).map(|index| format!("ward-{index:02}")).collect();
    for name in &names {
        api.create(
            &PostParams::default(),
            &datastore(name, "  tags:\n    team: clinical\n"),
        )
        .await
        .expect("admitted");
    }

    // With the clock still, ten are created and two wait for the quota.
    let mut created = Vec::new();
    let mut waiting = Vec::new();
    for name in &names {
        let object = wait_for(&api, name, "created or waiting for the quota", |object| {
            has_id(object) || quota_reached(object)
        })
        .await;
        if has_id(&object) {
            created.push(name.clone());
        } else {
            waiting.push(object);
        }
    }
    assert_eq!(created.len(), 10, "ten created: {created:?}");
    assert_eq!(waiting.len(), 2, "two wait");
    assert_eq!(live_datastores(&rig), 10);
    for object in &waiting {
        let status = object.status.as_ref().expect("status");
        let reconciling = status
            .conditions
            .iter()
            .find(|condition| condition.type_ == "Reconciling")
            .expect("reconciling");
        assert!(
            reconciling.message.contains("delete a datastore")
                && reconciling.message.contains("raise the quota"),
            "the message says what to do: {}",
            reconciling.message
        );
        assert_eq!(condition(&status.conditions, "Ready").0, "False");
        assert_eq!(condition(&status.conditions, "Stalled").0, "False");
    }
    assert_eq!(refused_creates(&rig).len(), 2, "one refused create each");

    // No retry before the schedule says, however long real time runs; then exactly one retry
    // per waiting object each time a retry falls due on the emulator's clock.
    tokio::time::sleep(QUIET).await;
    assert_eq!(refused_creates(&rig).len(), 2, "no hot loop");
    let mut elapsed = Duration::ZERO;
    let mut expected = 2;
    for attempt in 1..=3 {
        let gap = schedule.gap(attempt);
        rig.advance(gap - Duration::from_secs(1));
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            refused_creates(&rig).len(),
            expected,
            "retry {attempt} not before {gap:?} have passed"
        );
        rig.advance(Duration::from_secs(1));
        elapsed += gap;
        expected += waiting.len();
        eventually(
            &format!("retry {attempt} of both waiting objects"),
            || async { refused_creates(&rig).len() >= expected },
        )
        .await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(
            refused_creates(&rig).len(),
            expected,
            "one call per waiting object for retry {attempt}"
        );
        assert_eq!(live_datastores(&rig), 10, "never more than ten");
    }
    assert_eq!(schedule.due(elapsed), 3);

    // Deleting one of the ten makes room; the next slow retry takes it.
    let freed = &created[0];
    api.delete(freed, &DeleteParams::default())
        .await
        .expect("delete accepted");
    eventually("the freed datastore is deleting", || async {
        rig.emulator
            .state()
            .datastores
            .values()
            .any(|record| record.status.aws_name() == "DELETING")
    })
    .await;
    rig.advance(DELETION);
    elapsed += DELETION;
    super::harness::wait_gone(&api, freed).await;
    assert_eq!(live_datastores(&rig), 9);
    let next_retry = schedule.due_at(4);
    rig.advance(next_retry - elapsed - Duration::from_secs(1));
    tokio::time::sleep(QUIET).await;
    assert!(
        waiting.iter().all(|object| {
            rig.emulator
                .state()
                .datastores
                .values()
                .all(|record| record.tags.get(OWNER_UID_TAG) != object.metadata.uid.as_ref())
        }),
        "the waiting objects wait for their retry"
    );
    rig.advance(Duration::from_secs(1));
    elapsed = next_retry;
    let waiting_names: Vec<String> = waiting
        .iter()
        .map(|object| object.metadata.name.clone().expect("name"))
        .collect();
    let (taken, still_waiting) = {
        let mut taken = None;
        let result = async {
            loop {
                for name in &waiting_names {
                    if let Ok(object) = api.get(name).await
                        && has_id(&object)
                    {
                        taken = Some(name.clone());
                    }
                }
                if taken.is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), result)
            .await
            .expect("a waiting object is created once room is made");
        let taken = taken.expect("taken");
        let other = waiting_names
            .iter()
            .find(|name| **name != taken)
            .expect("the other")
            .clone();
        (taken, other)
    };
    rig.advance(CREATION);
    wait_for(&api, &taken, "Ready", ready).await;
    let left = wait_for(&api, &still_waiting, "still waiting", quota_reached).await;
    assert!(!has_id(&left));
    assert_eq!(live_datastores(&rig), 10, "never more than ten");

    // The one still waiting created nothing, so deleting it needs no wait for its retry.
    api.delete(&still_waiting, &DeleteParams::default())
        .await
        .expect("delete accepted");
    super::harness::wait_gone(&api, &still_waiting).await;

    // Eleven datastores were created in all, at most one per object.
    let creates = rig.emulator.calls_of(Operation::CreateFhirDatastore);
    assert_eq!(creates.iter().filter(|call| call.succeeded()).count(), 11);
    let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
    for record in rig.emulator.state().datastores.values() {
        let owner = record.tags.get(OWNER_UID_TAG).cloned().unwrap_or_default();
        *per_owner.entry(owner).or_default() += 1;
    }
    assert_eq!(per_owner.len(), 11);
    assert!(
        per_owner.values().all(|count| *count == 1),
        "one datastore per object: {per_owner:?}"
    );
    // Each waiting object asked no more often than the schedule allows: its first call, then
    // one per retry due in the time that passed.
    for object in &waiting {
        let uid = object.metadata.uid.clone().expect("uid");
        let calls = creates
            .iter()
            .filter(|call| call.parameters["ClientToken"].as_str() == Some(uid.as_str()))
            .count();
        let allowed = 1 + schedule.due(elapsed) as usize;
        assert!(
            calls <= allowed,
            "{} sent {calls} creates in {elapsed:?}, the schedule allows {allowed}",
            object.metadata.name.as_deref().unwrap_or_default()
        );
    }
}

fn import_status(object: &FHIRImportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_status.as_ref())
        .map(|status| status.to_string())
}

fn job_id(object: &FHIRImportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_imports_over_three_datastores_run_one_at_a_time_in_submission_order() {
    let rig = Rig::start().await;
    for index in 0..3 {
        create_ready(
            &rig,
            &format!("store-{index}"),
            "  deletionPolicy: Delete\n",
        )
        .await;
    }
    let imports: Api<FHIRImportJob> = rig.api();
    // Submitted one after the other, two per datastore, interleaved across datastores.
    let names: Vec<String> = (0..6).map(|index| format!("load-{index}")).collect();
    let mut ids = Vec::new();
    for (index, name) in names.iter().enumerate() {
        imports
            .create(
                &PostParams::default(),
                &import_job(name, &format!("store-{}", index % 3)),
            )
            .await
            .expect("admitted");
        let submitted = wait_for(&imports, name, "submitted", |object| {
            job_id(object).is_some()
        })
        .await;
        ids.push(job_id(&submitted).expect("job id"));
    }

    // All are accepted; one runs, the others wait in the queue, and say so.
    rig.advance(Duration::from_secs(2));
    for name in &names[1..] {
        let queued = wait_for(&imports, name, "QUEUED", |object| {
            import_status(object).as_deref() == Some("QUEUED")
        })
        .await;
        let status = queued.status.expect("status");
        let reconciling = status
            .conditions
            .iter()
            .find(|condition| condition.type_ == "Reconciling")
            .expect("reconciling");
        assert_eq!(reconciling.status, "True");
        assert_eq!(reconciling.reason, "Queued");
        assert!(
            reconciling
                .message
                .contains("one import job and one export job at a time in an account and region"),
            "{name}: the message names the wait: {}",
            reconciling.message
        );
    }

    let mut running_seen = Vec::new();
    for _ in 0..60 {
        let jobs = rig.emulator.state().jobs;
        let running: Vec<&String> = jobs
            .values()
            .filter(|job| job.status.aws_name() == "IN_PROGRESS")
            .map(|job| &job.id)
            .collect();
        assert!(
            running.len() <= 1,
            "one running import in the region: {running:?}"
        );
        if let Some(id) = running.first()
            && running_seen.last() != Some(*id)
        {
            running_seen.push((*id).clone());
        }
        if jobs
            .values()
            .all(|job| job.status.aws_name() == "COMPLETED")
        {
            break;
        }
        rig.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running_seen, ids, "ran one by one in submission order");
    let jobs = rig.emulator.state().jobs;
    let ends: Vec<_> = ids
        .iter()
        .map(|id| jobs[id].end_time.expect("ended"))
        .collect();
    assert!(
        ends.windows(2).all(|pair| pair[0] < pair[1]),
        "completed in submission order: {ends:?}"
    );
    for name in &names {
        let done = wait_for(&imports, name, "Ready", |object| {
            object
                .status
                .as_ref()
                .is_some_and(|status| is_true(&status.conditions, "Ready"))
        })
        .await;
        assert_eq!(import_status(&done).as_deref(), Some("COMPLETED"));
    }
    assert_eq!(
        rig.calls(Operation::StartFhirImportJob),
        6,
        "each started once"
    );
}
