//! Datastore operations through the adapter: what goes in comes back out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use healthlake_operator::api::{
    AuthorizationStrategy, CmkType, DatastoreStatus, ErrorCategory, PreloadDataType,
};
use healthlake_operator::emulator::{
    EmulatorConfig, ErrorCategory as InjectedCategory, Fault, Operation,
};
use healthlake_operator::healthlake::{Encryption, HealthLake, IdentityProvider};

use crate::support::{REGION, active_datastore, create_request, fixture, fixture_with};

const SMART_METADATA: &str = r#"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/authorize","token_endpoint":"https://idp.example.com/token","capabilities":["launch-ehr","client-public"]}"#;
const LAMBDA_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:decode-token";

#[tokio::test]
async fn every_create_setting_reaches_aws_and_is_reported_back() {
    let fixture = fixture().await;
    let mut request = create_request("0b8f6a52-1c1d-4a8e-9d35-6f7e0c2b1a90", "patients");
    request.encryption = Some(Encryption {
        cmk_type: CmkType::CustomerManagedKmsKey,
        kms_key_id: Some("alias/healthlake-patients".to_owned()),
    });
    request.preload = Some(PreloadDataType::Synthea);
    request.identity_provider = Some(IdentityProvider {
        authorization_strategy: AuthorizationStrategy::SmartOnFhir,
        fine_grained_authorization_enabled: Some(true),
        metadata: Some(SMART_METADATA.to_owned()),
        idp_lambda_arn: Some(LAMBDA_ARN.to_owned()),
    });
    request.tags.insert("team".to_owned(), "records".to_owned());

    let created = fixture
        .healthlake
        .create_datastore(REGION, &request)
        .await
        .expect("create succeeds");
    assert_eq!(created.status, DatastoreStatus::Creating);
    assert_eq!(
        created.arn,
        format!(
            "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/{}",
            created.id
        )
    );
    assert!(created.endpoint.contains(&created.id));

    // What the emulator received, member by member, as AWS would.
    let sent = &fixture.emulator.calls_of(Operation::CreateFhirDatastore)[0].parameters;
    assert_eq!(sent["ClientToken"], "0b8f6a52-1c1d-4a8e-9d35-6f7e0c2b1a90");
    assert_eq!(sent["DatastoreName"], "patients");
    assert_eq!(sent["DatastoreTypeVersion"], "R4");
    assert_eq!(
        sent["SseConfiguration"]["KmsEncryptionConfig"]["CmkType"],
        "CUSTOMER_MANAGED_KMS_KEY"
    );
    assert_eq!(sent["PreloadDataConfig"]["PreloadDataType"], "SYNTHEA");
    assert_eq!(
        sent["IdentityProviderConfiguration"]["Metadata"],
        SMART_METADATA
    );

    let described = fixture
        .healthlake
        .describe_datastore(REGION, &created.id)
        .await
        .expect("describe succeeds");
    assert_eq!(described.id, created.id);
    assert_eq!(described.arn, created.arn);
    assert_eq!(described.endpoint, created.endpoint);
    assert_eq!(described.name.as_deref(), Some("patients"));
    assert_eq!(described.status, DatastoreStatus::Creating);
    assert_eq!(described.type_version, "R4");
    assert!(described.created_at.is_some());
    assert_eq!(described.error_cause, None);
    assert_eq!(
        described.encryption,
        Some((
            "CUSTOMER_MANAGED_KMS_KEY".to_owned(),
            Some("alias/healthlake-patients".to_owned())
        ))
    );
    assert_eq!(described.preload.as_deref(), Some("SYNTHEA"));
    let identity_provider = described
        .identity_provider
        .expect("identity provider reported");
    assert_eq!(identity_provider.authorization_strategy, "SMART_ON_FHIR");
    assert_eq!(
        identity_provider.fine_grained_authorization_enabled,
        Some(true)
    );
    assert_eq!(
        identity_provider.idp_lambda_arn.as_deref(),
        Some(LAMBDA_ARN)
    );
    let metadata: serde_json::Value = serde_json::from_str(
        identity_provider
            .metadata
            .as_deref()
            .expect("metadata reported"),
    )
    .expect("metadata is JSON");
    assert_eq!(
        metadata,
        serde_json::from_str::<serde_json::Value>(SMART_METADATA).expect("test JSON")
    );

    let tags = fixture
        .healthlake
        .list_tags(REGION, &created.arn)
        .await
        .expect("list tags succeeds");
    assert_eq!(tags, request.tags);

    fixture.emulator.advance_clock(Duration::from_secs(5));
    let active = fixture
        .healthlake
        .describe_datastore(REGION, &created.id)
        .await
        .expect("describe succeeds");
    assert_eq!(active.status, DatastoreStatus::Active);
}

#[tokio::test]
async fn creating_twice_with_one_client_token_makes_one_datastore() {
    let fixture = fixture().await;
    let request = create_request("5d1c7e0a-0000-4000-8000-000000000001", "once");
    let first = fixture
        .healthlake
        .create_datastore(REGION, &request)
        .await
        .expect("first create succeeds");
    let second = fixture
        .healthlake
        .create_datastore(REGION, &request)
        .await
        .expect("the retried create succeeds");
    assert_eq!(first.id, second.id);
    let listed = fixture
        .healthlake
        .list_datastores(REGION, Some("once"))
        .await
        .expect("list succeeds");
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn listing_follows_every_page_and_filters_by_name() {
    let fixture = fixture_with(EmulatorConfig::for_tests(), |mut settings| {
        settings.list_page_size = Some(2);
        settings
    })
    .await;
    let mut created = BTreeSet::new();
    for index in 0..5 {
        let token = format!("9a0e3c1b-0000-4000-8000-00000000000{index}");
        let summary = fixture
            .healthlake
            .create_datastore(REGION, &create_request(&token, &format!("paged-{index}")))
            .await
            .expect("create succeeds");
        created.insert(summary.id);
    }

    let listed = fixture
        .healthlake
        .list_datastores(REGION, None)
        .await
        .expect("list succeeds");
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|datastore| datastore.id.clone())
        .collect();
    assert_eq!(listed.len(), 5, "no datastore listed twice");
    assert_eq!(listed_ids, created);
    assert_eq!(
        fixture.calls_of(Operation::ListFhirDatastores),
        3,
        "pages of 2, 2 and 1"
    );

    let by_name = fixture
        .healthlake
        .list_datastores(REGION, Some("paged-3"))
        .await
        .expect("list by name succeeds");
    assert_eq!(
        by_name
            .iter()
            .map(|datastore| datastore.name.as_deref())
            .collect::<Vec<_>>(),
        [Some("paged-3")]
    );
    let none = fixture
        .healthlake
        .list_datastores(REGION, Some("absent"))
        .await
        .expect("list by an unused name succeeds");
    assert!(none.is_empty());
}

#[tokio::test]
async fn tags_are_added_overwritten_and_removed() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "3f6b2d1e-0000-4000-8000-000000000001", "tagged").await;
    let owner = fixture
        .healthlake
        .list_tags(REGION, &datastore.arn)
        .await
        .expect("list tags succeeds");

    let added = BTreeMap::from([
        ("team".to_owned(), "records".to_owned()),
        ("cost-center".to_owned(), "42".to_owned()),
    ]);
    fixture
        .healthlake
        .tag_resource(REGION, &datastore.arn, &added)
        .await
        .expect("tag succeeds");
    let changed = BTreeMap::from([("team".to_owned(), "analytics".to_owned())]);
    fixture
        .healthlake
        .tag_resource(REGION, &datastore.arn, &changed)
        .await
        .expect("retag succeeds");
    fixture
        .healthlake
        .untag_resource(REGION, &datastore.arn, &["cost-center".to_owned()])
        .await
        .expect("untag succeeds");

    let mut expected = owner;
    expected.insert("team".to_owned(), "analytics".to_owned());
    let tags = fixture
        .healthlake
        .list_tags(REGION, &datastore.arn)
        .await
        .expect("list tags succeeds");
    assert_eq!(tags, expected);
}

#[tokio::test]
async fn deleting_goes_through_deleting_to_deleted() {
    let fixture = fixture().await;
    let datastore =
        active_datastore(&fixture, "7c2e9b4a-0000-4000-8000-000000000001", "doomed").await;
    let deleted = fixture
        .healthlake
        .delete_datastore(REGION, &datastore.id)
        .await
        .expect("delete succeeds");
    assert_eq!(deleted.id, datastore.id);
    assert_eq!(deleted.arn, datastore.arn);
    assert_eq!(deleted.status, DatastoreStatus::Deleting);

    fixture.emulator.advance_clock(Duration::from_secs(60));
    let described = fixture
        .healthlake
        .describe_datastore(REGION, &datastore.id)
        .await
        .expect("a deleted datastore is still described");
    assert_eq!(described.status, DatastoreStatus::Deleted);
}

#[tokio::test]
async fn a_failed_creation_reports_its_error_cause() {
    let fixture = fixture().await;
    fixture.emulator.inject(Fault::DatastoreCreationFailure {
        datastore_name: Some("broken".to_owned()),
        error_category: InjectedCategory::NonRetryable,
        error_message: "the KMS key is disabled".to_owned(),
    });
    let created = fixture
        .healthlake
        .create_datastore(
            REGION,
            &create_request("1e2d3c4b-0000-4000-8000-000000000001", "broken"),
        )
        .await
        .expect("create succeeds");
    fixture.emulator.advance_clock(Duration::from_secs(60));
    let described = fixture
        .healthlake
        .describe_datastore(REGION, &created.id)
        .await
        .expect("describe succeeds");
    assert_eq!(described.status, DatastoreStatus::CreateFailed);
    let cause = described.error_cause.expect("an error cause");
    assert_eq!(cause.error_category, Some(ErrorCategory::NonRetryable));
    assert_eq!(
        cause.error_message.as_deref(),
        Some("the KMS key is disabled")
    );
}
