//! The wire protocol as seen by a plain HTTP client: signatures, headers, error bodies.

use healthlake_operator::emulator::{self, EmulatorConfig};
use serde_json::Value;

use crate::support::{header, raw_request};

const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261124/us-east-1/healthlake/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0123abcd";

#[tokio::test]
async fn a_request_without_a_signature_is_refused_with_missing_authentication_token() {
    let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
        .await
        .expect("start");
    let (status, headers, body) = raw_request(
        running.local_addr(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "HealthLake.ListFHIRDatastores"),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        header(&headers, "x-amzn-errortype"),
        Some("MissingAuthenticationTokenException")
    );
    assert!(header(&headers, "x-amzn-requestid").is_some_and(|id| id.len() == 36));
    let body: Value = serde_json::from_str(&body).expect("json error body");
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn a_signed_request_gets_a_json_answer_with_a_request_id() {
    let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
        .await
        .expect("start");
    let (status, headers, body) = raw_request(
        running.local_addr(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "HealthLake.ListFHIRDatastores"),
            ("Content-Type", "application/x-amz-json-1.0"),
            ("Authorization", SIGNED),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/x-amz-json-1.0")
    );
    assert!(header(&headers, "x-amzn-requestid").is_some());
    let body: Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(body["DatastorePropertiesList"], Value::Array(Vec::new()));
}

#[tokio::test]
async fn an_unknown_target_and_a_missing_member_are_named_in_the_error() {
    let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
        .await
        .expect("start");
    let (status, _, body) = raw_request(
        running.local_addr(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "HealthLake.DropEverything"),
            ("Authorization", SIGNED),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(body["__type"], "UnknownOperationException");

    let (status, _, body) = raw_request(
        running.local_addr(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "HealthLake.CreateFHIRDatastore"),
            ("Authorization", SIGNED),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).expect("json body");
    assert_eq!(body["__type"], "ValidationException");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| message.contains("'datastoreTypeVersion'")),
        "{body}"
    );
}

#[tokio::test]
async fn other_methods_and_paths_are_answered_in_aws_error_format() {
    let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
        .await
        .expect("start");
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/datastore"),
        ("PUT", "/_emulator/nothing"),
    ] {
        let (status, headers, body) = raw_request(
            running.local_addr(),
            method,
            path,
            &[("Authorization", SIGNED)],
            "",
        )
        .await;
        assert_eq!(status, 400, "{method} {path}");
        assert!(header(&headers, "x-amzn-requestid").is_some());
        let body: Value = serde_json::from_str(&body).expect("json body");
        assert_eq!(body["__type"], "UnknownOperationException");
    }
}
