//! Datastore operations: lifecycle, listing, deletion rules, tags.

use std::time::Duration;

use aws_sdk_healthlake::types::{DatastoreStatus, FhirVersion, Tag};

use crate::support::{active_datastore, create_datastore, datastore_status, error_code, fixture};

#[tokio::test]
async fn a_created_datastore_becomes_active_when_its_creation_time_has_passed() {
    let fixture = fixture().await;
    let created = fixture
        .client
        .create_fhir_datastore()
        .datastore_name("patients")
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect("create succeeds");
    assert_eq!(created.datastore_status, DatastoreStatus::Creating);
    assert_eq!(created.datastore_id.len(), 32);
    assert!(created.datastore_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        created.datastore_arn,
        format!(
            "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{}",
            created.datastore_id
        )
    );
    assert_eq!(
        created.datastore_endpoint,
        format!(
            "https://healthlake.us-east-1.amazonaws.com/datastore/{}/r4/",
            created.datastore_id
        )
    );

    fixture.emulator.advance_clock(Duration::from_secs(4));
    assert_eq!(
        datastore_status(&fixture.client, &created.datastore_id).await,
        DatastoreStatus::Creating
    );
    fixture.emulator.advance_clock(Duration::from_secs(1));
    let properties = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id(&created.datastore_id)
        .send()
        .await
        .expect("describe succeeds")
        .datastore_properties
        .expect("properties");
    assert_eq!(properties.datastore_status, DatastoreStatus::Active);
    assert_eq!(properties.datastore_name.as_deref(), Some("patients"));
    assert_eq!(properties.datastore_type_version, FhirVersion::R4);
    assert!(properties.created_at.is_some());
}

#[tokio::test]
async fn deleting_moves_through_deleting_to_deleted_and_deleted_is_final() {
    let fixture = fixture().await;
    let id = active_datastore(&fixture, "to-delete").await;
    let deleted = fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect("delete succeeds");
    assert_eq!(deleted.datastore_status, DatastoreStatus::Deleting);

    let again = fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect_err("a second delete while DELETING is refused");
    assert_eq!(error_code(&again).as_deref(), Some("ConflictException"));

    fixture.emulator.advance_clock(Duration::from_secs(5));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Deleted
    );
    fixture.emulator.advance_clock(Duration::from_secs(600));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Deleted
    );
}

#[tokio::test]
async fn deleting_a_creating_datastore_is_a_conflict() {
    let fixture = fixture().await;
    let id = create_datastore(&fixture.client, "young").await;
    let error = fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect_err("delete while CREATING is refused");
    assert_eq!(error_code(&error).as_deref(), Some("ConflictException"));
}

#[tokio::test]
async fn an_unknown_datastore_is_not_found() {
    let fixture = fixture().await;
    let error = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect_err("unknown datastore");
    assert!(
        error
            .as_service_error()
            .is_some_and(|error| error.is_resource_not_found_exception())
    );
}

#[tokio::test]
async fn tags_given_at_creation_and_later_are_listed_and_removable() {
    let fixture = fixture().await;
    let created = fixture
        .client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .tags(
            Tag::builder()
                .key("team")
                .value("clinical")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("create succeeds");
    let arn = created.datastore_arn;
    fixture
        .client
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            Tag::builder()
                .key("env")
                .value("test")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("tag succeeds");
    fixture
        .client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .expect("untag succeeds");
    let tags = fixture
        .client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("list tags succeeds")
        .tags
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = tags.into_iter().map(|tag| (tag.key, tag.value)).collect();
    assert_eq!(pairs, vec![("env".to_string(), "test".to_string())]);

    let unknown = format!(
        "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{}",
        "f".repeat(32)
    );
    let error = fixture
        .client
        .list_tags_for_resource()
        .resource_arn(unknown)
        .send()
        .await
        .expect_err("unknown arn");
    assert_eq!(
        error_code(&error).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn listing_filters_by_status_and_name() {
    let fixture = fixture().await;
    let first = active_datastore(&fixture, "alpha").await;
    let second = create_datastore(&fixture.client, "beta").await;
    let active = fixture
        .client
        .list_fhir_datastores()
        .filter(
            aws_sdk_healthlake::types::DatastoreFilter::builder()
                .datastore_status(DatastoreStatus::Active)
                .build(),
        )
        .send()
        .await
        .expect("list succeeds")
        .datastore_properties_list;
    let ids: Vec<&str> = active.iter().map(|d| d.datastore_id.as_str()).collect();
    assert_eq!(ids, vec![first.as_str()]);
    let named = fixture
        .client
        .list_fhir_datastores()
        .filter(
            aws_sdk_healthlake::types::DatastoreFilter::builder()
                .datastore_name("beta")
                .build(),
        )
        .send()
        .await
        .expect("list succeeds")
        .datastore_properties_list;
    let ids: Vec<&str> = named.iter().map(|d| d.datastore_id.as_str()).collect();
    assert_eq!(ids, vec![second.as_str()]);
}

#[tokio::test]
async fn the_realistic_profile_takes_aws_like_minutes() {
    use healthlake_operator::emulator::{EmulatorConfig, Profile};
    let fixture =
        crate::support::fixture_with(EmulatorConfig::for_tests().with_profile(Profile::Realistic))
            .await;
    let id = create_datastore(&fixture.client, "slow").await;
    fixture.emulator.advance_clock(Duration::from_secs(24 * 60));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Creating
    );
    fixture.emulator.advance_clock(Duration::from_secs(60));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Active
    );
}

#[tokio::test]
async fn deleted_datastores_can_be_kept_forever() {
    use healthlake_operator::emulator::EmulatorConfig;
    let fixture =
        crate::support::fixture_with(EmulatorConfig::for_tests().with_deleted_retention(None))
            .await;
    let id = active_datastore(&fixture, "kept").await;
    fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect("delete");
    fixture
        .emulator
        .advance_clock(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Deleted
    );
}

#[tokio::test]
async fn an_account_id_that_is_not_twelve_digits_is_refused() {
    use healthlake_operator::emulator::{self, EmulatorConfig, EmulatorError};
    let result = emulator::start(
        EmulatorConfig::for_tests().with_account_id("12345"),
        "127.0.0.1:0",
    )
    .await;
    assert!(matches!(result, Err(EmulatorError::Config(_))));
}
