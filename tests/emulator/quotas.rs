//! Request-rate quotas answered with ThrottlingException.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_healthlake::types::FhirVersion;
use healthlake_operator::emulator::{EmulatorConfig, Operation, Quotas, Rate};

use crate::support::{client_without_retries, error_code, fixture_with};

#[tokio::test]
async fn create_datastore_is_limited_to_one_per_minute_by_default() {
    let fixture = fixture_with(EmulatorConfig::for_tests().with_quotas(Quotas::Default)).await;
    let client = client_without_retries(&fixture.emulator);
    let create = || {
        client
            .create_fhir_datastore()
            .datastore_type_version(FhirVersion::R4)
            .send()
    };
    create().await.expect("the first create is within quota");
    let throttled = create()
        .await
        .expect_err("the second create within a minute");
    assert_eq!(
        error_code(&throttled).as_deref(),
        Some("ThrottlingException")
    );
    fixture.emulator.advance_clock(Duration::from_secs(59));
    let throttled = create().await.expect_err("still within the minute");
    assert_eq!(
        error_code(&throttled).as_deref(),
        Some("ThrottlingException")
    );
    fixture.emulator.advance_clock(Duration::from_secs(1));
    create()
        .await
        .expect("a minute later the quota has refilled");
    assert_eq!(fixture.emulator.state().datastores.len(), 2);
}

#[tokio::test]
async fn describe_is_limited_to_ten_per_second_by_default() {
    let fixture = fixture_with(EmulatorConfig::for_tests().with_quotas(Quotas::Default)).await;
    let client = client_without_retries(&fixture.emulator);
    for _ in 0..10 {
        client
            .list_fhir_datastores()
            .send()
            .await
            .expect("within ten per second");
    }
    let throttled = client
        .list_fhir_datastores()
        .send()
        .await
        .expect_err("the eleventh call in the same second");
    assert_eq!(
        error_code(&throttled).as_deref(),
        Some("ThrottlingException")
    );
    fixture.emulator.advance_clock(Duration::from_millis(100));
    client
        .list_fhir_datastores()
        .send()
        .await
        .expect("a tenth of a second refills one call");
}

#[tokio::test]
async fn custom_quotas_limit_only_the_named_operations() {
    let rates = BTreeMap::from([(Operation::ListFhirDatastores, Rate::per_minute(2))]);
    let fixture =
        fixture_with(EmulatorConfig::for_tests().with_quotas(Quotas::Custom(rates))).await;
    let client = client_without_retries(&fixture.emulator);
    for _ in 0..2 {
        client
            .list_fhir_datastores()
            .send()
            .await
            .expect("within quota");
    }
    assert!(client.list_fhir_datastores().send().await.is_err());
    for _ in 0..5 {
        client
            .create_fhir_datastore()
            .datastore_type_version(FhirVersion::R4)
            .send()
            .await
            .expect("creation is not limited");
    }
}

#[tokio::test]
async fn the_sdk_retries_throttled_calls_with_its_standard_retry_strategy() {
    let fixture = crate::support::fixture().await;
    fixture
        .emulator
        .inject(healthlake_operator::emulator::Fault::FailNext {
            operation: Operation::ListFhirDatastores,
            error: healthlake_operator::emulator::ErrorType::ThrottlingException,
            count: 2,
            message: None,
        });
    fixture
        .client
        .list_fhir_datastores()
        .send()
        .await
        .expect("the third attempt succeeds");
    let errors: Vec<Option<String>> = fixture
        .emulator
        .calls_of(Operation::ListFhirDatastores)
        .into_iter()
        .map(|call| call.error_type)
        .collect();
    let throttled = Some("ThrottlingException".to_string());
    assert_eq!(errors, vec![throttled.clone(), throttled, None]);
}
