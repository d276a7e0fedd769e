//! What AWS may send that the emulator never does: values added after this release, error codes
//! with namespaces, unknown codes, bodies that are not JSON. A canned HTTP server on loopback
//! answers the real SDK, so the whole path (SDK parsing, then classification and conversion)
//! is exercised.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use healthlake_operator::api::{DatastoreStatus, ErrorCategory, JobStatus};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::healthlake::{HealthLake, HealthLakeError};

use crate::support::REGION;

/// The next answer: HTTP status, extra headers, body.
#[derive(Clone, Default)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

type Shared = Arc<Mutex<Canned>>;

async fn answer(State(canned): State<Shared>) -> Response {
    let canned = canned
        .lock()
        .map(|canned| canned.clone())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    for (name, value) in canned.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let status = StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, headers, canned.body).into_response()
}

/// Starts the canned server and returns the adapter aimed at it.
async fn canned_server() -> (SdkHealthLake, Shared) {
    let canned = Shared::default();
    let router = Router::new()
        .route("/", post(answer))
        .with_state(canned.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let healthlake = SdkHealthLake::with_static_credentials(
        SdkSettings::new(REGION).with_endpoint_url(format!("http://{address}")),
    );
    (healthlake, canned)
}

fn set(canned: &Shared, status: u16, headers: Vec<(&'static str, &'static str)>, body: &str) {
    if let Ok(mut canned) = canned.lock() {
        *canned = Canned {
            status,
            headers,
            body: body.to_owned(),
        };
    }
}

const UNKNOWN_VALUES: &str = r#"{"DatastoreProperties":{
    "DatastoreId":"0123456789abcdef0123456789abcdef",
    "DatastoreArn":"arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/0123456789abcdef0123456789abcdef",
    "DatastoreName":"future",
    "DatastoreStatus":"HIBERNATING",
    "DatastoreTypeVersion":"R5",
    "DatastoreEndpoint":"https://healthlake.us-east-1.amazonaws.com/datastore/0123456789abcdef0123456789abcdef/r5/",
    "CreatedAt":1.7e9,
    "SseConfiguration":{"KmsEncryptionConfig":{"CmkType":"QUANTUM_KMS_KEY"}},
    "PreloadDataConfig":{"PreloadDataType":"MIMIC"},
    "IdentityProviderConfiguration":{"AuthorizationStrategy":"OAUTH3","FineGrainedAuthorizationEnabled":false},
    "ErrorCause":{"ErrorMessage":"try later","ErrorCategory":"MAYBE_RETRYABLE_ERROR"},
    "SomeMemberAddedLater":{"Anything":true}
}}"#;

#[tokio::test]
async fn values_added_after_this_release_are_kept_as_sent() {
    let (healthlake, canned) = canned_server().await;
    set(&canned, 200, vec![], UNKNOWN_VALUES);
    let datastore = healthlake
        .describe_datastore(REGION, "0123456789abcdef0123456789abcdef")
        .await
        .expect("unknown values are not an error");
    assert_eq!(
        datastore.status,
        DatastoreStatus::Unknown("HIBERNATING".to_owned())
    );
    assert_eq!(datastore.type_version, "R5");
    assert_eq!(
        datastore.encryption,
        Some(("QUANTUM_KMS_KEY".to_owned(), None))
    );
    assert_eq!(datastore.preload.as_deref(), Some("MIMIC"));
    assert_eq!(
        datastore
            .identity_provider
            .map(|idp| idp.authorization_strategy),
        Some("OAUTH3".to_owned())
    );
    assert_eq!(
        datastore.error_cause.and_then(|cause| cause.error_category),
        Some(ErrorCategory::Unknown("MAYBE_RETRYABLE_ERROR".to_owned()))
    );

    set(
        &canned,
        200,
        vec![],
        r#"{"ImportJobProperties":{"JobId":"job1","JobStatus":"PAUSED","SubmitTime":1.7e9,
            "DatastoreId":"0123456789abcdef0123456789abcdef",
            "InputDataConfig":{"S3Uri":"s3://in/"},
            "JobOutputDataConfig":{"S3Configuration":{"S3Uri":"s3://out/","KmsKeyId":"k"}}}}"#,
    );
    let job = healthlake
        .describe_import_job(REGION, "0123456789abcdef0123456789abcdef", "job1")
        .await
        .expect("an unknown job status is not an error");
    assert_eq!(job.status, JobStatus::Unknown("PAUSED".to_owned()));
}

/// HTTP status, extra headers, body, expected class, expected Terminal reason (or the code of an
/// unrecognized error).
type ErrorCase = (
    u16,
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn error_answers_are_classified_by_code_and_status() {
    let (healthlake, canned) = canned_server().await;
    let cases: Vec<ErrorCase> = vec![
        (
            400,
            vec![],
            r#"{"__type":"com.amazonaws.healthlake#ValidationException","message":"bad id"}"#,
            "Terminal",
            Some("ValidationException"),
        ),
        (
            400,
            vec![(
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazonaws.healthlake/",
            )],
            r#"{"message":"slow down"}"#,
            "Throttled",
            None,
        ),
        (
            400,
            vec![],
            r#"{"__type":"BrandNewException","message":"added next year"}"#,
            "Unrecognized",
            Some("BrandNewException"),
        ),
        (
            403,
            vec![],
            r#"{"__type":"AccessDeniedException","Message":"no"}"#,
            "Terminal",
            Some("AccessDenied"),
        ),
        (
            404,
            vec![],
            r#"{"__type":"ResourceNotFoundException","message":"gone"}"#,
            "NotFound",
            None,
        ),
        (
            409,
            vec![],
            r#"{"__type":"ConflictException","message":"busy"}"#,
            "Conflict",
            None,
        ),
        (429, vec![], r#"{"message":"too many"}"#, "Throttled", None),
        (
            500,
            vec![],
            r#"{"__type":"InternalServerException","message":"oops"}"#,
            "Retryable",
            None,
        ),
        (503, vec![], "", "Retryable", None),
        (
            502,
            vec![("content-type", "text/html")],
            "<html>bad gateway</html>",
            "Retryable",
            None,
        ),
        (200, vec![], "this is not json", "Retryable", None),
    ];
    for (status, headers, body, class, reason) in cases {
        set(&canned, status, headers, body);
        let error = healthlake
            .describe_datastore(REGION, "0123456789abcdef0123456789abcdef")
            .await
            .expect_err("the canned answer is an error");
        assert_eq!(error.class(), class, "HTTP {status} {body}: {error}");
        let got_reason = match &error {
            HealthLakeError::Terminal { reason, .. } => Some(reason.as_str()),
            HealthLakeError::Unrecognized { code, .. } => Some(code.as_str()),
            _ => None,
        };
        assert_eq!(got_reason, reason, "HTTP {status} {body}");
    }
}
