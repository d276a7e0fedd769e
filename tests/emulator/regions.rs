//! Regions are apart: the region of a call is its SigV4 credential scope, and each region has
//! its own datastores, jobs, ClientTokens and quotas; ARNs and endpoints carry the region.

use std::time::Duration;

use aws_sdk_healthlake::Client;
use aws_sdk_healthlake::config::retry::RetryConfig;
use aws_sdk_healthlake::types::{DatastoreStatus, FhirVersion};
use healthlake_operator::emulator::{EmulatorConfig, Operation, Quotas, RunningEmulator};

use crate::support::{create_datastore, error_code, fixture, fixture_with};

const WEST: &str = "eu-west-1";

/// A client built for `region` (it signs for that region), without retries.
fn client_in(emulator: &RunningEmulator, region: &str) -> Client {
    Client::from_conf(
        emulator
            .sdk_config_builder_in(region)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

#[tokio::test]
async fn a_datastore_created_in_eu_west_1_lives_there_only() {
    let fixture = fixture().await;
    let west = client_in(&fixture.emulator, WEST);
    let created = west
        .create_fhir_datastore()
        .datastore_name("ehr-eu")
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect("create in eu-west-1");
    let id = created.datastore_id.clone();
    assert_eq!(
        created.datastore_arn,
        format!("arn:aws:healthlake:eu-west-1:123456789012:datastore/fhir/{id}")
    );
    assert_eq!(
        created.datastore_endpoint,
        format!("https://healthlake.eu-west-1.amazonaws.com/datastore/{id}/r4/")
    );

    // us-east-1 (the fixture's client) neither lists nor describes it.
    let listed = fixture
        .client
        .list_fhir_datastores()
        .send()
        .await
        .expect("list in us-east-1")
        .datastore_properties_list;
    assert!(listed.is_empty(), "{listed:?}");
    let wrong_region = fixture
        .client
        .describe_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect_err("the datastore is not in us-east-1");
    assert_eq!(
        error_code(&wrong_region).as_deref(),
        Some("ResourceNotFoundException")
    );
    let wrong_region = fixture
        .client
        .delete_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect_err("nor can it be deleted from there");
    assert_eq!(
        error_code(&wrong_region).as_deref(),
        Some("ResourceNotFoundException")
    );
    let wrong_region = fixture
        .client
        .list_tags_for_resource()
        .resource_arn(&created.datastore_arn)
        .send()
        .await
        .expect_err("its ARN names eu-west-1, the call is signed for us-east-1");
    assert_eq!(
        error_code(&wrong_region).as_deref(),
        Some("ResourceNotFoundException")
    );

    // eu-west-1 answers for it, with its ARN and endpoint, and its lifecycle runs.
    fixture.emulator.advance_clock(Duration::from_secs(60));
    let properties = west
        .describe_fhir_datastore()
        .datastore_id(&id)
        .send()
        .await
        .expect("describe in eu-west-1")
        .datastore_properties
        .expect("properties");
    assert_eq!(properties.datastore_status, DatastoreStatus::Active);
    assert_eq!(properties.datastore_arn, created.datastore_arn);
    assert_eq!(properties.datastore_endpoint, created.datastore_endpoint);
    west.list_tags_for_resource()
        .resource_arn(&created.datastore_arn)
        .send()
        .await
        .expect("its ARN resolves in its own region");

    assert!(fixture.emulator.state().datastores.is_empty());
    assert!(fixture.emulator.state_in(WEST).datastores.contains_key(&id));
    assert_eq!(
        fixture.emulator.regions(),
        vec![WEST.to_string(), "us-east-1".to_string()]
    );
    let calls = fixture
        .emulator
        .calls_of_in(WEST, Operation::CreateFhirDatastore);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].region.as_deref(), Some(WEST));
}

#[tokio::test]
async fn the_same_client_token_in_two_regions_creates_two_datastores() {
    let fixture = fixture().await;
    let west = client_in(&fixture.emulator, WEST);
    let create = |client: Client| async move {
        client
            .create_fhir_datastore()
            .datastore_name("twin")
            .datastore_type_version(FhirVersion::R4)
            .client_token("same-token")
            .send()
            .await
            .expect("create")
            .datastore_id
    };
    let east_id = create(fixture.client.clone()).await;
    let west_id = create(west.clone()).await;
    assert_ne!(east_id, west_id, "tokens are kept per region");
    assert_eq!(
        create(west).await,
        west_id,
        "a replay in a region is idempotent"
    );
}

#[tokio::test]
async fn request_quotas_are_counted_per_region() {
    let fixture = fixture_with(EmulatorConfig::for_tests().with_quotas(Quotas::Default)).await;
    let east = client_in(&fixture.emulator, "us-east-1");
    let west = client_in(&fixture.emulator, WEST);
    let create = |client: &Client| {
        client
            .create_fhir_datastore()
            .datastore_type_version(FhirVersion::R4)
            .send()
    };
    create(&east)
        .await
        .expect("us-east-1's one create a minute");
    let throttled = create(&east).await.expect_err("a second in us-east-1");
    assert_eq!(
        error_code(&throttled).as_deref(),
        Some("ThrottlingException")
    );
    create(&west)
        .await
        .expect("eu-west-1 has its own one create a minute");
}

#[tokio::test]
async fn the_data_store_quota_is_counted_per_region() {
    let fixture = fixture_with(EmulatorConfig::for_tests().with_max_datastores(Some(1))).await;
    let west = client_in(&fixture.emulator, WEST);
    create_datastore(&fixture.client, "east").await;
    create_datastore(&west, "west").await;
    let refused = fixture
        .client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect_err("us-east-1 is full");
    assert_eq!(error_code(&refused).as_deref(), Some("ValidationException"));
}

#[tokio::test]
async fn a_request_without_a_region_in_its_credential_scope_is_refused() {
    let fixture = fixture().await;
    let (status, _, body) = crate::support::raw_request(
        fixture.emulator.local_addr(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", "HealthLake.ListFHIRDatastores"),
            ("Content-Type", "application/x-amz-json-1.0"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20261130, SignedHeaders=host, Signature=00",
            ),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("IncompleteSignatureException"), "{body}");
}

#[tokio::test]
async fn the_admin_state_shows_each_region() {
    let fixture = fixture().await;
    let west = client_in(&fixture.emulator, WEST);
    let id = create_datastore(&west, "west").await;
    let (status, state) = crate::support::admin(&fixture.emulator, "GET", "/state", "").await;
    assert_eq!(status, 200);
    assert_eq!(state["default_region"], "us-east-1");
    assert!(
        state["regions"][WEST]["datastores"][&id].is_object(),
        "{state}"
    );
    assert_eq!(state["regions"][WEST]["quotas"]["datastores"], 1);
    assert_eq!(state["regions"]["us-east-1"]["quotas"]["datastores"], 0);
}
