//! `--state-file`: state survives a restart; a damaged file is refused, not overwritten.

use std::time::Duration;

use aws_sdk_healthlake::types::{DatastoreStatus, JobStatus, Tag};
use healthlake_operator::emulator::{self, EmulatorConfig, EmulatorError};

use crate::support::{active_datastore, fixture_with, start_import};

#[tokio::test]
async fn datastores_jobs_tags_and_the_clock_survive_a_restart() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("emulator-state.json");
    let config = EmulatorConfig::for_tests().with_state_file(&path);

    let first = fixture_with(config.clone()).await;
    let datastore = active_datastore(&first, "durable").await;
    let arn = format!("arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{datastore}");
    first
        .client
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            Tag::builder()
                .key("owner")
                .value("ops")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("tag");
    let job = start_import(&first.client, &datastore, "survivor").await;
    first.emulator.advance_clock(Duration::from_secs(3));
    let clock_before = first.emulator.now();
    first.emulator.shutdown().await.expect("clean shutdown");

    let leftovers: Vec<_> = std::fs::read_dir(directory.path())
        .expect("read directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(leftovers, vec!["emulator-state.json".to_string()]);

    let second = fixture_with(config).await;
    assert_eq!(second.emulator.now(), clock_before);
    assert_eq!(
        crate::support::datastore_status(&second.client, &datastore).await,
        DatastoreStatus::Active
    );
    let tags = second
        .client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags")
        .tags
        .unwrap_or_default();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].key, "owner");
    second.emulator.advance_clock(Duration::from_secs(60));
    let status = second
        .client
        .describe_fhir_import_job()
        .datastore_id(&datastore)
        .job_id(&job)
        .send()
        .await
        .expect("the job is still known")
        .import_job_properties
        .expect("properties")
        .job_status;
    assert_eq!(status, JobStatus::Completed);
}

#[tokio::test]
async fn a_damaged_state_file_is_refused_and_left_alone() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("state.json");
    std::fs::write(&path, "{not json").expect("write");
    let result = emulator::start(
        EmulatorConfig::for_tests().with_state_file(&path),
        "127.0.0.1:0",
    )
    .await;
    assert!(matches!(result, Err(EmulatorError::StateFormat { .. })));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "{not json");
}

#[tokio::test]
async fn a_non_loopback_address_is_refused() {
    let result = emulator::start(EmulatorConfig::for_tests(), "0.0.0.0:0").await;
    assert!(matches!(result, Err(EmulatorError::Address { .. })));
}
