//! Import and export jobs through the adapter: start once, then every status with progress.

use std::time::Duration;

use healthlake_operator::api::{JobStatus, ValidationLevel};
use healthlake_operator::emulator::{Fault, InjectedJobOutcome, JobKind, Operation};
use healthlake_operator::healthlake::{HealthLake, Job};

use crate::support::{REGION, active_datastore, export_request, fixture, import_request};

const IMPORT_TOKEN: &str = "6a1f0c3e-0000-4000-8000-000000000001";

async fn describe_import_after(
    fixture: &crate::support::Fixture,
    advance: Duration,
    datastore_id: &str,
    job_id: &str,
) -> Job {
    fixture.emulator.advance_clock(advance);
    fixture
        .healthlake
        .describe_import_job(REGION, datastore_id, job_id)
        .await
        .expect("describe import succeeds")
}

#[tokio::test]
async fn an_import_job_reports_every_status_and_its_progress() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "4c5d6e7f-0000-4000-8000-000000000001", "imports").await;
    let mut request = import_request(IMPORT_TOKEN, &datastore.id, "nightly");
    request.validation_level = Some(ValidationLevel::StructureOnly);

    let started = fixture
        .healthlake
        .start_import_job(REGION, &request)
        .await
        .expect("start import succeeds");
    assert_eq!(started.status, JobStatus::Submitted);
    assert_eq!(started.datastore_id.as_deref(), Some(datastore.id.as_str()));

    let sent = &fixture.emulator.calls_of(Operation::StartFhirImportJob)[0].parameters;
    assert_eq!(sent["ClientToken"], IMPORT_TOKEN);
    assert_eq!(sent["JobName"], "nightly");
    assert_eq!(sent["InputDataConfig"]["S3Uri"], "s3://example-input/2026/");
    assert_eq!(
        sent["JobOutputDataConfig"]["S3Configuration"]["KmsKeyId"],
        "alias/output"
    );
    assert_eq!(sent["ValidationLevel"], "structure-only");

    let submitted =
        describe_import_after(&fixture, Duration::ZERO, &datastore.id, &started.job_id).await;
    assert_eq!(submitted.job_id, started.job_id);
    assert_eq!(submitted.datastore_id, datastore.id);
    assert_eq!(submitted.job_name.as_deref(), Some("nightly"));
    assert_eq!(submitted.status, JobStatus::Submitted);
    assert!(submitted.submit_time.is_some());
    assert_eq!(submitted.end_time, None);

    let queued = describe_import_after(
        &fixture,
        Duration::from_secs(1),
        &datastore.id,
        &started.job_id,
    )
    .await;
    assert_eq!(queued.status, JobStatus::Queued);

    let running = describe_import_after(
        &fixture,
        Duration::from_secs(6),
        &datastore.id,
        &started.job_id,
    )
    .await;
    assert_eq!(running.status, JobStatus::InProgress);
    let partial = running.progress.expect("a running import reports progress");

    let completed = describe_import_after(
        &fixture,
        Duration::from_secs(60),
        &datastore.id,
        &started.job_id,
    )
    .await;
    assert_eq!(completed.status, JobStatus::Completed);
    assert!(completed.end_time.is_some());
    assert!(completed.end_time >= completed.submit_time);
    let done = completed
        .progress
        .expect("a finished import reports progress");
    let counters = [
        (partial.scanned_files, done.scanned_files),
        (partial.imported_files, done.imported_files),
        (partial.resources_scanned, done.resources_scanned),
        (partial.resources_imported, done.resources_imported),
    ];
    for (during, after) in counters {
        assert!(
            after.is_some() && during <= after,
            "{during:?} then {after:?}"
        );
    }
    assert!(done.resources_imported.unwrap_or_default() > 0);
    assert!(done.scanned_size_mb.is_some());
    assert!(done.throughput.is_some());
    assert_eq!(done.resources_with_customer_error, Some(0));
    assert_eq!(done.files_read_with_customer_error, Some(0));
}

#[tokio::test]
async fn starting_twice_with_one_client_token_starts_one_job() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "4c5d6e7f-0000-4000-8000-000000000002", "once").await;
    let request = import_request(IMPORT_TOKEN, &datastore.id, "once");
    let first = fixture
        .healthlake
        .start_import_job(REGION, &request)
        .await
        .expect("first start");
    let second = fixture
        .healthlake
        .start_import_job(REGION, &request)
        .await
        .expect("retried start");
    assert_eq!(first.job_id, second.job_id);
    assert_eq!(fixture.emulator.state().jobs.len(), 1);
}

#[tokio::test]
async fn failed_and_partly_failed_imports_report_why() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "4c5d6e7f-0000-4000-8000-000000000003", "flaky").await;
    fixture.emulator.inject(Fault::JobOutcome {
        job_kind: Some(JobKind::Import),
        job_name: Some("broken".to_owned()),
        outcome: InjectedJobOutcome::Failed {
            message: "the input bucket does not exist".to_owned(),
        },
    });
    fixture.emulator.inject(Fault::JobOutcome {
        job_kind: Some(JobKind::Import),
        job_name: Some("partial".to_owned()),
        outcome: InjectedJobOutcome::CompletedWithErrors {
            resources_with_error: 7,
            files_with_error: 2,
        },
    });
    let broken = fixture
        .healthlake
        .start_import_job(
            REGION,
            &import_request(
                "7b000000-0000-4000-8000-000000000001",
                &datastore.id,
                "broken",
            ),
        )
        .await
        .expect("start succeeds");
    let partial = fixture
        .healthlake
        .start_import_job(
            REGION,
            &import_request(
                "7b000000-0000-4000-8000-000000000002",
                &datastore.id,
                "partial",
            ),
        )
        .await
        .expect("start succeeds");
    // One job runs per datastore at a time; give both all the time they need.
    fixture.emulator.advance_clock(Duration::from_secs(600));

    let broken = fixture
        .healthlake
        .describe_import_job(REGION, &datastore.id, &broken.job_id)
        .await
        .expect("describe succeeds");
    assert_eq!(broken.status, JobStatus::Failed);
    assert_eq!(
        broken.message.as_deref(),
        Some("the input bucket does not exist")
    );

    let partial = fixture
        .healthlake
        .describe_import_job(REGION, &datastore.id, &partial.job_id)
        .await
        .expect("describe succeeds");
    assert_eq!(partial.status, JobStatus::CompletedWithErrors);
    let progress = partial.progress.expect("progress reported");
    assert_eq!(progress.resources_with_customer_error, Some(7));
    assert_eq!(progress.files_read_with_customer_error, Some(2));
}

#[tokio::test]
async fn an_export_job_goes_from_submitted_to_completed() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "4c5d6e7f-0000-4000-8000-000000000004", "exports").await;
    let started = fixture
        .healthlake
        .start_export_job(
            REGION,
            &export_request(
                "8c000000-0000-4000-8000-000000000001",
                &datastore.id,
                "weekly",
            ),
        )
        .await
        .expect("start export succeeds");
    assert_eq!(started.status, JobStatus::Submitted);
    let sent = &fixture.emulator.calls_of(Operation::StartFhirExportJob)[0].parameters;
    assert_eq!(sent["ClientToken"], "8c000000-0000-4000-8000-000000000001");
    assert_eq!(
        sent["OutputDataConfig"]["S3Configuration"]["S3Uri"],
        "s3://example-output/results/"
    );
    assert_eq!(sent["DataAccessRoleArn"], crate::support::ROLE_ARN);

    let submitted = fixture
        .healthlake
        .describe_export_job(REGION, &datastore.id, &started.job_id)
        .await
        .expect("describe export succeeds");
    assert_eq!(submitted.status, JobStatus::Submitted);
    assert_eq!(submitted.job_name.as_deref(), Some("weekly"));
    assert_eq!(submitted.progress, None, "exports have no progress report");

    fixture.emulator.advance_clock(Duration::from_secs(60));
    let completed = fixture
        .healthlake
        .describe_export_job(REGION, &datastore.id, &started.job_id)
        .await
        .expect("describe export succeeds");
    assert_eq!(completed.status, JobStatus::Completed);
    assert!(completed.end_time.is_some());
}
