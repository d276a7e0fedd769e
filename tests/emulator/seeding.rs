//! Datastores "created outside" (by CloudFormation, say), seeded through the admin API and
//! in-process with tags users cannot set; those `aws:` tags cannot be removed either.

use std::collections::BTreeMap;

use aws_sdk_healthlake::Client;
use aws_sdk_healthlake::types::{DatastoreStatus, Tag};
use healthlake_operator::emulator::{self, DatastoreSeed, EmulatorConfig};

use crate::support::{admin, client_without_retries, error_code, fixture};

async fn tags_of(client: &Client, arn: &str) -> BTreeMap<String, String> {
    client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("list tags")
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|tag| (tag.key, tag.value))
        .collect()
}

#[tokio::test]
async fn a_datastore_seeded_over_http_is_described_with_its_aws_tags() {
    let fixture = fixture().await;
    let (status, seeded) = admin(
        &fixture.emulator,
        "POST",
        "/datastores",
        r#"{"name": "ehr-cfn", "tags": {"aws:cloudformation:stack-name": "ehr", "team": "data"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{seeded}");
    let id = seeded["id"].as_str().expect("an id").to_string();
    let arn = format!("arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{id}");
    assert_eq!(seeded["arn"], arn);
    assert_eq!(
        seeded["endpoint"],
        format!("https://healthlake.us-east-1.amazonaws.com/datastore/{id}/r4/")
    );
    assert_eq!(seeded["status"], "ACTIVE");

    let properties = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect("describe the seeded datastore")
        .datastore_properties
        .expect("properties");
    assert_eq!(properties.datastore_status, DatastoreStatus::Active);
    assert_eq!(properties.datastore_name.as_deref(), Some("ehr-cfn"));
    let tags = tags_of(&fixture.client, &arn).await;
    assert_eq!(
        tags.get("aws:cloudformation:stack-name")
            .map(String::as_str),
        Some("ehr")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("data"));
}

#[tokio::test]
async fn a_datastore_seeded_in_process_lives_in_its_region_with_its_status() {
    let running = emulator::start(EmulatorConfig::for_tests(), "127.0.0.1:0")
        .await
        .expect("the emulator starts");
    let id = running
        .seed_datastore(
            DatastoreSeed::new("ehr-eu")
                .in_region("eu-west-1")
                .tag(
                    "aws:cloudformation:stack-id",
                    "arn:aws:cloudformation:eu-west-1:123456789012:stack/ehr/1",
                )
                .with_status(emulator::DatastoreStatus::Creating),
        )
        .expect("seeding succeeds");
    let west = Client::from_conf(running.sdk_config_builder_in("eu-west-1").build());
    let status = |client: Client, id: String| async move {
        client
            .describe_fhir_datastore()
            .datastore_id(id)
            .send()
            .await
            .map(|answer| answer.datastore_properties.map(|p| p.datastore_status))
    };
    assert_eq!(
        status(west.clone(), id.clone())
            .await
            .expect("described in eu-west-1"),
        Some(DatastoreStatus::Creating)
    );
    running.advance_clock(std::time::Duration::from_secs(60));
    assert_eq!(
        status(west, id.clone())
            .await
            .expect("described in eu-west-1"),
        Some(DatastoreStatus::Active),
        "a seeded CREATING datastore becomes ACTIVE like any other"
    );
    let east = Client::from_conf(running.sdk_config_builder().build());
    assert!(status(east, id).await.is_err(), "not in us-east-1");

    let refused = running.seed_datastore(DatastoreSeed::new("bad").in_region("EU_WEST"));
    assert!(refused.is_err());
    let (status, answer) = admin(&running, "POST", "/datastores", r#"{"tags": {}}"#).await;
    assert_eq!(status, 400, "a seed needs a name: {answer}");
}

#[tokio::test]
async fn untagging_an_aws_key_is_refused_as_tagging_one_is() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    let seeded = fixture
        .emulator
        .seed(DatastoreSeed::new("ehr-cfn").tag("aws:cloudformation:stack-name", "ehr"))
        .expect("seeding succeeds");
    let untag = client
        .untag_resource()
        .resource_arn(&seeded.arn)
        .tag_keys("aws:cloudformation:stack-name")
        .send()
        .await
        .expect_err("aws: keys are AWS's");
    assert_eq!(error_code(&untag).as_deref(), Some("ValidationException"));
    assert!(
        untag
            .into_service_error()
            .to_string()
            .contains("reserved prefix aws:")
    );
    let tag = client
        .tag_resource()
        .resource_arn(&seeded.arn)
        .tags(
            Tag::builder()
                .key("aws:cloudformation:stack-name")
                .value("other")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect_err("aws: keys are AWS's");
    assert_eq!(error_code(&tag).as_deref(), Some("ValidationException"));
    assert_eq!(
        tags_of(&client, &seeded.arn)
            .await
            .get("aws:cloudformation:stack-name")
            .map(String::as_str),
        Some("ehr"),
        "the aws: tag is untouched"
    );
}
