//! Fixtures: an emulator with an SDK client, and requests with valid defaults.

use aws_sdk_healthlake::Client;
use aws_sdk_healthlake::config::retry::RetryConfig;
use aws_sdk_healthlake::types::{
    DatastoreStatus, FhirVersion, InputDataConfig, OutputDataConfig, S3Configuration,
};
use healthlake_operator::emulator::{self, EmulatorConfig, RunningEmulator};
use std::time::Duration;

/// A running emulator and a client aimed at it.
pub struct Fixture {
    pub emulator: RunningEmulator,
    pub client: Client,
}

/// An emulator for tests (frozen clock, fast profile, no quotas) with a client whose retries
/// are on but quick.
pub async fn fixture() -> Fixture {
    fixture_with(EmulatorConfig::for_tests()).await
}

/// An emulator with this configuration and a client with quick retries.
pub async fn fixture_with(config: EmulatorConfig) -> Fixture {
    let emulator = emulator::start(config, "127.0.0.1:0")
        .await
        .expect("the emulator starts on a free loopback port");
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));
    let client = Client::from_conf(emulator.sdk_config_builder().retry_config(retries).build());
    Fixture { emulator, client }
}

/// A client for the same emulator that never retries.
pub fn client_without_retries(emulator: &RunningEmulator) -> Client {
    Client::from_conf(
        emulator
            .sdk_config_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// Creates a datastore and returns its id.
pub async fn create_datastore(client: &Client, name: &str) -> String {
    client
        .create_fhir_datastore()
        .datastore_name(name)
        .datastore_type_version(FhirVersion::R4)
        .send()
        .await
        .expect("creating a datastore succeeds")
        .datastore_id
}

/// The status of a datastore.
pub async fn datastore_status(client: &Client, id: &str) -> DatastoreStatus {
    client
        .describe_fhir_datastore()
        .datastore_id(id)
        .send()
        .await
        .expect("describing the datastore succeeds")
        .datastore_properties
        .expect("properties are present")
        .datastore_status
}

/// Creates a datastore and advances the clock until it is ACTIVE.
pub async fn active_datastore(fixture: &Fixture, name: &str) -> String {
    let id = create_datastore(&fixture.client, name).await;
    fixture.emulator.advance_clock(Duration::from_secs(60));
    assert_eq!(
        datastore_status(&fixture.client, &id).await,
        DatastoreStatus::Active
    );
    id
}

/// A valid output configuration.
pub fn output_config() -> OutputDataConfig {
    OutputDataConfig::S3Configuration(
        S3Configuration::builder()
            .s3_uri("s3://example-output/results/")
            .kms_key_id("alias/output")
            .build()
            .expect("complete s3 configuration"),
    )
}

/// A valid input configuration.
pub fn input_config() -> InputDataConfig {
    InputDataConfig::S3Uri("s3://example-input/2026/".to_string())
}

/// A valid role ARN.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/HealthLakeImport";

/// Starts an import job and returns its id.
pub async fn start_import(client: &Client, datastore_id: &str, name: &str) -> String {
    client
        .start_fhir_import_job()
        .datastore_id(datastore_id)
        .job_name(name)
        .input_data_config(input_config())
        .job_output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await
        .expect("starting an import succeeds")
        .job_id
}

/// Starts an export job and returns its id.
pub async fn start_export(client: &Client, datastore_id: &str, name: &str) -> String {
    client
        .start_fhir_export_job()
        .datastore_id(datastore_id)
        .job_name(name)
        .output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await
        .expect("starting an export succeeds")
        .job_id
}

/// The AWS error code of an SDK error.
pub fn error_code<E, R>(error: &aws_sdk_healthlake::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_healthlake::error::ProvideErrorMetadata,
{
    use aws_sdk_healthlake::error::ProvideErrorMetadata;
    error.code().map(str::to_string)
}

/// Sends one HTTP/1.1 request and returns the status, the headers (names lower-cased) and the body.
pub async fn raw_request(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the emulator");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// One header's value.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Sends a JSON admin request and parses the JSON answer.
pub async fn admin(
    emulator: &RunningEmulator,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let (status, _, text) = raw_request(
        emulator.local_addr(),
        method,
        &format!("/_emulator{path}"),
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
