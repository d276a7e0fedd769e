//! Item 8 of issue 11: random inputs through the datastore decide functions, counting panics.
//!
//! Each iteration draws a spec and a status (as JSON decoded by serde, as the controller gets
//! them from the API), what AWS reported, a call's outcome and a time, then runs `pin`,
//! `apply`, `cleanup`, `settle` and `unobserved` on them. A panic is caught and counted, so one
//! bad input does not hide the others. The job decide functions are not fuzzed yet.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use healthlake_operator::api::{FHIRDatastoreSpec, FHIRDatastoreStatus};
use healthlake_operator::decide::ObjectMeta;
use healthlake_operator::decide::datastore::{
    self, DatastoreInput, Observed, Outcome, apply, cleanup, settle, unobserved,
};
use healthlake_operator::healthlake::{
    Datastore, DatastoreSummary, HealthLakeError, ReportedIdentityProvider,
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
        (text(), aws_status(), seconds(), tags()).prop_map(|(id, status, created, tags)| {
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

/// Runs `cases` iterations; answers the `fuzz` object of results.json.
pub fn run(cases: usize) -> Value {
    let strategy = case();
    let mut runner = TestRunner::deterministic();
    let (mut panics, mut undecodable, mut generation_failures) = (0u64, 0u64, 0u64);
    let mut first_panic: Option<String> = None;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..cases {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            generation_failures += 1;
            continue;
        };
        let case = tree.current();
        match catch_unwind(AssertUnwindSafe(|| exercise(&case))) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => undecodable += 1,
            Err(payload) => {
                panics += 1;
                if first_panic.is_none() {
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| {
                            payload
                                .downcast_ref::<&str>()
                                .map(|text| (*text).to_owned())
                        })
                        .unwrap_or_default();
                    first_panic = Some(format!("{message} on {case:?}"));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    json!({
        "inputs": cases,
        "iterations": cases as u64 - undecodable - generation_failures,
        "iterations_note": "inputs whose spec and status decoded and ran through every function; the others were refused by serde, as the API's schema would refuse them",
        "panics": panics,
        "first_panic": first_panic,
        "undecodable_inputs": undecodable,
        "generation_failures": generation_failures,
        "functions": ["decide::datastore::pin", "region", "apply", "cleanup", "settle", "unobserved"],
        "seed": "proptest TestRunner::deterministic",
    })
}
