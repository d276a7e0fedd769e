//! Fault injection through the in-process API and the HTTP admin API.

use std::time::Duration;

use aws_sdk_healthlake::types::{DatastoreStatus, ErrorCategory, JobStatus};
use healthlake_operator::emulator::{ErrorType, Fault, InjectedJobOutcome, JobKind, Operation};

use crate::support::{
    active_datastore, client_without_retries, create_datastore, error_code, fixture, start_import,
};

#[tokio::test]
async fn the_sdk_retries_through_injected_internal_errors() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::FailNext {
        operation: Operation::ListFhirDatastores,
        error: ErrorType::InternalServerException,
        count: 2,
        message: None,
    });
    fixture
        .client
        .list_fhir_datastores()
        .send()
        .await
        .expect("the third attempt succeeds");
    let calls = fixture.emulator.calls_of(Operation::ListFhirDatastores);
    let outcomes: Vec<Option<&str>> = calls
        .iter()
        .map(|call| call.error_type.as_deref())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            Some("InternalServerException"),
            Some("InternalServerException"),
            None
        ]
    );
}

#[tokio::test]
async fn an_injected_throttle_reaches_a_client_without_retries() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::FailNext {
        operation: Operation::DescribeFhirDatastore,
        error: ErrorType::ThrottlingException,
        count: 1,
        message: None,
    });
    let client = client_without_retries(&fixture.emulator);
    let error = client
        .describe_fhir_datastore()
        .datastore_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(error_code(&error).as_deref(), Some("ThrottlingException"));
    let counters = fixture.emulator.counters();
    assert_eq!(
        counters["DescribeFHIRDatastore"]
            .errors
            .get("ThrottlingException"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_datastore_creation_failure_ends_create_failed_with_its_cause() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::DatastoreCreationFailure {
        datastore_name: Some("doomed".to_string()),
        error_category: healthlake_operator::emulator::ErrorCategory::NonRetryable,
        error_message: "kms key is disabled".to_string(),
    });
    let healthy = create_datastore(&fixture.client, "healthy").await;
    let doomed = create_datastore(&fixture.client, "doomed").await;
    fixture.emulator.advance_clock(Duration::from_secs(5));
    let properties = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id(&doomed)
        .send()
        .await
        .expect("describe")
        .datastore_properties
        .expect("properties");
    assert_eq!(properties.datastore_status, DatastoreStatus::CreateFailed);
    let cause = properties.error_cause.expect("error cause");
    assert_eq!(cause.error_category, Some(ErrorCategory::NonRetryableError));
    assert_eq!(cause.error_message.as_deref(), Some("kms key is disabled"));
    let healthy_status = crate::support::datastore_status(&fixture.client, &healthy).await;
    assert_eq!(healthy_status, DatastoreStatus::Active);
}

#[tokio::test]
async fn an_injected_job_outcome_completes_with_the_given_errors() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "errors").await;
    fixture.emulator.inject(Fault::JobOutcome {
        job_kind: Some(JobKind::Import),
        job_name: None,
        outcome: InjectedJobOutcome::CompletedWithErrors {
            resources_with_error: 7,
            files_with_error: 2,
        },
    });
    let job = start_import(&fixture.client, &datastore, "partial").await;
    fixture.emulator.advance_clock(Duration::from_secs(60));
    let properties = fixture
        .client
        .describe_fhir_import_job()
        .datastore_id(&datastore)
        .job_id(&job)
        .send()
        .await
        .expect("describe")
        .import_job_properties
        .expect("properties");
    assert_eq!(properties.job_status, JobStatus::CompletedWithErrors);
    let report = properties.job_progress_report.expect("report");
    assert_eq!(
        report.total_number_of_resources_with_customer_error,
        Some(7)
    );
    assert_eq!(
        report.total_number_of_files_read_with_customer_error,
        Some(2)
    );
}

#[tokio::test]
async fn a_lost_create_response_is_retried_by_the_sdk_without_a_second_datastore() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::LoseNextResponse {
        operation: Operation::CreateFhirDatastore,
        count: 1,
    });
    let id = create_datastore(&fixture.client, "exactly-once").await;
    let state = fixture.emulator.state();
    assert_eq!(state.datastores.len(), 1);
    assert!(state.datastores.contains_key(&id));
    let outcomes: Vec<Option<String>> = fixture
        .emulator
        .calls_of(Operation::CreateFhirDatastore)
        .into_iter()
        .map(|call| call.error_type)
        .collect();
    assert_eq!(
        outcomes,
        vec![Some("InternalServerException".to_string()), None]
    );
}
