//! Import and export jobs: lifecycle, progress, the one-at-a-time queue.

use std::time::Duration;

use aws_sdk_healthlake::types::JobStatus;

use healthlake_operator::emulator::{EmulatorConfig, JobConcurrency};

use crate::support::{
    ROLE_ARN, active_datastore, create_datastore, error_code, fixture, fixture_with, input_config,
    output_config, start_export, start_import,
};

async fn import_status(fixture: &crate::support::Fixture, datastore: &str, job: &str) -> JobStatus {
    fixture
        .client
        .describe_fhir_import_job()
        .datastore_id(datastore)
        .job_id(job)
        .send()
        .await
        .expect("describe import succeeds")
        .import_job_properties
        .expect("properties")
        .job_status
}

async fn export_status(fixture: &crate::support::Fixture, datastore: &str, job: &str) -> JobStatus {
    fixture
        .client
        .describe_fhir_export_job()
        .datastore_id(datastore)
        .job_id(job)
        .send()
        .await
        .expect("describe export succeeds")
        .export_job_properties
        .expect("properties")
        .job_status
}

#[tokio::test]
async fn an_import_moves_from_submitted_to_completed_with_growing_progress() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "imports").await;
    let job = start_import(&fixture.client, &datastore, "first").await;
    assert_eq!(
        import_status(&fixture, &datastore, &job).await,
        JobStatus::Submitted
    );
    fixture.emulator.advance_clock(Duration::from_secs(1));
    assert_eq!(
        import_status(&fixture, &datastore, &job).await,
        JobStatus::Queued
    );
    fixture.emulator.advance_clock(Duration::from_secs(1));
    assert_eq!(
        import_status(&fixture, &datastore, &job).await,
        JobStatus::InProgress
    );

    let mut imported = Vec::new();
    for _ in 0..3 {
        fixture.emulator.advance_clock(Duration::from_secs(3));
        let properties = fixture
            .client
            .describe_fhir_import_job()
            .datastore_id(&datastore)
            .job_id(&job)
            .send()
            .await
            .expect("describe succeeds")
            .import_job_properties
            .expect("properties");
        assert_eq!(properties.job_status, JobStatus::InProgress);
        imported.push(
            properties
                .job_progress_report
                .and_then(|report| report.total_number_of_resources_imported)
                .unwrap_or_default(),
        );
    }
    assert!(
        imported.windows(2).all(|pair| pair[0] < pair[1]),
        "{imported:?}"
    );

    fixture.emulator.advance_clock(Duration::from_secs(1));
    let properties = fixture
        .client
        .describe_fhir_import_job()
        .datastore_id(&datastore)
        .job_id(&job)
        .send()
        .await
        .expect("describe succeeds")
        .import_job_properties
        .expect("properties");
    assert_eq!(properties.job_status, JobStatus::Completed);
    assert!(properties.end_time.is_some());
    assert_eq!(properties.job_name.as_deref(), Some("first"));
}

#[tokio::test]
async fn jobs_on_one_datastore_run_one_at_a_time_first_in_first_out() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "queue").await;
    let import = start_import(&fixture.client, &datastore, "import").await;
    let export = start_export(&fixture.client, &datastore, "export").await;
    fixture.emulator.advance_clock(Duration::from_secs(2));
    assert_eq!(
        import_status(&fixture, &datastore, &import).await,
        JobStatus::InProgress
    );
    assert_eq!(
        export_status(&fixture, &datastore, &export).await,
        JobStatus::Queued
    );
    fixture.emulator.advance_clock(Duration::from_secs(10));
    assert_eq!(
        import_status(&fixture, &datastore, &import).await,
        JobStatus::Completed
    );
    assert_eq!(
        export_status(&fixture, &datastore, &export).await,
        JobStatus::InProgress
    );
    fixture.emulator.advance_clock(Duration::from_secs(10));
    assert_eq!(
        export_status(&fixture, &datastore, &export).await,
        JobStatus::Completed
    );
}

#[tokio::test]
async fn a_job_on_a_datastore_that_is_not_active_is_a_validation_error() {
    let fixture = fixture().await;
    let datastore = create_datastore(&fixture.client, "creating").await;
    let error = fixture
        .client
        .start_fhir_import_job()
        .datastore_id(&datastore)
        .input_data_config(input_config())
        .job_output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await
        .expect_err("a CREATING datastore takes no jobs");
    assert_eq!(error_code(&error).as_deref(), Some("ValidationException"));
}

#[tokio::test]
async fn an_unknown_job_is_not_found() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "jobs").await;
    let error = fixture
        .client
        .describe_fhir_export_job()
        .datastore_id(&datastore)
        .job_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect_err("unknown job");
    assert_eq!(
        error_code(&error).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn export_jobs_are_listed_per_datastore_and_kind() {
    let fixture = fixture().await;
    let first = active_datastore(&fixture, "first").await;
    let second = active_datastore(&fixture, "second").await;
    let export = start_export(&fixture.client, &first, "export").await;
    let import = start_import(&fixture.client, &first, "import").await;
    start_export(&fixture.client, &second, "elsewhere").await;
    let listed = fixture
        .client
        .list_fhir_export_jobs()
        .datastore_id(&first)
        .send()
        .await
        .expect("list exports")
        .export_job_properties_list;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, export);
    assert_eq!(listed[0].job_name.as_deref(), Some("export"));
    assert!(listed[0].output_data_config.is_some());

    let wrong_kind = fixture
        .client
        .describe_fhir_export_job()
        .datastore_id(&first)
        .job_id(&import)
        .send()
        .await
        .expect_err("an import job is not an export job");
    assert_eq!(
        error_code(&wrong_kind).as_deref(),
        Some("ResourceNotFoundException")
    );
    let wrong_datastore = fixture
        .client
        .describe_fhir_export_job()
        .datastore_id(&second)
        .job_id(&export)
        .send()
        .await
        .expect_err("the job belongs to another datastore");
    assert_eq!(
        error_code(&wrong_datastore).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn with_datastore_concurrency_jobs_on_different_datastores_run_at_the_same_time() {
    let fixture =
        fixture_with(EmulatorConfig::for_tests().with_job_concurrency(JobConcurrency::Datastore))
            .await;
    let first = active_datastore(&fixture, "first").await;
    let second = active_datastore(&fixture, "second").await;
    let one = start_import(&fixture.client, &first, "one").await;
    let two = start_import(&fixture.client, &second, "two").await;
    fixture.emulator.advance_clock(Duration::from_secs(2));
    assert_eq!(
        import_status(&fixture, &first, &one).await,
        JobStatus::InProgress
    );
    assert_eq!(
        import_status(&fixture, &second, &two).await,
        JobStatus::InProgress
    );
}
