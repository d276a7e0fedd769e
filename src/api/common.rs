//! Types shared by the three resources.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::open_enum::open_enum;
use super::patterns;

open_enum! {
    /// The status of a HealthLake import or export job, as AWS reports it.
    pub enum JobStatus {
        /// Accepted by AWS, not yet scheduled.
        Submitted => "SUBMITTED",
        /// Waiting for the job ahead of it on the same datastore.
        Queued => "QUEUED",
        /// Running.
        InProgress => "IN_PROGRESS",
        /// Finished, with some resources or files rejected.
        CompletedWithErrors => "COMPLETED_WITH_ERRORS",
        /// Finished without errors.
        Completed => "COMPLETED",
        /// Failed.
        Failed => "FAILED",
        /// A cancellation was requested.
        CancelSubmitted => "CANCEL_SUBMITTED",
        /// A cancellation is under way.
        CancelInProgress => "CANCEL_IN_PROGRESS",
        /// The job was cancelled.
        CancelCompleted => "CANCEL_COMPLETED",
        /// Cancelling the job failed.
        CancelFailed => "CANCEL_FAILED",
    }
}

open_enum! {
    /// Whether retrying the failed datastore operation can help, as AWS reports it.
    pub enum ErrorCategory {
        /// A transient failure: trying again may succeed.
        Retryable => "RETRYABLE_ERROR",
        /// A permanent failure: something must change before trying again.
        NonRetryable => "NON_RETRYABLE_ERROR",
    }
}

/// Why a datastore operation failed, copied from AWS's `ErrorCause`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCause {
    /// `RETRYABLE_ERROR` or `NON_RETRYABLE_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_category: Option<ErrorCategory>,
    /// AWS's explanation of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// Names the FHIRDatastore a job runs against.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreReference {
    /// Name of a FHIRDatastore in the job's own namespace. The job starts once that datastore is
    /// Ready.
    #[schemars(length(min = 1, max = patterns::OBJECT_NAME_MAX), regex(pattern = patterns::OBJECT_NAME))]
    pub name: String,
    /// Namespace of the FHIRDatastore. Optional; when set it must be the job's own namespace,
    /// because a job may not read or write another team's datastore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::NAMESPACE_MAX), regex(pattern = patterns::NAMESPACE))]
    pub namespace: Option<String>,
}

/// An S3 location and the KMS key that protects what HealthLake writes there.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Configuration {
    /// Where HealthLake writes, as `s3://bucket/prefix`.
    #[schemars(length(max = patterns::S3_URI_MAX), regex(pattern = patterns::S3_URI))]
    pub s3_uri: String,
    /// The KMS key (id, ARN or alias) HealthLake uses to encrypt the objects it writes to S3.
    #[schemars(length(min = 1, max = patterns::KMS_KEY_ID_MAX), regex(pattern = patterns::KMS_KEY_ID))]
    pub kms_key_id: String,
}
