//! The HealthLake port: what the operator asks of Amazon HealthLake, in the operator's terms.
//!
//! [`HealthLake`] has one method per operation the operator uses. Its types are the operator's
//! own, not the SDK's, so that `decide/` and the controllers never see an SDK type, and every
//! error is classified once, where it enters, into a [`HealthLakeError`] whose variant decides
//! the retry behaviour. [`sdk::SdkHealthLake`] implements the port with aws-sdk-healthlake;
//! [`limiter::RateLimited`] sits in front of it and keeps the operator under HealthLake's quotas.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;

use crate::api::{
    AuthorizationStrategy, CmkType, DatastoreStatus, ErrorCause, FhirVersion, JobStatus,
    PreloadDataType, ValidationLevel,
};

pub mod classify;
mod convert;
pub mod limiter;
pub mod sdk;

/// The result of a HealthLake call.
pub type Result<T> = std::result::Result<T, HealthLakeError>;

/// A failed HealthLake call, classified by what the caller should do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthLakeError {
    /// The datastore or job does not exist (`ResourceNotFoundException`).
    #[error("not found: {message}")]
    NotFound {
        /// AWS's message.
        message: String,
    },
    /// The datastore is in a transition that forbids the call (`ConflictException`): try later.
    #[error("conflict: {message}")]
    Conflict {
        /// AWS's message.
        message: String,
    },
    /// AWS throttled the call (`ThrottlingException`): back off and try again.
    #[error("throttled: {message}")]
    Throttled {
        /// AWS's message.
        message: String,
    },
    /// A transient failure (5xx, timeout, connection error): back off and try again.
    #[error("{message}")]
    Retryable {
        /// What failed.
        message: String,
    },
    /// A failure that repeats until a human changes something (`ValidationException`,
    /// `AccessDeniedException`, ...).
    #[error("{reason}: {message}")]
    Terminal {
        /// A CamelCase reason for conditions and events, such as `ValidationException`.
        reason: String,
        /// AWS's message.
        message: String,
    },
    /// An account-wide quota is used up, such as the number of datastores an account may have in
    /// a region (`ServiceQuotaExceededException`, or a `ValidationException` for it on
    /// CreateFHIRDatastore): it passes when something is deleted or the quota is raised.
    #[error("account quota reached: {message}")]
    AccountQuota {
        /// AWS's message.
        message: String,
    },
    /// A client error whose code this operator does not know: retried with backoff, since a code
    /// AWS adds later may be transient, and named in conditions, events and metrics.
    #[error("unrecognized error {code}: {message}")]
    Unrecognized {
        /// AWS's error code (or `Http<status>` when it sent none), usable as a condition reason.
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The client-side rate limiter has no budget for the call yet; not an AWS error.
    #[error("waiting for request quota for {retry_after:?}")]
    WaitingForQuota {
        /// When budget will be available.
        retry_after: Duration,
    },
}

impl HealthLakeError {
    /// A short CamelCase name of the error class, for metrics labels and event reasons.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::Conflict { .. } => "Conflict",
            Self::Throttled { .. } => "Throttled",
            Self::Retryable { .. } => "Retryable",
            Self::Terminal { .. } => "Terminal",
            Self::AccountQuota { .. } => "AccountQuota",
            Self::Unrecognized { .. } => "Unrecognized",
            Self::WaitingForQuota { .. } => "WaitingForQuota",
        }
    }
}

/// The request quotas HealthLake publishes, which the limiter groups calls by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationClass {
    /// CreateFHIRDatastore and DeleteFHIRDatastore: about one request a minute.
    DatastoreLifecycle,
    /// StartFHIRImportJob and StartFHIRExportJob: about one request a minute.
    JobStart,
    /// Describe, List and tag operations: about ten requests a second.
    Read,
}

/// Server-side encryption asked for at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// Who owns the key.
    pub cmk_type: CmkType,
    /// The customer-managed key, if any.
    pub kms_key_id: Option<String>,
}

/// Identity provider settings asked for at creation. `Debug` leaves the SMART document out.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// The authorization strategy.
    pub authorization_strategy: AuthorizationStrategy,
    /// SMART on FHIR fine-grained authorization.
    pub fine_grained_authorization_enabled: Option<bool>,
    /// The SMART configuration document, as JSON text.
    pub metadata: Option<String>,
    /// The Lambda function that decodes access tokens.
    pub idp_lambda_arn: Option<String>,
}

/// Stands for a SMART configuration document in `Debug` output, which may reach logs: it can
/// hold client details an operator would not want copied into a log pipeline.
pub(crate) struct Redacted<'a>(pub(crate) &'a Option<String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(text) => write!(formatter, "<redacted, {} bytes>", text.len()),
            None => formatter.write_str("None"),
        }
    }
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdentityProvider")
            .field("authorization_strategy", &self.authorization_strategy)
            .field(
                "fine_grained_authorization_enabled",
                &self.fine_grained_authorization_enabled,
            )
            .field("metadata", &Redacted(&self.metadata))
            .field("idp_lambda_arn", &self.idp_lambda_arn)
            .finish()
    }
}

impl std::fmt::Debug for ReportedIdentityProvider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReportedIdentityProvider")
            .field("authorization_strategy", &self.authorization_strategy)
            .field(
                "fine_grained_authorization_enabled",
                &self.fine_grained_authorization_enabled,
            )
            .field("metadata", &Redacted(&self.metadata))
            .field("idp_lambda_arn", &self.idp_lambda_arn)
            .finish()
    }
}

/// Everything CreateFHIRDatastore needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateDatastore {
    /// Idempotency token: the object's `metadata.uid`.
    pub client_token: String,
    /// The datastore's name.
    pub name: String,
    /// The FHIR release.
    pub type_version: FhirVersion,
    /// Encryption at rest, if not AWS's default.
    pub encryption: Option<Encryption>,
    /// Sample data to preload.
    pub preload: Option<PreloadDataType>,
    /// How clients authenticate.
    pub identity_provider: Option<IdentityProvider>,
    /// Tags to create the datastore with, the owner tag included.
    pub tags: BTreeMap<String, String>,
}

/// What CreateFHIRDatastore and DeleteFHIRDatastore return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatastoreSummary {
    /// The datastore id.
    pub id: String,
    /// The datastore ARN.
    pub arn: String,
    /// The FHIR endpoint.
    pub endpoint: String,
    /// The status right after the call.
    pub status: DatastoreStatus,
}

/// Identity provider settings as AWS reports them. `Debug` leaves the SMART document out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReportedIdentityProvider {
    /// The authorization strategy, in AWS's spelling.
    pub authorization_strategy: String,
    /// SMART on FHIR fine-grained authorization.
    pub fine_grained_authorization_enabled: Option<bool>,
    /// The SMART configuration document, as JSON text.
    pub metadata: Option<String>,
    /// The Lambda function that decodes access tokens.
    pub idp_lambda_arn: Option<String>,
}

/// A datastore as DescribeFHIRDatastore and ListFHIRDatastores report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datastore {
    /// The datastore id.
    pub id: String,
    /// The datastore ARN.
    pub arn: String,
    /// The FHIR endpoint.
    pub endpoint: String,
    /// The datastore name.
    pub name: Option<String>,
    /// Its status.
    pub status: DatastoreStatus,
    /// The FHIR release, in AWS's spelling.
    pub type_version: String,
    /// When AWS created it.
    pub created_at: Option<Timestamp>,
    /// Why the last create or delete failed.
    pub error_cause: Option<ErrorCause>,
    /// Encryption at rest, as (CMK type, key id) in AWS's spelling.
    pub encryption: Option<(String, Option<String>)>,
    /// The preloaded data set, in AWS's spelling.
    pub preload: Option<String>,
    /// Identity provider settings.
    pub identity_provider: Option<ReportedIdentityProvider>,
}

/// An S3 location with the KMS key for what HealthLake writes there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Output {
    /// `s3://bucket/prefix`.
    pub s3_uri: String,
    /// The KMS key.
    pub kms_key_id: String,
}

/// Everything StartFHIRImportJob needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartImportJob {
    /// Idempotency token: the object's `metadata.uid`.
    pub client_token: String,
    /// The datastore to import into.
    pub datastore_id: String,
    /// The job name.
    pub job_name: String,
    /// Where the input is.
    pub input_s3_uri: String,
    /// Where the results go.
    pub output: S3Output,
    /// The IAM role HealthLake assumes.
    pub data_access_role_arn: String,
    /// How strictly to validate.
    pub validation_level: Option<ValidationLevel>,
}

/// Everything StartFHIRExportJob needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartExportJob {
    /// Idempotency token: the object's `metadata.uid`.
    pub client_token: String,
    /// The datastore to export from.
    pub datastore_id: String,
    /// The job name.
    pub job_name: String,
    /// Where the export goes.
    pub output: S3Output,
    /// The IAM role HealthLake assumes.
    pub data_access_role_arn: String,
}

/// What Start*Job returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedJob {
    /// The job id.
    pub job_id: String,
    /// The job status right after the call.
    pub status: JobStatus,
    /// The datastore the job runs against.
    pub datastore_id: Option<String>,
}

/// An import job's counters, as AWS's `JobProgressReport` has them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressReport {
    /// Files scanned.
    pub scanned_files: Option<i64>,
    /// Size of the scanned files in MB.
    pub scanned_size_mb: Option<f64>,
    /// Files imported.
    pub imported_files: Option<i64>,
    /// Resources scanned.
    pub resources_scanned: Option<i64>,
    /// Resources imported.
    pub resources_imported: Option<i64>,
    /// Resources rejected for a data error.
    pub resources_with_customer_error: Option<i64>,
    /// Files unreadable for a data error.
    pub files_read_with_customer_error: Option<i64>,
    /// Resources per second.
    pub throughput: Option<f64>,
}

/// An import or export job as Describe*Job reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The job id.
    pub job_id: String,
    /// The datastore it runs against.
    pub datastore_id: String,
    /// The job name.
    pub job_name: Option<String>,
    /// Its status.
    pub status: JobStatus,
    /// When AWS accepted it.
    pub submit_time: Option<Timestamp>,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// AWS's explanation of errors.
    pub message: Option<String>,
    /// Progress counters (import jobs only).
    pub progress: Option<ProgressReport>,
}

/// The HealthLake operations the operator uses. `region` selects the AWS region of the call.
pub trait HealthLake: Send + Sync {
    /// CreateFHIRDatastore.
    fn create_datastore<'a>(
        &'a self,
        region: &'a str,
        request: &'a CreateDatastore,
    ) -> BoxFuture<'a, Result<DatastoreSummary>>;
    /// DescribeFHIRDatastore.
    fn describe_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<Datastore>>;
    /// ListFHIRDatastores filtered by name, every page.
    fn list_datastores<'a>(
        &'a self,
        region: &'a str,
        name: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Datastore>>>;
    /// DeleteFHIRDatastore.
    fn delete_datastore<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
    ) -> BoxFuture<'a, Result<DatastoreSummary>>;
    /// ListTagsForResource.
    fn list_tags<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>>;
    /// TagResource: add or overwrite these tags.
    fn tag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<()>>;
    /// UntagResource: remove these keys.
    fn untag_resource<'a>(
        &'a self,
        region: &'a str,
        arn: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<()>>;
    /// StartFHIRImportJob.
    fn start_import_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartImportJob,
    ) -> BoxFuture<'a, Result<StartedJob>>;
    /// DescribeFHIRImportJob.
    fn describe_import_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>>;
    /// StartFHIRExportJob.
    fn start_export_job<'a>(
        &'a self,
        region: &'a str,
        request: &'a StartExportJob,
    ) -> BoxFuture<'a, Result<StartedJob>>;
    /// DescribeFHIRExportJob.
    fn describe_export_job<'a>(
        &'a self,
        region: &'a str,
        datastore_id: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Job>>;
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_smart_document() {
        let document = r#"{"token_endpoint":"https://idp.example/token","client_secret":"s3cr3t"}"#;
        let asked = IdentityProvider {
            authorization_strategy: AuthorizationStrategy::SmartOnFhir,
            fine_grained_authorization_enabled: Some(true),
            metadata: Some(document.to_owned()),
            idp_lambda_arn: None,
        };
        let reported = ReportedIdentityProvider {
            authorization_strategy: "SMART_ON_FHIR".to_owned(),
            metadata: Some(document.to_owned()),
            ..ReportedIdentityProvider::default()
        };
        for debug in [format!("{asked:?}"), format!("{reported:?}")] {
            assert!(!debug.contains("s3cr3t"), "{debug}");
            assert!(!debug.contains("token_endpoint"), "{debug}");
            assert!(debug.contains("<redacted, 71 bytes>"), "{debug}");
        }
    }
}
