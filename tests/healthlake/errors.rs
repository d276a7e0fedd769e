//! Every error class, as AWS's wire errors reach the adapter through the SDK.

use std::time::Duration;

use healthlake_operator::emulator::{EmulatorConfig, ErrorType, Fault, Operation};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::healthlake::{HealthLake, HealthLakeError};

use crate::support::{
    REGION, active_datastore, create_request, fixture, fixture_with, import_request,
};

fn reason(error: &HealthLakeError) -> Option<&str> {
    match error {
        HealthLakeError::Terminal { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn injected_errors_are_classified_once_and_never_retried_by_the_sdk() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "e0000000-0000-4000-8000-000000000001", "faulty").await;
    let cases = [
        (ErrorType::ThrottlingException, "Throttled", None),
        (ErrorType::InternalServerException, "Retryable", None),
        (
            ErrorType::AccessDeniedException,
            "Terminal",
            Some("AccessDenied"),
        ),
        (
            ErrorType::ValidationException,
            "Terminal",
            Some("ValidationException"),
        ),
        (ErrorType::ResourceNotFoundException, "NotFound", None),
        (ErrorType::ConflictException, "Conflict", None),
    ];
    for (error_type, class, expected_reason) in cases {
        let message = format!("injected {} for this test", error_type.name());
        fixture.emulator.inject(Fault::FailNext {
            operation: Operation::DescribeFhirDatastore,
            error: error_type,
            count: 1,
            message: Some(message.clone()),
        });
        let calls_before = fixture.calls_of(Operation::DescribeFhirDatastore);

        let error = fixture
            .healthlake
            .describe_datastore(REGION, &datastore.id)
            .await
            .expect_err("the injected error is answered");
        assert_eq!(error.class(), class, "{error_type:?}: {error}");
        assert_eq!(reason(&error), expected_reason, "{error_type:?}");
        assert!(
            error.to_string().contains(&message),
            "{error_type:?}: {error} keeps AWS's message"
        );
        assert_eq!(
            fixture.calls_of(Operation::DescribeFhirDatastore),
            calls_before + 1,
            "{error_type:?} reached AWS exactly once"
        );

        fixture
            .healthlake
            .describe_datastore(REGION, &datastore.id)
            .await
            .expect("the fault was used up");
    }
}

#[tokio::test]
async fn real_service_errors_are_classified() {
    let fixture = fixture().await;
    let unknown_id = "0123456789abcdef0123456789abcdef";
    let missing = fixture
        .healthlake
        .describe_datastore(REGION, unknown_id)
        .await
        .expect_err("an unknown datastore is not found");
    assert!(
        matches!(missing, HealthLakeError::NotFound { .. }),
        "{missing}"
    );

    let missing_job = fixture
        .healthlake
        .describe_export_job(REGION, unknown_id, unknown_id)
        .await
        .expect_err("an unknown job is not found");
    assert!(
        matches!(missing_job, HealthLakeError::NotFound { .. }),
        "{missing_job}"
    );

    let too_long = "x".repeat(40);
    let invalid = fixture
        .healthlake
        .describe_datastore(REGION, &too_long)
        .await
        .expect_err("a 40-character id breaks the length rule");
    assert_eq!(reason(&invalid), Some("ValidationException"), "{invalid}");

    let created = fixture
        .healthlake
        .create_datastore(
            REGION,
            &create_request("e0000000-0000-4000-8000-000000000002", "young"),
        )
        .await
        .expect("create succeeds");
    let too_early = fixture
        .healthlake
        .start_import_job(
            REGION,
            &import_request("e0000000-0000-4000-8000-000000000003", &created.id, "early"),
        )
        .await
        .expect_err("jobs cannot start on a CREATING datastore");
    assert_eq!(
        reason(&too_early),
        Some("ValidationException"),
        "{too_early}"
    );

    fixture.emulator.advance_clock(Duration::from_secs(60));
    fixture
        .healthlake
        .delete_datastore(REGION, &created.id)
        .await
        .expect("the first delete succeeds");
    let conflict = fixture
        .healthlake
        .delete_datastore(REGION, &created.id)
        .await
        .expect_err("a second delete while DELETING conflicts");
    assert!(
        matches!(conflict, HealthLakeError::Conflict { .. }),
        "{conflict}"
    );
}

#[tokio::test]
async fn access_denied_is_terminal_every_time() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::AccessDenied {
        operation: Operation::CreateFhirDatastore,
    });
    for attempt in 0..2 {
        let error = fixture
            .healthlake
            .create_datastore(
                REGION,
                &create_request("e0000000-0000-4000-8000-000000000004", "denied"),
            )
            .await
            .expect_err("the caller may not create datastores");
        assert_eq!(
            reason(&error),
            Some("AccessDenied"),
            "attempt {attempt}: {error}"
        );
        assert!(error.to_string().contains("not authorized"), "{error}");
    }
    assert_eq!(fixture.calls_of(Operation::CreateFhirDatastore), 2);
    assert!(fixture.emulator.state().datastores.is_empty());
}

#[tokio::test]
async fn a_call_slower_than_the_operation_timeout_is_retryable() {
    let fixture = fixture_with(EmulatorConfig::for_tests(), |mut settings| {
        settings.operation_timeout = Duration::from_millis(200);
        settings
    })
    .await;
    fixture.emulator.inject(Fault::Latency {
        operation: Some(Operation::ListFhirDatastores),
        millis: 30_000,
    });
    let error = fixture
        .healthlake
        .list_datastores(REGION, None)
        .await
        .expect_err("the call times out");
    assert!(
        matches!(error, HealthLakeError::Retryable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("request timed out"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    // A port that was free a moment ago and has nobody listening now.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener.local_addr().expect("its address");
    drop(listener);
    let healthlake = SdkHealthLake::with_static_credentials(
        SdkSettings::new(REGION).with_endpoint_url(format!("http://{address}")),
    );
    let error = healthlake
        .describe_datastore(REGION, "0123456789abcdef0123456789abcdef")
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(error, HealthLakeError::Retryable { .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("failed to send request"),
        "{error}"
    );
}

#[tokio::test]
async fn a_lost_answer_is_retryable_and_retrying_with_the_same_token_creates_nothing_twice() {
    let fixture = fixture().await;
    let request = create_request("e0000000-0000-4000-8000-000000000005", "lost");
    fixture.emulator.inject(Fault::LoseNextResponse {
        operation: Operation::CreateFhirDatastore,
        count: 1,
    });
    let lost = fixture
        .healthlake
        .create_datastore(REGION, &request)
        .await
        .expect_err("the answer is lost");
    assert!(matches!(lost, HealthLakeError::Retryable { .. }), "{lost}");
    let created = fixture
        .healthlake
        .create_datastore(REGION, &request)
        .await
        .expect("the retry gets the datastore the lost call created");
    let state = fixture.emulator.state();
    assert_eq!(state.datastores.len(), 1);
    assert!(state.datastores.contains_key(&created.id));

    fixture.emulator.advance_clock(Duration::from_secs(60));
    let job = import_request("e0000000-0000-4000-8000-000000000006", &created.id, "lost");
    fixture.emulator.inject(Fault::LoseNextResponse {
        operation: Operation::StartFhirImportJob,
        count: 1,
    });
    let lost = fixture
        .healthlake
        .start_import_job(REGION, &job)
        .await
        .expect_err("the answer is lost");
    assert!(matches!(lost, HealthLakeError::Retryable { .. }), "{lost}");
    let started = fixture
        .healthlake
        .start_import_job(REGION, &job)
        .await
        .expect("the retry gets the job the lost call started");
    let state = fixture.emulator.state();
    assert_eq!(state.jobs.len(), 1);
    assert!(state.jobs.contains_key(&started.job_id));
}
