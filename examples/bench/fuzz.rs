//! Item 8 of issue 11: random inputs through the datastore decide functions, counting panics.
//!
//! Each iteration draws a spec and a status (as JSON decoded by serde, as the controller gets
//! them from the API), what AWS reported, a call's outcome and a time, then runs `pin`,
//! `apply`, `cleanup`, `settle` and `unobserved` on them. A panic is caught and counted, so one
//! bad input does not hide the others. Then the same for import and export jobs: a status, a
//! target datastore, what Describe*Job reported and a start's outcome through `decide`,
//! `settle` and `unobserved`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use healthlake_operator::api::{
    FHIRDatastoreSpec, FHIRDatastoreStatus, FHIRExportJobStatus, FHIRImportJobStatus, JobStatus,
};
use healthlake_operator::decide::ObjectMeta;
use healthlake_operator::decide::datastore::{
    self, DatastoreInput, Observed, Outcome, apply, cleanup, settle, unobserved,
};
use healthlake_operator::decide::job::{
    self, JobInput, JobObservation, JobOutcome, JobRecord, Target,
};
use healthlake_operator::healthlake::{
    Datastore, DatastoreSummary, HealthLakeError, Job, ProgressReport, ReportedIdentityProvider,
    StartedJob,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

/// Interesting strings (reserved tag prefixes, AWS's words, empty) and arbitrary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "",
            "patients",
            "us-east-1",
            "aws:cloudformation:stack-name",
            "healthlake.fhir-operator.io/owner-uid",
            "healthlake.fhir-operator.io/owner-name",
            "default/patients",
            "0123456789abcdef0123456789abcdef",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn aws_status() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "CREATING",
            "ACTIVE",
            "DELETING",
            "DELETED",
            "CREATE_FAILED",
            "UPDATING"
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    btree_map(text(), text(), 0..4)
}

fn seconds() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        1_700_000_000i64..1_800_000_000,
        -1_000_000i64..253_000_000_000
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    (
        select(vec!["Ready", "Reconciling", "Stalled", "Other"]),
        select(vec!["True", "False", "Unknown", "maybe"]),
        text(),
        text(),
        1_000_000_000i64..2_000_000_000,
        option::of(-3i64..5),
    )
        .prop_map(|(kind, status, reason, message, time, generation)| {
            let time = jiff::Timestamp::from_second(time).unwrap_or_default();
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": time.to_string(), "observedGeneration": generation})
        })
}

fn spec() -> impl Strategy<Value = Value> {
    (
        option::of(text()),
        option::of(text()),
        option::of(select(vec!["Delete", "Retain", "Keep"])),
        tags(),
        option::of(text()),
    )
        .prop_map(|(id, region, policy, tags, name)| {
            json!({"datastoreTypeVersion": "R4", "datastoreId": id, "region": region,
                   "deletionPolicy": policy, "tags": tags, "datastoreName": name})
        })
}

fn status() -> impl Strategy<Value = Value> {
    (
        (
            option::of(text()),
            option::of(text()),
            option::of(aws_status()),
        ),
        option::of(select(vec!["Delete", "Retain"])),
        option::of(vec(text(), 0..3)),
        option::of(tags()),
        vec(condition(), 0..4),
        option::of(-3i64..5),
    )
        .prop_map(
            |((id, region, aws), policy, managed, tags, conditions, generation)| {
                json!({"datastoreId": id, "datastoreArn": id.as_ref().map(|id| format!("arn:{id}")),
                   "region": region, "datastoreStatus": aws, "deletionPolicy": policy,
                   "managedTags": managed, "tags": tags, "conditions": conditions,
                   "observedGeneration": generation})
            },
        )
}

fn reported(id: String, status: String, tags_seconds: i64) -> Datastore {
    Datastore {
        arn: format!("arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{id}"),
        endpoint: format!("https://healthlake.us-east-1.amazonaws.com/datastore/{id}/r4/"),
        name: Some(id.clone()),
        id,
        status: healthlake_operator::api::DatastoreStatus::from(status.as_str()),
        type_version: "R4".to_owned(),
        created_at: jiff::Timestamp::from_second(tags_seconds).ok(),
        error_cause: None,
        encryption: None,
        preload: None,
        identity_provider: Some(ReportedIdentityProvider::default()),
    }
}

fn observed() -> impl Strategy<Value = Observed> {
    prop_oneof![
        Just(Observed::Absent),
        text().prop_map(|datastore_id| Observed::Gone { datastore_id }),
        (
            text(),
            aws_status(),
            seconds(),
            proptest::option::of(tags())
        )
            .prop_map(|(id, status, created, tags)| {
                Observed::Present {
                    datastore: reported(id, status, created),
                    tags,
                }
            }),
    ]
}

fn error() -> impl Strategy<Value = HealthLakeError> {
    (0u8..8, text(), 0u64..10_000).prop_map(|(which, message, millis)| match which {
        0 => HealthLakeError::NotFound { message },
        1 => HealthLakeError::Conflict { message },
        2 => HealthLakeError::Throttled { message },
        3 => HealthLakeError::Retryable { message },
        4 => HealthLakeError::Terminal {
            reason: "AccessDeniedException".to_owned(),
            message,
        },
        5 => HealthLakeError::AccountQuota { message },
        6 => HealthLakeError::Unrecognized {
            code: "Weird".to_owned(),
            message,
        },
        _ => HealthLakeError::WaitingForQuota {
            retry_after: Duration::from_millis(millis),
        },
    })
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Nothing),
        Just(Outcome::TagsSynced),
        (error(), text()).prop_map(|(error, action)| Outcome::Failed { error, action }),
        (text(), aws_status()).prop_map(|(id, status)| Outcome::Created(summary(id, status))),
        (text(), aws_status())
            .prop_map(|(id, status)| Outcome::DeleteAccepted(summary(id, status))),
    ]
}

fn summary(id: String, status: String) -> DatastoreSummary {
    DatastoreSummary {
        arn: format!("arn:{id}"),
        endpoint: format!("https://{id}/"),
        id,
        status: healthlake_operator::api::DatastoreStatus::from(status.as_str()),
    }
}

type Case = (
    Value,
    Value,
    Observed,
    Outcome,
    HealthLakeError,
    i64,
    Option<i64>,
    String,
);

fn case() -> impl Strategy<Value = Case> {
    (
        spec(),
        status(),
        observed(),
        outcome(),
        error(),
        seconds(),
        option::of(-3i64..5),
        text(),
    )
}

/// One iteration; `Err` when the spec or status did not decode (not a panic).
fn exercise(case: &Case) -> Result<(), serde_json::Error> {
    let (spec, status, observed, outcome, error, now, generation, name) = case;
    let spec: FHIRDatastoreSpec = serde_json::from_value(spec.clone())?;
    let status: FHIRDatastoreStatus = serde_json::from_value(status.clone())?;
    let meta = ObjectMeta {
        name: name.clone(),
        namespace: "default".to_owned(),
        uid: "6f1c3c9e-0d7a-4a5e-9a53-1f2d3c4b5a69".to_owned(),
        generation: *generation,
    };
    let now = jiff::Timestamp::from_second(*now).unwrap_or_default();
    let pinned = datastore::pin(&spec, &status, "us-east-1", &meta, now).unwrap_or(status);
    let region = datastore::region(&spec, &pinned, "us-east-1");
    let input = DatastoreInput {
        meta: &meta,
        spec: &spec,
        status: &pinned,
        region: &region,
        observed,
        stuck_after: Duration::from_secs(7200),
        now,
    };
    for decision in [apply(&input), cleanup(&input)] {
        let _ = settle(&decision, outcome, &input);
    }
    let _ = unobserved(&pinned, error, "describe datastore", &meta, now);
    Ok(())
}

const JOB_STATUSES: [&str; 11] = [
    "SUBMITTED",
    "QUEUED",
    "IN_PROGRESS",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "FAILED",
    "CANCEL_SUBMITTED",
    "CANCEL_IN_PROGRESS",
    "CANCEL_COMPLETED",
    "CANCEL_FAILED",
    "",
];

fn job_status() -> impl Strategy<Value = String> {
    prop_oneof![
        select(JOB_STATUSES.to_vec()).prop_map(str::to_owned),
        any::<String>()
    ]
}

fn job_status_json() -> impl Strategy<Value = Value> {
    (
        (
            option::of(text()),
            option::of(job_status()),
            option::of(text()),
        ),
        (
            option::of(text()),
            option::of(seconds()),
            option::of(seconds()),
        ),
        vec(condition(), 0..4),
        option::of(-3i64..5),
    )
        .prop_map(
            |((id, status, datastore), (region, submit, end), conditions, generation)| {
                let time = |seconds: Option<i64>| {
                    seconds
                        .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
                        .map(|time| time.to_string())
                };
                json!({"jobId": id, "jobStatus": status, "datastoreId": datastore, "region": region,
                   "submitTime": time(submit), "endTime": time(end), "conditions": conditions,
                   "observedGeneration": generation})
            },
        )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        (text(), text()).prop_map(|(datastore_id, region)| Target::Ready {
            datastore_id,
            region
        }),
        text().prop_map(|message| Target::NotReady { message }),
        text().prop_map(|message| Target::Failed { message }),
        text().prop_map(|message| Target::Refused {
            reason: "DatastoreNotFound",
            message
        }),
    ]
}

fn described() -> impl Strategy<Value = Option<JobObservation>> {
    let job = (
        (text(), text(), option::of(text()), job_status()),
        (
            option::of(seconds()),
            option::of(seconds()),
            option::of(text()),
        ),
        option::of((
            option::of(any::<i64>()),
            option::of(any::<i64>()),
            option::of(any::<f64>()),
        )),
    )
        .prop_map(
            |((job_id, datastore_id, job_name, status), (submit, end, message), progress)| {
                JobObservation::Described(Job {
                    job_id,
                    datastore_id,
                    job_name,
                    status: JobStatus::from(status.as_str()),
                    submit_time: submit
                        .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok()),
                    end_time: end.and_then(|seconds| jiff::Timestamp::from_second(seconds).ok()),
                    message,
                    progress: progress.map(|(scanned, imported, throughput)| ProgressReport {
                        resources_scanned: scanned,
                        resources_imported: imported,
                        throughput,
                        ..ProgressReport::default()
                    }),
                })
            },
        );
    prop_oneof![
        Just(None),
        Just(Some(JobObservation::Gone)),
        job.prop_map(Some)
    ]
}

fn job_outcome() -> impl Strategy<Value = JobOutcome> {
    prop_oneof![
        Just(JobOutcome::Nothing),
        (error(), text()).prop_map(|(error, action)| JobOutcome::Failed { error, action }),
        (text(), job_status(), option::of(text()), text(), text()).prop_map(
            |(job_id, status, reported, datastore_id, region)| JobOutcome::Started {
                started: StartedJob {
                    job_id,
                    status: JobStatus::from(status.as_str()),
                    datastore_id: reported,
                },
                datastore_id,
                region,
            }
        ),
    ]
}

type JobCase = (
    Value,
    Target,
    Option<JobObservation>,
    JobOutcome,
    HealthLakeError,
    i64,
    Option<i32>,
);

fn job_case() -> impl Strategy<Value = JobCase> {
    (
        job_status_json(),
        target(),
        described(),
        job_outcome(),
        error(),
        seconds(),
        option::of(any::<i32>()),
    )
}

fn exercise_job<S>(case: &JobCase) -> Result<(), serde_json::Error>
where
    S: JobRecord + serde::de::DeserializeOwned,
{
    let (status, target, observed, outcome, error, now, ttl) = case;
    let status: S = serde_json::from_value(status.clone())?;
    let meta = ObjectMeta {
        name: "nightly".to_owned(),
        namespace: "default".to_owned(),
        uid: "0b8f3c1e-7d2a-4c5b-9e6f-1a2b3c4d5e6f".to_owned(),
        generation: Some(1),
    };
    let now = jiff::Timestamp::from_second(*now).unwrap_or_default();
    let input = JobInput {
        meta: &meta,
        status: &status,
        target,
        observed: observed.as_ref(),
        ttl_seconds_after_finished: *ttl,
        stuck_after: Duration::from_secs(86_400),
        now,
    };
    let _ = job::needs_describe(&status);
    let decision = job::decide(&input);
    let _ = job::settle(&decision, outcome, &input);
    let _ = job::unobserved(&status, error, "describe import job", &meta, now);
    Ok(())
}

/// Counts of one fuzzed family of functions.
#[derive(Default)]
struct Tally {
    inputs: u64,
    undecodable: u64,
    panics: u64,
    first_panic: Option<String>,
}

impl Tally {
    fn run<T: std::fmt::Debug>(
        &mut self,
        cases: usize,
        strategy: impl Strategy<Value = T>,
        exercise: impl Fn(&T) -> Result<(), serde_json::Error>,
    ) {
        let mut runner = TestRunner::deterministic();
        for _ in 0..cases {
            let Ok(tree) = strategy.new_tree(&mut runner) else {
                continue;
            };
            let case = tree.current();
            self.inputs += 1;
            match catch_unwind(AssertUnwindSafe(|| exercise(&case))) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => self.undecodable += 1,
                Err(payload) => {
                    self.panics += 1;
                    if self.first_panic.is_none() {
                        let message = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| {
                                payload
                                    .downcast_ref::<&str>()
                                    .map(|text| (*text).to_owned())
                            })
                            .unwrap_or_default();
                        self.first_panic = Some(format!("{message} on {case:?}"));
                    }
                }
            }
        }
    }

    fn json(&self) -> Value {
        json!({
            "inputs": self.inputs,
            "iterations": self.inputs - self.undecodable,
            "undecodable_inputs": self.undecodable,
            "panics": self.panics,
            "first_panic": self.first_panic,
        })
    }
}

/// Runs `cases` iterations per family; answers the `fuzz` object of results.json.
pub fn run(cases: usize) -> Value {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut datastores = Tally::default();
    datastores.run(cases, case(), exercise);
    let mut imports = Tally::default();
    imports.run(cases, job_case(), exercise_job::<FHIRImportJobStatus>);
    let mut exports = Tally::default();
    exports.run(cases, job_case(), exercise_job::<FHIRExportJobStatus>);
    std::panic::set_hook(hook);
    let families = [&datastores, &imports, &exports];
    json!({
        "iterations": families.iter().map(|tally| tally.inputs - tally.undecodable).sum::<u64>(),
        "panics": families.iter().map(|tally| tally.panics).sum::<u64>(),
        "iterations_note": "inputs whose status (and spec) decoded and ran through every function; the others were refused by serde, as the API's schema would refuse them",
        "datastore": datastores.json(),
        "import_job": imports.json(),
        "export_job": exports.json(),
        "functions": [
            "decide::datastore::{pin, region, apply, cleanup, settle, unobserved}",
            "decide::job::{needs_describe, decide, settle, unobserved} for imports and exports"
        ],
        "seed": "proptest TestRunner::deterministic",
    })
}
