//! Property tests: random request sequences, sent through the emulator's HTTP router
//! in-process, never panic it and never break its invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use healthlake_operator::emulator::{
    DatastoreStatus, Emulator, EmulatorConfig, ErrorType, Fault, JobConcurrency, JobRecord,
    JobStatus, Operation, Quotas,
};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261124/us-east-1/healthlake/aws4_request, SignedHeaders=host;x-amz-target, Signature=00";
const SIGNED_WEST: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261124/eu-west-1/healthlake/aws4_request, SignedHeaders=host;x-amz-target, Signature=00";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

#[derive(Clone, Debug)]
enum Action {
    Create {
        name: u8,
        token: Option<u8>,
        west: bool,
    },
    Delete {
        datastore: usize,
    },
    StartImport {
        datastore: usize,
        token: Option<u8>,
    },
    StartExport {
        datastore: usize,
    },
    DescribeDatastore {
        datastore: usize,
    },
    DescribeJob {
        job: usize,
    },
    List {
        max_results: i64,
        with_token: bool,
    },
    Tag {
        datastore: usize,
        key: String,
    },
    Advance {
        millis: u64,
    },
    FailNext {
        operation: usize,
        count: u32,
    },
    Garbage {
        target: String,
        body: Vec<u8>,
    },
    Unsigned {
        operation: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (any::<u8>(), proptest::option::of(0u8..4), proptest::bool::weighted(0.2))
            .prop_map(|(name, token, west)| Action::Create { name, token, west }),
        1 => any::<usize>().prop_map(|datastore| Action::Delete { datastore }),
        3 => (any::<usize>(), proptest::option::of(0u8..4))
            .prop_map(|(datastore, token)| Action::StartImport { datastore, token }),
        2 => any::<usize>().prop_map(|datastore| Action::StartExport { datastore }),
        2 => any::<usize>().prop_map(|datastore| Action::DescribeDatastore { datastore }),
        2 => any::<usize>().prop_map(|job| Action::DescribeJob { job }),
        1 => (-2i64..600, any::<bool>())
            .prop_map(|(max_results, with_token)| Action::List { max_results, with_token }),
        1 => (any::<usize>(), "\\PC{0,140}")
            .prop_map(|(datastore, key)| Action::Tag { datastore, key }),
        4 => (0u64..20_000).prop_map(|millis| Action::Advance { millis }),
        1 => (any::<usize>(), 0u32..3)
            .prop_map(|(operation, count)| Action::FailNext { operation, count }),
        1 => ("\\PC{0,40}", proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(target, body)| Action::Garbage { target, body }),
        1 => any::<usize>().prop_map(|operation| Action::Unsigned { operation }),
    ]
}

/// What the test has learnt of the emulator so far.
#[derive(Default)]
struct Model {
    datastores: Vec<String>,
    /// Datastores created with requests signed for eu-west-1.
    west: BTreeSet<String>,
    jobs: Vec<(String, String, bool)>,
    tokens: BTreeMap<(Operation, u8), (Value, String)>,
    returned_ids: BTreeSet<String>,
    deleted: BTreeSet<String>,
    finished_jobs: BTreeMap<String, JobStatus>,
    next_token: Option<String>,
}

fn pick<T: Clone>(items: &[T], index: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[index % items.len()].clone())
}

fn unknown_id() -> String {
    "0123456789abcdef0123456789abcdef".to_string()
}

async fn send(emulator: &Emulator, target: &str, body: Vec<u8>, signed: bool) -> (u16, Value) {
    send_signed(emulator, target, body, signed.then_some(SIGNED)).await
}

async fn send_signed(
    emulator: &Emulator,
    target: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut request = Request::post("/")
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.0");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let request = request.body(Body::from(body)).expect("request");
    let response = emulator
        .router()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status().as_u16();
    assert!(
        response.headers().contains_key("x-amzn-requestid"),
        "every answer has a request id"
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    if status != 200 {
        assert!(body["__type"].is_string(), "errors carry __type: {body}");
    }
    assert!([200, 400, 403, 500].contains(&status), "status {status}");
    (status, body)
}

async fn call(emulator: &Emulator, operation: Operation, body: Value) -> (u16, Value) {
    send(
        emulator,
        &format!("HealthLake.{operation}"),
        body.to_string().into_bytes(),
        true,
    )
    .await
}

fn output() -> Value {
    json!({"S3Configuration": {"S3Uri": "s3://bucket-out/x/", "KmsKeyId": "alias/k"}})
}

async fn apply(emulator: &Emulator, model: &mut Model, action: Action) {
    match action {
        Action::Create { name, token, west } => {
            let mut body =
                json!({"DatastoreTypeVersion": "R4", "DatastoreName": format!("ds-{name}")});
            if west {
                // Tokens are kept per region: a west token never meets an east one.
                let (status, answer) = send_signed(
                    emulator,
                    "HealthLake.CreateFHIRDatastore",
                    body.to_string().into_bytes(),
                    Some(SIGNED_WEST),
                )
                .await;
                if status == 200 {
                    let id = answer["DatastoreId"].as_str().unwrap_or_default();
                    assert!(
                        answer["DatastoreArn"]
                            .as_str()
                            .is_some_and(|arn| arn.starts_with("arn:aws:healthlake:eu-west-1:")),
                        "{answer}"
                    );
                    assert!(model.returned_ids.insert(id.to_string()), "id {id} reused");
                    model.west.insert(id.to_string());
                }
                return;
            }
            if let Some(token) = token {
                body["ClientToken"] = json!(format!("token-{token}"));
            }
            let (status, answer) =
                call(emulator, Operation::CreateFhirDatastore, body.clone()).await;
            if status == 200 {
                let id = answer["DatastoreId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                remember(model, Operation::CreateFhirDatastore, token, body, &id);
                if !model.datastores.contains(&id) {
                    model.datastores.push(id);
                }
            } else if answer["__type"] == "ValidationException" {
                let message = answer["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("data store quota exceeded")
                        || message.contains("ClientToken"),
                    "{answer}"
                );
            }
        }
        Action::Delete { datastore } => {
            let id = pick(&model.datastores, datastore).unwrap_or_else(unknown_id);
            call(
                emulator,
                Operation::DeleteFhirDatastore,
                json!({"DatastoreId": id}),
            )
            .await;
        }
        Action::StartImport { datastore, token } => {
            let id = pick(&model.datastores, datastore).unwrap_or_else(unknown_id);
            let mut body = json!({
                "DatastoreId": id,
                "InputDataConfig": {"S3Uri": "s3://bucket-in/x/"},
                "JobOutputDataConfig": output(),
                "DataAccessRoleArn": "arn:aws:iam::123456789012:role/Import",
            });
            if let Some(token) = token {
                body["ClientToken"] = json!(format!("token-{token}"));
            }
            let (status, answer) =
                call(emulator, Operation::StartFhirImportJob, body.clone()).await;
            if status == 200 {
                let job = answer["JobId"].as_str().unwrap_or_default().to_string();
                remember(model, Operation::StartFhirImportJob, token, body, &job);
                if !model.jobs.iter().any(|(known, _, _)| *known == job) {
                    model.jobs.push((job, id, true));
                }
            }
        }
        Action::StartExport { datastore } => {
            let id = pick(&model.datastores, datastore).unwrap_or_else(unknown_id);
            let body = json!({
                "DatastoreId": id,
                "OutputDataConfig": output(),
                "DataAccessRoleArn": "arn:aws:iam::123456789012:role/Export",
            });
            let (status, answer) = call(emulator, Operation::StartFhirExportJob, body).await;
            if status == 200 {
                let job = answer["JobId"].as_str().unwrap_or_default().to_string();
                assert!(
                    model.returned_ids.insert(job.clone()),
                    "job id {job} reused"
                );
                model.jobs.push((job, id, false));
            }
        }
        Action::DescribeDatastore { datastore } => {
            let id = pick(&model.datastores, datastore).unwrap_or_else(unknown_id);
            call(
                emulator,
                Operation::DescribeFhirDatastore,
                json!({"DatastoreId": id}),
            )
            .await;
        }
        Action::DescribeJob { job } => {
            let (job, datastore, import) =
                pick(&model.jobs, job).unwrap_or_else(|| (unknown_id(), unknown_id(), true));
            let operation = if import {
                Operation::DescribeFhirImportJob
            } else {
                Operation::DescribeFhirExportJob
            };
            call(
                emulator,
                operation,
                json!({"DatastoreId": datastore, "JobId": job}),
            )
            .await;
        }
        Action::List {
            max_results,
            with_token,
        } => {
            let mut body = json!({"MaxResults": max_results});
            if with_token && let Some(token) = &model.next_token {
                body["NextToken"] = json!(token);
            }
            let (status, answer) = call(emulator, Operation::ListFhirDatastores, body).await;
            if status == 200 {
                let page = answer["DatastorePropertiesList"]
                    .as_array()
                    .map_or(0, Vec::len);
                assert!(page as i64 <= max_results.max(1));
                model.next_token = answer["NextToken"].as_str().map(str::to_string);
            } else if answer["__type"] == "ValidationException" {
                assert!(!(1..=500).contains(&max_results) || with_token, "{answer}");
            }
        }
        Action::Tag { datastore, key } => {
            let id = pick(&model.datastores, datastore).unwrap_or_else(unknown_id);
            let arn = format!("arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{id}");
            call(
                emulator,
                Operation::TagResource,
                json!({"ResourceARN": arn, "Tags": [{"Key": key, "Value": "v"}]}),
            )
            .await;
        }
        Action::Advance { millis } => emulator.advance_clock(Duration::from_millis(millis)),
        Action::FailNext { operation, count } => emulator.inject(Fault::FailNext {
            operation: Operation::ALL[operation % Operation::ALL.len()],
            error: ErrorType::InternalServerException,
            count,
            message: None,
        }),
        Action::Garbage { target, body } => {
            send(emulator, &target, body, true).await;
        }
        Action::Unsigned { operation } => {
            let operation = Operation::ALL[operation % Operation::ALL.len()];
            let (status, _) = send(
                emulator,
                &format!("HealthLake.{operation}"),
                b"{}".to_vec(),
                false,
            )
            .await;
            assert_eq!(status, 403);
        }
    }
}

/// Records an id returned by a call with an optional ClientToken: a replay returns the
/// first id; anything else must be an id never returned before.
fn remember(model: &mut Model, operation: Operation, token: Option<u8>, body: Value, id: &str) {
    if let Some(token) = token {
        if let Some((first_body, first_id)) = model.tokens.get(&(operation, token)) {
            assert_eq!(
                *first_body, body,
                "a token reused with other parameters succeeded"
            );
            assert_eq!(first_id, id, "a replayed token answered another id");
            return;
        }
        model
            .tokens
            .insert((operation, token), (body, id.to_string()));
    }
    assert!(model.returned_ids.insert(id.to_string()), "id {id} reused");
}

fn check_invariants(
    emulator: &Emulator,
    model: &mut Model,
    concurrency: JobConcurrency,
    max_datastores: Option<u32>,
) {
    for region in REGIONS {
        check_region(emulator, model, region, concurrency, max_datastores);
    }
}

fn check_region(
    emulator: &Emulator,
    model: &mut Model,
    region: &str,
    concurrency: JobConcurrency,
    max_datastores: Option<u32>,
) {
    let state = emulator.state_in(region);
    let live = state
        .datastores
        .values()
        .filter(|datastore| datastore.status != DatastoreStatus::Deleted)
        .count();
    if let Some(max) = max_datastores {
        assert!(live <= max as usize, "{live} datastores in {region}");
    }
    for (id, datastore) in &state.datastores {
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            model.west.contains(id),
            region == "eu-west-1",
            "datastore {id} is in the wrong region"
        );
        assert!(
            !state.jobs.contains_key(id),
            "a job and a datastore share id {id}"
        );
        if model.deleted.contains(id) {
            assert_eq!(
                datastore.status,
                DatastoreStatus::Deleted,
                "DELETED is final"
            );
        }
        if datastore.status == DatastoreStatus::Deleted {
            model.deleted.insert(id.clone());
        }
    }
    // Whatever a running job holds (its datastore; under `account` also its kind), no other
    // job runs on, and no job submitted before it still waits for.
    let holds = |job: &JobRecord| -> Vec<String> {
        let mut slots = vec![format!("datastore {}", job.datastore_id)];
        if concurrency == JobConcurrency::Account {
            slots.push(format!("{:?} jobs in {region}", job.kind));
        }
        slots
    };
    let running: Vec<&JobRecord> = state
        .jobs
        .values()
        .filter(|job| job.status == JobStatus::InProgress)
        .collect();
    let mut held = BTreeSet::new();
    for job in &running {
        for slot in holds(job) {
            assert!(held.insert(slot.clone()), "two jobs run on {slot}");
            let earlier_waiting = state.jobs.values().any(|other| {
                other.status.is_waiting()
                    && other.sequence < job.sequence
                    && holds(other).contains(&slot)
            });
            assert!(
                !earlier_waiting,
                "the queue of {slot} is not first in, first out"
            );
        }
    }
    for (id, job) in &state.jobs {
        if let Some(final_status) = model.finished_jobs.get(id) {
            assert_eq!(job.status, *final_status, "a finished job changed status");
        }
        if job.status.is_final() {
            model.finished_jobs.insert(id.clone(), job.status);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_request_sequences_keep_the_invariants(
        actions in proptest::collection::vec(action(), 1..60),
        quotas_on in any::<bool>(),
        per_datastore in any::<bool>(),
    ) {
        let quotas = if quotas_on { Quotas::Default } else { Quotas::Off };
        // A small data store quota, so that random sequences reach it.
        let max_datastores = quotas_on.then_some(3);
        let concurrency = if per_datastore {
            JobConcurrency::Datastore
        } else {
            JobConcurrency::Account
        };
        let config = EmulatorConfig::for_tests()
            .with_quotas(quotas)
            .with_max_datastores(max_datastores)
            .with_job_concurrency(concurrency);
        let emulator = Emulator::new(config).expect("the emulator builds");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut model = Model::default();
            for action in actions {
                apply(&emulator, &mut model, action).await;
                check_invariants(&emulator, &mut model, concurrency, max_datastores);
            }
        });
    }
}
