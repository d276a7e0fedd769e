//! HealthLake's account-wide quotas per region: at most 10 datastores that are not DELETED,
//! and one running import and one running export job at a time.

use std::time::Duration;

use aws_sdk_healthlake::types::{DatastoreStatus, FhirVersion, JobStatus};
use healthlake_operator::emulator::{DEFAULT_MAX_DATASTORES, EmulatorConfig, JobConcurrency};

use crate::support::{
    Fixture, active_datastore, client_without_retries, datastore_status, error_code, fixture,
    fixture_with, start_export, start_import,
};

#[test]
fn aws_defaults_apply_unless_tests_lift_the_data_store_quota() {
    let default = EmulatorConfig::default();
    assert_eq!(default.max_datastores, Some(DEFAULT_MAX_DATASTORES));
    assert_eq!(DEFAULT_MAX_DATASTORES, 10);
    assert_eq!(default.job_concurrency, JobConcurrency::Account);
    let tests = EmulatorConfig::for_tests();
    assert_eq!(tests.max_datastores, None);
    assert_eq!(tests.job_concurrency, JobConcurrency::Account);
}

#[tokio::test]
async fn the_eleventh_datastore_is_refused_until_one_is_deleted() {
    let fixture =
        fixture_with(EmulatorConfig::for_tests().with_max_datastores(Some(DEFAULT_MAX_DATASTORES)))
            .await;
    let client = client_without_retries(&fixture.emulator);
    let create = |token: String| {
        client
            .create_fhir_datastore()
            .datastore_name(format!("ehr-{token}"))
            .datastore_type_version(FhirVersion::R4)
            .client_token(token)
            .send()
    };
    let mut ids = Vec::new();
    for index in 0..10 {
        ids.push(
            create(format!("token-{index}"))
                .await
                .expect("within the quota")
                .datastore_id,
        );
    }
    let refused = create("token-10".to_string())
        .await
        .expect_err("the eleventh datastore");
    assert_eq!(error_code(&refused).as_deref(), Some("ValidationException"));
    let message = refused.into_service_error().to_string();
    assert!(
        message.contains(
            "data store quota exceeded: the account already has 10 data stores in us-east-1 (the quota is 10); delete a data store or request a quota increase"
        ),
        "{message}"
    );

    let replayed = create("token-3".to_string())
        .await
        .expect("a replay of a created datastore is answered even at the quota");
    assert_eq!(replayed.datastore_id, ids[3]);

    let (_, state) = crate::support::admin(&fixture.emulator, "GET", "/state", "").await;
    assert_eq!(state["regions"]["us-east-1"]["quotas"]["datastores"], 10);
    assert_eq!(
        state["regions"]["us-east-1"]["quotas"]["max_datastores"],
        10
    );

    fixture.emulator.advance_clock(Duration::from_secs(60));
    client
        .delete_fhir_datastore()
        .datastore_id(&ids[0])
        .send()
        .await
        .expect("delete one");
    let still_counted = create("token-10".to_string())
        .await
        .expect_err("a DELETING datastore still counts");
    assert_eq!(
        error_code(&still_counted).as_deref(),
        Some("ValidationException")
    );
    fixture.emulator.advance_clock(Duration::from_secs(60));
    assert_eq!(
        datastore_status(&client, &ids[0]).await,
        DatastoreStatus::Deleted
    );
    let eleventh = create("token-10".to_string())
        .await
        .expect("a DELETED datastore frees its slot");
    assert!(!ids.contains(&eleventh.datastore_id));
}

async fn import_status(fixture: &Fixture, datastore: &str, job: &str) -> (JobStatus, Option<f64>) {
    let properties = fixture
        .client
        .describe_fhir_import_job()
        .datastore_id(datastore)
        .job_id(job)
        .send()
        .await
        .expect("describe import")
        .import_job_properties
        .expect("properties");
    (
        properties.job_status,
        properties.end_time.map(|end| end.as_secs_f64()),
    )
}

async fn export_status(fixture: &Fixture, datastore: &str, job: &str) -> JobStatus {
    fixture
        .client
        .describe_fhir_export_job()
        .datastore_id(datastore)
        .job_id(job)
        .send()
        .await
        .expect("describe export")
        .export_job_properties
        .expect("properties")
        .job_status
}

#[tokio::test]
async fn six_imports_over_three_datastores_run_one_at_a_time_in_submission_order() {
    let fixture = fixture().await;
    let mut datastores = Vec::new();
    for name in ["one", "two", "three"] {
        datastores.push(active_datastore(&fixture, name).await);
    }
    let mut jobs = Vec::new();
    for index in 0..6 {
        let datastore = datastores[index % 3].clone();
        let job = start_import(&fixture.client, &datastore, &format!("import-{index}")).await;
        jobs.push((datastore, job));
    }
    fixture.emulator.advance_clock(Duration::from_secs(2));
    let mut statuses = Vec::new();
    for (datastore, job) in &jobs {
        statuses.push(import_status(&fixture, datastore, job).await.0);
    }
    assert_eq!(statuses[0], JobStatus::InProgress);
    assert!(
        statuses[1..]
            .iter()
            .all(|status| *status == JobStatus::Queued),
        "{statuses:?}"
    );

    let mut ends = vec![None; jobs.len()];
    for _ in 0..90 {
        let mut running = 0;
        for (index, (datastore, job)) in jobs.iter().enumerate() {
            let (status, end) = import_status(&fixture, datastore, job).await;
            if status == JobStatus::InProgress {
                running += 1;
            }
            if status == JobStatus::Completed {
                ends[index] = end;
            }
        }
        assert!(running <= 1, "{running} imports run at once in the region");
        if ends.iter().all(Option::is_some) {
            break;
        }
        fixture.emulator.advance_clock(Duration::from_secs(1));
    }
    let ends: Vec<f64> = ends
        .into_iter()
        .map(|end| end.expect("every import completed"))
        .collect();
    assert!(
        ends.windows(2).all(|pair| pair[0] < pair[1]),
        "imports completed out of submission order: {ends:?}"
    );
}

#[tokio::test]
async fn with_datastore_concurrency_imports_on_three_datastores_run_at_once() {
    let fixture =
        fixture_with(EmulatorConfig::for_tests().with_job_concurrency(JobConcurrency::Datastore))
            .await;
    let mut datastores = Vec::new();
    for name in ["one", "two", "three"] {
        datastores.push(active_datastore(&fixture, name).await);
    }
    let mut jobs = Vec::new();
    for datastore in datastores {
        let job = start_import(&fixture.client, &datastore, "import").await;
        jobs.push((datastore, job));
    }
    fixture.emulator.advance_clock(Duration::from_secs(2));
    for (datastore, job) in &jobs {
        assert_eq!(
            import_status(&fixture, datastore, job).await.0,
            JobStatus::InProgress
        );
    }
    let (_, state) = crate::support::admin(&fixture.emulator, "GET", "/state", "").await;
    assert_eq!(state["job_concurrency"], "datastore");
    assert_eq!(
        state["regions"]["us-east-1"]["quotas"]["import_jobs"]["IN_PROGRESS"],
        3
    );
}

#[tokio::test]
async fn an_import_and_an_export_run_at_the_same_time_on_two_datastores() {
    let fixture = fixture().await;
    let first = active_datastore(&fixture, "first").await;
    let second = active_datastore(&fixture, "second").await;
    let import = start_import(&fixture.client, &first, "import").await;
    let export = start_export(&fixture.client, &second, "export").await;
    let second_export = start_export(&fixture.client, &first, "queued").await;
    fixture.emulator.advance_clock(Duration::from_secs(2));
    assert_eq!(
        import_status(&fixture, &first, &import).await.0,
        JobStatus::InProgress
    );
    assert_eq!(
        export_status(&fixture, &second, &export).await,
        JobStatus::InProgress
    );
    assert_eq!(
        export_status(&fixture, &first, &second_export).await,
        JobStatus::Queued,
        "one export at a time in the region"
    );
    let (_, state) = crate::support::admin(&fixture.emulator, "GET", "/state", "").await;
    let quotas = &state["regions"]["us-east-1"]["quotas"];
    assert_eq!(state["job_concurrency"], "account");
    assert_eq!(quotas["import_jobs"]["IN_PROGRESS"], 1);
    assert_eq!(quotas["export_jobs"]["IN_PROGRESS"], 1);
    assert_eq!(quotas["export_jobs"]["QUEUED"], 1);
}
