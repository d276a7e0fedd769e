//! Fixtures: an emulator with the SDK adapter aimed at it, and requests with valid defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use healthlake_operator::api::{DatastoreStatus, FhirVersion};
use healthlake_operator::emulator::{self, EmulatorConfig, Operation, RunningEmulator};
use healthlake_operator::healthlake::sdk::{SdkHealthLake, SdkSettings};
use healthlake_operator::healthlake::{
    CreateDatastore, DatastoreSummary, HealthLake, S3Output, StartExportJob, StartImportJob,
};

/// The emulator's region.
pub const REGION: &str = "us-east-1";

/// A valid role ARN.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/HealthLakeJobs";

/// A running emulator and the adapter aimed at it.
pub struct Fixture {
    pub emulator: RunningEmulator,
    pub healthlake: SdkHealthLake,
}

impl Fixture {
    /// How many calls of `operation` reached the emulator.
    pub fn calls_of(&self, operation: Operation) -> usize {
        self.emulator.calls_of(operation).len()
    }
}

/// An emulator for tests (frozen clock, fast profile, no quotas) and the adapter.
pub async fn fixture() -> Fixture {
    fixture_with(EmulatorConfig::for_tests(), |settings| settings).await
}

/// An emulator with this configuration and the adapter with these settings.
pub async fn fixture_with(
    config: EmulatorConfig,
    settings: impl FnOnce(SdkSettings) -> SdkSettings,
) -> Fixture {
    let emulator = emulator::start(config, "127.0.0.1:0")
        .await
        .expect("the emulator starts on a free loopback port");
    let settings = settings(SdkSettings::new(REGION).with_endpoint_url(emulator.endpoint_url()));
    let healthlake = SdkHealthLake::with_static_credentials(settings);
    Fixture {
        emulator,
        healthlake,
    }
}

/// A create request with nothing optional but tags.
pub fn create_request(client_token: &str, name: &str) -> CreateDatastore {
    CreateDatastore {
        client_token: client_token.to_owned(),
        name: name.to_owned(),
        type_version: FhirVersion::R4,
        encryption: None,
        preload: None,
        identity_provider: None,
        tags: BTreeMap::from([(
            "healthlake.fhir-operator.io/owner-uid".to_owned(),
            client_token.to_owned(),
        )]),
    }
}

/// Creates a datastore and advances the emulator's clock until it is ACTIVE.
pub async fn active_datastore(
    fixture: &Fixture,
    client_token: &str,
    name: &str,
) -> DatastoreSummary {
    let created = fixture
        .healthlake
        .create_datastore(REGION, &create_request(client_token, name))
        .await
        .expect("creating a datastore succeeds");
    fixture.emulator.advance_clock(Duration::from_secs(60));
    let described = fixture
        .healthlake
        .describe_datastore(REGION, &created.id)
        .await
        .expect("describing the datastore succeeds");
    assert_eq!(described.status, DatastoreStatus::Active);
    created
}

/// The S3 output every job writes to.
pub fn output() -> S3Output {
    S3Output {
        s3_uri: "s3://example-output/results/".to_owned(),
        kms_key_id: "alias/output".to_owned(),
    }
}

/// An import job request.
pub fn import_request(client_token: &str, datastore_id: &str, job_name: &str) -> StartImportJob {
    StartImportJob {
        client_token: client_token.to_owned(),
        datastore_id: datastore_id.to_owned(),
        job_name: job_name.to_owned(),
        input_s3_uri: "s3://example-input/2026/".to_owned(),
        output: output(),
        data_access_role_arn: ROLE_ARN.to_owned(),
        validation_level: None,
    }
}

/// An export job request.
pub fn export_request(client_token: &str, datastore_id: &str, job_name: &str) -> StartExportJob {
    StartExportJob {
        client_token: client_token.to_owned(),
        datastore_id: datastore_id.to_owned(),
        job_name: job_name.to_owned(),
        output: output(),
        data_access_role_arn: ROLE_ARN.to_owned(),
    }
}
