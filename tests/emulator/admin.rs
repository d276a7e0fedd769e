//! The HTTP admin API under /_emulator/, and the fault kinds not covered elsewhere.

use std::time::{Duration, Instant};

use aws_sdk_healthlake::types::{DatastoreStatus, JobStatus};
use healthlake_operator::emulator::{ErrorType, Fault, Operation};

use crate::support::{
    active_datastore, admin, client_without_retries, create_datastore, datastore_status,
    error_code, fixture, start_export, start_import,
};

#[tokio::test]
async fn the_clock_is_advanced_frozen_and_read_over_http() {
    let fixture = fixture().await;
    let id = create_datastore(&fixture.client, "over-http").await;
    let (status, before) = admin(&fixture.emulator, "GET", "/clock", "").await;
    assert_eq!(status, 200);
    assert_eq!(before["frozen"], true);
    let (status, after) = admin(
        &fixture.emulator,
        "POST",
        "/clock/advance",
        r#"{"seconds": 5}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        after["now_millis"].as_i64().unwrap_or_default()
            - before["now_millis"].as_i64().unwrap_or_default(),
        5000
    );
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Active
    );

    let (status, body) = admin(
        &fixture.emulator,
        "POST",
        "/clock/advance",
        r#"{"seconds": -1}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains("seconds"))
    );

    let (_, running) = admin(&fixture.emulator, "POST", "/clock/unfreeze", "").await;
    assert_eq!(running["frozen"], false);
    let (_, frozen) = admin(&fixture.emulator, "POST", "/clock/freeze", "").await;
    assert_eq!(frozen["frozen"], true);
}

#[tokio::test]
async fn faults_calls_counters_and_reset_work_over_http() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    let (status, _) = admin(
        &fixture.emulator,
        "POST",
        "/faults",
        r#"{"kind": "fail_next", "operation": "ListFHIRDatastores", "error": "InternalServerException", "count": 1}"#,
    )
    .await;
    assert_eq!(status, 200);
    let error = client
        .list_fhir_datastores()
        .send()
        .await
        .expect_err("injected");
    assert_eq!(
        error_code(&error).as_deref(),
        Some("InternalServerException")
    );
    client
        .list_fhir_datastores()
        .send()
        .await
        .expect("only one call fails");

    let (status, body) = admin(
        &fixture.emulator,
        "POST",
        "/faults",
        r#"{"kind": "explode"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains("invalid fault"))
    );

    let (_, calls) = admin(
        &fixture.emulator,
        "GET",
        "/calls?operation=ListFHIRDatastores",
        "",
    )
    .await;
    let calls = calls["calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["error_type"], "InternalServerException");
    assert_eq!(calls[0]["status"], 500);
    assert_eq!(calls[1]["error_type"], serde_json::Value::Null);

    let (_, counters) = admin(&fixture.emulator, "GET", "/counters", "").await;
    assert_eq!(counters["counters"]["ListFHIRDatastores"]["calls"], 2);
    assert_eq!(counters["counters"]["ListFHIRDatastores"]["succeeded"], 1);

    create_datastore(&fixture.client, "before-reset").await;
    let (status, _) = admin(&fixture.emulator, "POST", "/reset", "").await;
    assert_eq!(status, 200);
    let listed = client.list_fhir_datastores().send().await.expect("list");
    assert!(listed.datastore_properties_list.is_empty());
    assert_eq!(
        fixture.emulator.calls().len(),
        1,
        "the log restarted with the reset"
    );
}

#[tokio::test]
async fn access_denied_refuses_one_operation_and_no_other() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::AccessDenied {
        operation: Operation::StartFhirExportJob,
    });
    let datastore = active_datastore(&fixture, "denied").await;
    start_import(&fixture.client, &datastore, "allowed").await;
    let error = fixture
        .client
        .start_fhir_export_job()
        .datastore_id(&datastore)
        .output_data_config(crate::support::output_config())
        .data_access_role_arn(crate::support::ROLE_ARN)
        .send()
        .await
        .expect_err("denied");
    assert!(
        error
            .as_service_error()
            .is_some_and(|error| error.is_access_denied_exception())
    );
    fixture.emulator.clear_faults();
    start_export(&fixture.client, &datastore, "allowed-now").await;
}

#[tokio::test]
async fn certain_error_probabilities_fail_every_call_with_that_error() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    fixture.emulator.inject(Fault::ErrorProbability {
        operation: Operation::ListFhirDatastores,
        throttling: 1.0,
        internal_server: 0.0,
    });
    fixture.emulator.inject(Fault::ErrorProbability {
        operation: Operation::DescribeFhirDatastore,
        throttling: 0.0,
        internal_server: 1.0,
    });
    for _ in 0..5 {
        let error = client
            .list_fhir_datastores()
            .send()
            .await
            .expect_err("throttled");
        assert_eq!(error_code(&error).as_deref(), Some("ThrottlingException"));
        let error = client
            .describe_fhir_datastore()
            .datastore_id("0123456789abcdef0123456789abcdef")
            .send()
            .await
            .expect_err("internal error");
        assert_eq!(
            error_code(&error).as_deref(),
            Some("InternalServerException")
        );
    }
    fixture.emulator.inject(Fault::ErrorProbability {
        operation: Operation::ListFhirDatastores,
        throttling: 0.0,
        internal_server: 0.0,
    });
    client
        .list_fhir_datastores()
        .send()
        .await
        .expect("probabilities reset to zero");
}

#[tokio::test]
async fn added_latency_delays_the_answer_by_at_least_that_long() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::Latency {
        operation: Some(Operation::ListFhirDatastores),
        millis: 150,
    });
    let started = Instant::now();
    fixture
        .client
        .list_fhir_datastores()
        .send()
        .await
        .expect("list");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn an_injected_failure_ends_the_job_failed_with_its_message_and_the_queue_moves_on() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "failing").await;
    fixture.emulator.inject(Fault::JobOutcome {
        job_kind: None,
        job_name: Some("doomed".to_string()),
        outcome: healthlake_operator::emulator::InjectedJobOutcome::Failed {
            message: "access to the input bucket was denied".to_string(),
        },
    });
    let doomed = start_export(&fixture.client, &datastore, "doomed").await;
    let next = start_export(&fixture.client, &datastore, "next").await;
    fixture.emulator.advance_clock(Duration::from_secs(12));
    let describe = |job: String| {
        let client = fixture.client.clone();
        let datastore = datastore.clone();
        async move {
            client
                .describe_fhir_export_job()
                .datastore_id(datastore)
                .job_id(job)
                .send()
                .await
                .expect("describe")
                .export_job_properties
                .expect("properties")
        }
    };
    let failed = describe(doomed).await;
    assert_eq!(failed.job_status, JobStatus::Failed);
    assert_eq!(
        failed.message.as_deref(),
        Some("access to the input bucket was denied")
    );
    assert_eq!(
        describe(next.clone()).await.job_status,
        JobStatus::InProgress
    );
    fixture.emulator.advance_clock(Duration::from_secs(10));
    assert_eq!(describe(next).await.job_status, JobStatus::Completed);
}

#[tokio::test]
async fn a_deleted_datastore_disappears_after_its_retention_and_its_jobs_fail() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "short-lived").await;
    let job = start_import(&fixture.client, &datastore, "interrupted").await;
    fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&datastore)
        .send()
        .await
        .expect("delete");
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
    assert_eq!(properties.job_status, JobStatus::Failed);

    fixture.emulator.advance_clock(Duration::from_secs(5));
    assert_eq!(
        datastore_status(&fixture.client, &datastore).await,
        DatastoreStatus::Deleted
    );
    let error = fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&datastore)
        .send()
        .await
        .expect_err("deleting a DELETED datastore");
    assert_eq!(
        error_code(&error).as_deref(),
        Some("ResourceNotFoundException")
    );
    fixture.emulator.advance_clock(Duration::from_secs(3600));
    let error = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id(&datastore)
        .send()
        .await
        .expect_err("gone after the retention");
    assert_eq!(
        error_code(&error).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn fail_next_counts_down_per_operation() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    fixture.emulator.inject(Fault::FailNext {
        operation: Operation::ListFhirDatastores,
        error: ErrorType::ValidationException,
        count: 2,
        message: Some("injected".to_string()),
    });
    for _ in 0..2 {
        let error = client
            .list_fhir_datastores()
            .send()
            .await
            .expect_err("injected");
        assert_eq!(error_code(&error).as_deref(), Some("ValidationException"));
    }
    client
        .list_fhir_datastores()
        .send()
        .await
        .expect("the third call succeeds");
}
