//! [`SdkHealthLake`]: the [`HealthLake`] port implemented with aws-sdk-healthlake.
//!
//! One SDK client per region, built on first use from one base [`SdkConfig`] (credentials,
//! HTTP client, behaviour version) and kept for the life of the process. Every call goes
//! through [`classify`] on failure and through the conversions module both ways, so nothing
//! above this module sees an SDK type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_healthlake::Client;
use aws_sdk_healthlake::config::retry::RetryConfig;
use aws_sdk_healthlake::config::timeout::TimeoutConfig;
use aws_sdk_healthlake::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_healthlake::types::DatastoreFilter;
use futures::future::BoxFuture;

use super::classify::classify;
use super::convert;
use super::{
    CreateDatastore, Datastore, DatastoreSummary, HealthLake, HealthLakeError, Job, Result,
    StartExportJob, StartImportJob, StartedJob,
};

/// How the adapter reaches HealthLake: region, endpoint, timeouts and SDK retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdkSettings {
    /// The region used when a call names none (an empty region string).
    pub default_region: String,
    /// Sends every call to this URL instead of AWS (the emulator).
    pub endpoint_url: Option<String>,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long one call may take in all, retries included.
    pub operation_timeout: Duration,
    /// How many times the SDK itself tries a call. The default is 1: the controllers retry with
    /// per-object backoff, and a hidden SDK retry would spend rate-limit budget nobody counted.
    pub max_attempts: u32,
    /// MaxResults of each ListFHIRDatastores page; AWS's default when `None`.
    pub list_page_size: Option<i32>,
}

impl SdkSettings {
    /// Settings for `default_region` with the default timeouts and no endpoint override.
    pub fn new(default_region: impl Into<String>) -> Self {
        Self {
            default_region: default_region.into(),
            endpoint_url: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 1,
            list_page_size: None,
        }
    }

    /// The same settings with every call sent to `endpoint_url`.
    pub fn with_endpoint_url(mut self, endpoint_url: impl Into<String>) -> Self {
        self.endpoint_url = Some(endpoint_url.into());
        self
    }
}

/// The [`HealthLake`] port over aws-sdk-healthlake.
#[derive(Clone)]
pub struct SdkHealthLake {
    base: SdkConfig,
    settings: SdkSettings,
    clients: Arc<Mutex<HashMap<String, Client>>>,
}

impl std::fmt::Debug for SdkHealthLake {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SdkHealthLake")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SdkHealthLake {
    /// An adapter with credentials from the default AWS chain (environment, profile, web
    /// identity for IRSA, EKS Pod Identity / container credentials, instance metadata).
    ///
    /// Nothing is fetched here: the chain resolves credentials on the first call, so missing
    /// credentials show up as a retryable error on that call, not as a start-up failure.
    pub async fn from_default_chain(settings: SdkSettings) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.default_region.clone()))
            .load()
            .await;
        Self::new(base, settings)
    }

    /// An adapter over an explicit base configuration (credentials, HTTP client, ...).
    pub fn new(base: SdkConfig, settings: SdkSettings) -> Self {
        Self {
            base,
            settings,
            clients: Arc::default(),
        }
    }

    /// An adapter with fixed placeholder credentials, for the emulator, which checks that
    /// requests are signed but not by whom.
    pub fn with_static_credentials(settings: SdkSettings) -> Self {
        let credentials = Credentials::new(
            "AKIDEMULATOR",
            "emulator-secret",
            None,
            None,
            "healthlake-operator-static",
        );
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.default_region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        Self::new(base, settings)
    }

    /// The settings this adapter was built with.
    pub fn settings(&self) -> &SdkSettings {
        &self.settings
    }

    /// The client for `region` (the default region when empty), built on first use.
    fn client(&self, region: &str) -> Client {
        let region = if region.is_empty() {
            self.settings.default_region.as_str()
        } else {
            region
        };
        // A panic while holding this lock cannot leave the map half-updated (insert is the only
        // write), so a poisoned lock is still safe to use.
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(region.to_owned())
            .or_insert_with(|| self.build_client(region))
            .clone()
    }

    fn build_client(&self, region: &str) -> Client {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.settings.connect_timeout)
            .operation_timeout(self.settings.operation_timeout)
            .build();
        let retries = if self.settings.max_attempts <= 1 {
            RetryConfig::disabled()
        } else {
            RetryConfig::standard().with_max_attempts(self.settings.max_attempts)
        };
        let mut config = aws_sdk_healthlake::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(endpoint_url) = &self.settings.endpoint_url {
            config = config.endpoint_url(endpoint_url);
        }
        Client::from_conf(config.build())
    }

    async fn list_all_datastores(
        &self,
        region: &str,
        name: Option<&str>,
    ) -> Result<Vec<Datastore>> {
        let client = self.client(region);
        let filter = name.map(|name| DatastoreFilter::builder().datastore_name(name).build());
        let mut datastores = Vec::new();
        let mut seen_tokens = HashSet::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = client
                .list_fhir_datastores()
                .set_filter(filter.clone())
                .set_max_results(self.settings.list_page_size)
                .set_next_token(next_token.clone())
                .send()
                .await
                .map_err(classify)?;
            datastores.extend(
                page.datastore_properties_list()
                    .iter()
                    .map(convert::datastore_from_sdk),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => {
                    // A token seen before would page forever; AWS never does this, a broken
                    // proxy or emulator might.
                    if !seen_tokens.insert(token.to_owned()) {
                        return Err(HealthLakeError::Retryable {
                            message: format!(
                                "failed to list datastores: page token {token} was returned twice"
                            ),
                        });
                    }
                    next_token = Some(token.to_owned());
                }
                _ => return Ok(datastores),
            }
        }
    }
}

impl HealthLake for SdkHealthLake {
    fn create_datastore<'a>(
        &'a self,
        region: &'a str,
        request: &'a CreateDatastore,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        Box::pin(async move {
            let input = convert::create_datastore_input(request)?;
            let output = input
                .send_with(&self.client(region))
                .await
                .map_err(|error| super::classify::datastore_quota(classify(error)))?;
            Ok(convert::summary_from_create(&output))
        })
    }

    fn describe_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<Datastore>> {
        Box::pin(async move {
            let output = self
                .client(region)
                .describe_fhir_datastore()
                .datastore_id(datastore_id)
                .send()
                .await
                .map_err(classify)?;
            match output.datastore_properties() {
                Some(properties) => Ok(convert::datastore_from_sdk(properties)),
                None => Err(HealthLakeError::Retryable {
                    message: format!(
                        "failed to describe datastore {datastore_id}: the answer has no datastore properties"
                    ),
                }),
            }
        })
    }

    fn list_datastores<'a>(
        &'a self,
        region: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Datastore>>> {
        Box::pin(self.list_all_datastores(region, name))
    }

    fn delete_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSummary>> {
        Box::pin(async move {
            let output = self
                .client(region)
                .delete_fhir_datastore()
                .datastore_id(datastore_id)
                .send()
                .await
                .map_err(classify)?;
            Ok(convert::summary_from_delete(&output))
        })
    }

    fn list_tags<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>> {
        Box::pin(async move {
            let output = self
                .client(region)
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(classify)?;
            Ok(convert::tags_from_sdk(output.tags()))
        })
    }

    fn tag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client(region)
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(convert::tags_to_sdk(tags)))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn untag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client(region)
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn start_import_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartImportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        Box::pin(async move {
            let input = convert::start_import_job_input(request)?;
            let output = input
                .send_with(&self.client(region))
                .await
                .map_err(classify)?;
            Ok(convert::started_import_job(&output))
        })
    }

    fn describe_import_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        Box::pin(async move {
            let output = self
                .client(region)
                .describe_fhir_import_job()
                .datastore_id(datastore_id)
                .job_id(job_id)
                .send()
                .await
                .map_err(classify)?;
            match output.import_job_properties() {
                Some(properties) => Ok(convert::import_job_from_sdk(properties)),
                None => Err(HealthLakeError::Retryable {
                    message: format!(
                        "failed to describe import job {job_id}: the answer has no job properties"
                    ),
                }),
            }
        })
    }

    fn start_export_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartExportJob,
    ) -> BoxFuture<'a, Result<StartedJob>> {
        Box::pin(async move {
            let input = convert::start_export_job_input(request)?;
            let output = input
                .send_with(&self.client(region))
                .await
                .map_err(classify)?;
            Ok(convert::started_export_job(&output))
        })
    }

    fn describe_export_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>> {
        Box::pin(async move {
            let output = self
                .client(region)
                .describe_fhir_export_job()
                .datastore_id(datastore_id)
                .job_id(job_id)
                .send()
                .await
                .map_err(classify)?;
            match output.export_job_properties() {
                Some(properties) => Ok(convert::export_job_from_sdk(properties)),
                None => Err(HealthLakeError::Retryable {
                    message: format!(
                        "failed to describe export job {job_id}: the answer has no job properties"
                    ),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_region_built_once_with_the_default_for_an_empty_region() {
        let healthlake = SdkHealthLake::with_static_credentials(
            SdkSettings::new("us-east-1").with_endpoint_url("http://127.0.0.1:9"),
        );
        let cases = [
            ("eu-west-1", "eu-west-1", 1),
            ("", "us-east-1", 2),
            ("us-east-1", "us-east-1", 2),
            ("eu-west-1", "eu-west-1", 2),
        ];
        for (asked, expected, cached) in cases {
            let client = healthlake.client(asked);
            assert_eq!(
                client.config().region().map(|region| region.as_ref()),
                Some(expected),
                "{asked:?}"
            );
            let clients = healthlake
                .clients
                .lock()
                .map(|clients| clients.len())
                .unwrap_or_default();
            assert_eq!(clients, cached, "after asking for {asked:?}");
        }
    }

    #[test]
    fn clients_carry_the_configured_timeouts_and_no_hidden_retries() {
        let mut settings = SdkSettings::new("us-east-1");
        settings.connect_timeout = Duration::from_secs(2);
        settings.operation_timeout = Duration::from_secs(7);
        let healthlake = SdkHealthLake::with_static_credentials(settings);
        let client = healthlake.client("us-east-1");
        let config = client.config();
        let timeouts = config.timeout_config().expect("timeouts are configured");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(7)));
        let retries = config.retry_config().expect("retries are configured");
        assert_eq!(retries.max_attempts(), 1);
    }

    #[tokio::test]
    async fn the_default_chain_keeps_a_given_region_and_fetches_nothing_up_front() {
        // Only the construction is checked: a call would let the chain reach for instance
        // metadata, which is off loopback.
        let healthlake = SdkHealthLake::from_default_chain(SdkSettings::new("eu-central-1")).await;
        assert_eq!(healthlake.settings().default_region, "eu-central-1");
        let client = healthlake.client("");
        assert_eq!(
            client.config().region().map(|region| region.as_ref()),
            Some("eu-central-1")
        );
    }
}
