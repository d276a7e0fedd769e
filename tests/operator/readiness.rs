//! Ready means what the user sees in AWS: the operator's own waits (a throttled or
//! quota-limited read) never drop Ready; a job whose datastore failed says so instead of waiting
//! forever, and starts by itself once the datastore recovers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use healthlake_operator::api::{FHIRDatastore, FHIRImportJob};
use healthlake_operator::emulator::{EmulatorConfig, ErrorCategory, ErrorType, Fault, Operation};
use healthlake_operator::healthlake::limiter::{Quota, RateLimitConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use tokio::task::JoinHandle;

use super::datastore::{CREATION, create_ready, datastore, has_id, ready};
use super::harness::{Rig, condition, eventually, is_true, unlimited, wait_for};
use super::jobs::import_job;

/// Every version of one FHIRDatastore's conditions the watch delivered, oldest first.
struct Recorded {
    seen: Arc<Mutex<Vec<Vec<Condition>>>>,
    task: JoinHandle<()>,
}

impl Recorded {
    /// Starts recording `name` as a watch shows it to a user (`kubectl get -w`).
    fn start(api: Api<FHIRDatastore>, name: &str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let object = match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => object,
                    _ => continue,
                };
                if object.metadata.name.as_deref() == Some(name.as_str()) {
                    let conditions = object
                        .status
                        .map(|status| status.conditions)
                        .unwrap_or_default();
                    sink.lock().expect("recording").push(conditions);
                }
            }
        });
        Self { seen, task }
    }

    fn versions(&self) -> Vec<Vec<Condition>> {
        self.seen.lock().expect("recording").clone()
    }

    /// Whether some version showed `Reconciling` with this reason.
    fn showed_reconciling(&self, reason: &str) -> bool {
        self.versions().iter().any(|conditions| {
            condition(conditions, "Reconciling") == ("True".to_owned(), reason.to_owned())
        })
    }

    /// Stops recording and returns what was seen.
    fn stop(self) -> Vec<Vec<Condition>> {
        self.task.abort();
        self.versions()
    }
}

pub(super) fn reconciling_reason(object: &FHIRDatastore) -> String {
    object
        .status
        .as_ref()
        .map(|status| condition(&status.conditions, "Reconciling"))
        .filter(|(status, _)| status == "True")
        .map(|(_, reason)| reason)
        .unwrap_or_default()
}

fn assert_always_ready(versions: &[Vec<Condition>]) {
    assert!(!versions.is_empty(), "the watch showed the datastore");
    for (index, conditions) in versions.iter().enumerate() {
        assert_eq!(
            condition(conditions, "Ready").0,
            "True",
            "version {index} of the datastore dropped Ready: {conditions:#?}"
        );
    }
}

/// Whether a DescribeFHIRDatastore call succeeded after `throttled` calls were throttled.
fn answered_after_throttling(rig: &Rig, throttled: usize) -> bool {
    let calls = rig.emulator.calls_of(Operation::DescribeFhirDatastore);
    let Some((last_throttled, _)) = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.error_type.as_deref() == Some("ThrottlingException"))
        .nth(throttled - 1)
    else {
        return false;
    };
    calls[last_throttled..].iter().any(|call| call.succeeded())
}

pub(super) fn job_status(object: &FHIRImportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_status.as_ref())
        .map(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_resync_read_keeps_ready_and_shows_the_wait_in_reconciling() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let recorded = Recorded::start(api.clone(), "patients");
    wait_for(&api, "patients", "in sync", |object| {
        ready(object) && reconciling_reason(object).is_empty()
    })
    .await;

    // A resync read is throttled three times, then answered.
    rig.emulator.inject(Fault::FailNext {
        operation: Operation::DescribeFhirDatastore,
        error: ErrorType::ThrottlingException,
        count: 3,
        message: None,
    });
    eventually("three throttled reads, then one answered", || async {
        answered_after_throttling(&rig, 3)
    })
    .await;
    // The status written after the third throttled read came before the answered read.
    wait_for(&api, "patients", "in sync again", |object| {
        ready(object) && reconciling_reason(object).is_empty()
    })
    .await;
    eventually("the watch showed the wait", || async {
        recorded.showed_reconciling("Throttled")
    })
    .await;

    // A job created while every read is throttled starts: its datastore is Ready all along.
    rig.emulator.inject(Fault::FailNext {
        operation: Operation::DescribeFhirDatastore,
        error: ErrorType::ThrottlingException,
        count: 1_000_000,
        message: None,
    });
    wait_for(&api, "patients", "waiting out the throttling", |object| {
        reconciling_reason(object) == "Throttled"
    })
    .await;
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    let started = wait_for(&imports, "nightly", "started", |object| {
        job_status(object).is_some()
    })
    .await;
    assert!(started.status.and_then(|status| status.job_id).is_some());
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1);
    rig.emulator.clear_faults();
    wait_for(&api, "patients", "in sync again", |object| {
        ready(object) && reconciling_reason(object).is_empty()
    })
    .await;

    let versions = recorded.stop();
    assert_always_ready(&versions);
    let throttled = rig
        .emulator
        .calls_of(Operation::DescribeFhirDatastore)
        .iter()
        .filter(|call| call.error_type.as_deref() == Some("ThrottlingException"))
        .count();
    assert!(throttled >= 4, "reads were throttled: {throttled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_read_waiting_for_client_side_quota_keeps_ready() {
    // Four reads of burst, then one a second of the emulator's clock, which only moves when the
    // test advances it: resyncs soon wait for budget.
    let limits = RateLimitConfig {
        read: Quota::per_second(1).with_burst(4),
        ..unlimited()
    };
    let rig = Rig::start_with(EmulatorConfig::for_tests(), limits, |_| {}).await;
    let api = rig.api::<FHIRDatastore>();
    api.create(
        &PostParams::default(),
        &datastore("patients", "  deletionPolicy: Delete\n"),
    )
    .await
    .expect("admitted");
    wait_for(&api, "patients", "created", has_id).await;
    // More than creation takes: the read budget is whole again (its burst) when ACTIVE is read.
    rig.advance(CREATION * 2);
    let recorded = Recorded::start(api.clone(), "patients");
    wait_for(&api, "patients", "Ready", ready).await;

    let waiting = wait_for(
        &api,
        "patients",
        "a resync waiting for read quota",
        |object| reconciling_reason(object) == "WaitingForQuota",
    )
    .await;
    assert!(ready(&waiting), "Ready kept while the read waits");
    let reconciling = waiting
        .status
        .as_ref()
        .and_then(|status| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Reconciling")
                .cloned()
        })
        .expect("reconciling");
    assert!(
        reconciling.message.contains("waiting for request quota"),
        "{}",
        reconciling.message
    );

    // Budget comes back with the clock; the resync reads and the wait ends.
    rig.advance(Duration::from_secs(10));
    eventually("the watch showed the wait end", || async {
        let versions = recorded.versions();
        versions
            .iter()
            .position(|conditions| condition(conditions, "Reconciling").1 == "WaitingForQuota")
            .is_some_and(|waited| {
                versions[waited..].iter().any(|conditions| {
                    is_true(conditions, "Ready")
                        && condition(conditions, "Reconciling").0 == "False"
                })
            })
    })
    .await;
    let versions = recorded.stop();
    let first_ready = versions
        .iter()
        .position(|conditions| is_true(conditions, "Ready"))
        .expect("Ready seen");
    assert_always_ready(&versions[first_ready..]);
    assert!(
        versions[first_ready..].iter().any(|conditions| {
            condition(conditions, "Reconciling")
                == ("True".to_owned(), "WaitingForQuota".to_owned())
        }),
        "the watch showed the wait"
    );
    let throttled = rig
        .emulator
        .calls()
        .iter()
        .filter(|call| call.error_type.as_deref() == Some("ThrottlingException"))
        .count();
    assert_eq!(throttled, 0);
}

fn stalled_reason(conditions: Option<&Vec<Condition>>) -> Option<String> {
    conditions
        .map(|conditions| condition(conditions, "Stalled"))
        .filter(|(status, _)| status == "True")
        .map(|(_, reason)| reason)
}

fn job_stalled_reason(object: &FHIRImportJob) -> Option<String> {
    stalled_reason(object.status.as_ref().map(|status| &status.conditions))
}

pub(super) fn job_condition(object: &FHIRImportJob, type_: &str) -> Option<Condition> {
    object.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
            .cloned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_datastore_that_failed_to_create_is_stalled_naming_it() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    rig.emulator.inject(Fault::DatastoreCreationFailure {
        datastore_name: Some("patients".to_owned()),
        error_category: ErrorCategory::NonRetryable,
        error_message: "the KMS key is disabled".to_owned(),
    });
    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    wait_for(&datastores, "patients", "created", has_id).await;
    rig.advance(CREATION);
    wait_for(&datastores, "patients", "CREATE_FAILED", |object| {
        object
            .status
            .as_ref()
            .and_then(|status| status.datastore_status.as_ref())
            .is_some_and(|state| state.to_string() == "CREATE_FAILED")
    })
    .await;

    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    // What `kubectl wait --for=condition=Stalled` waits for.
    let stalled = wait_for(&imports, "nightly", "Stalled", |object| {
        job_condition(object, "Stalled").is_some_and(|condition| condition.status == "True")
    })
    .await;
    let stall = job_condition(&stalled, "Stalled").expect("stalled");
    assert_eq!(stall.reason, "DatastoreFailed");
    assert!(
        stall.message.contains("FHIRDatastore patients"),
        "{}",
        stall.message
    );
    assert_eq!(
        job_condition(&stalled, "Reconciling").map(|condition| condition.status),
        Some("False".to_owned()),
        "not waiting for the datastore"
    );
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_stalled_datastore_starts_by_itself_once_the_datastore_recovers() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::CreateFhirDatastore,
    });
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
        |object| {
            stalled_reason(object.status.as_ref().map(|status| &status.conditions)).as_deref()
                == Some("AccessDenied")
        },
    )
    .await;
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    let stalled = wait_for(
        &imports,
        "nightly",
        "Stalled, its datastore failed",
        |object| job_stalled_reason(object).as_deref() == Some("DatastoreFailed"),
    )
    .await;
    let stall = job_condition(&stalled, "Stalled").expect("stalled");
    assert!(
        stall.message.contains("FHIRDatastore patients"),
        "{}",
        stall.message
    );

    // IAM is fixed; nobody touches the objects. The slow retry creates the datastore and the job
    // starts by itself once it is Ready.
    rig.emulator.clear_faults();
    rig.advance(Duration::from_secs(61));
    wait_for(
        &datastores,
        "patients",
        "created on the slow retry",
        |object| {
            object
                .status
                .as_ref()
                .is_some_and(|status| status.datastore_id.is_some())
        },
    )
    .await;
    rig.advance(CREATION);
    wait_for(&datastores, "patients", "Ready", ready).await;
    let started = wait_for(&imports, "nightly", "started", |object| {
        job_status(object).is_some()
    })
    .await;
    assert_eq!(job_stalled_reason(&started), None, "no longer Stalled");
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1);
    assert_eq!(
        rig.calls(Operation::CreateFhirDatastore),
        2,
        "one denied, one created"
    );
}

/// A job stalled only because its datastore is (here: the datastore's resync read was denied, so
/// it goes from Stalled straight back to Ready once permitted) starts the moment the datastore is
/// Ready again, sooner than the job's own slow retry would come: it is not held to the schedule of
/// stalls that a failed call caused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stalled_by_its_datastore_starts_as_soon_as_the_datastore_is_ready_again() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::DescribeFhirDatastore,
    });
    wait_for(
        &datastores,
        "patients",
        "Stalled by a denied resync",
        |object| {
            stalled_reason(object.status.as_ref().map(|status| &status.conditions)).as_deref()
                == Some("AccessDenied")
        },
    )
    .await;
    // The job comes a little later than the datastore's stall, so its own retry would be due
    // later than the datastore's.
    rig.advance(Duration::from_secs(10));
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    wait_for(
        &imports,
        "nightly",
        "Stalled, its datastore failed",
        |object| job_stalled_reason(object).as_deref() == Some("DatastoreFailed"),
    )
    .await;

    rig.emulator.clear_faults();
    rig.advance(Duration::from_secs(50));
    wait_for(&datastores, "patients", "Ready again", ready).await;
    let started = wait_for(
        &imports,
        "nightly",
        "started without a clock advance",
        |object| job_status(object).is_some(),
    )
    .await;
    assert_eq!(job_stalled_reason(&started), None, "no longer Stalled");
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1);
}
