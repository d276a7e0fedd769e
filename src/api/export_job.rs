//! `FHIRExportJob`: one bulk export of a datastore's FHIR data to S3.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DatastoreReference, JobStatus, S3Configuration};
use super::patterns;

/// A bulk export of a datastore's FHIR data to S3.
///
/// A job runs once, so the whole spec is fixed at creation: to export again, create a new
/// FHIRExportJob.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "healthlake.fhir-operator.io",
    version = "v1alpha1",
    kind = "FHIRExportJob",
    plural = "fhirexportjobs",
    singular = "fhirexportjob",
    shortname = "fhirexport",
    category = "healthlake",
    namespaced,
    doc = "A one-off bulk export of a HealthLake datastore to S3.",
    status = "FHIRExportJobStatus",
    printcolumn = r#"{"name":"Datastore","type":"string","jsonPath":".spec.datastoreRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.jobStatus"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("the spec of a FHIRExportJob is immutable: a job runs once, so create a new FHIRExportJob to export again"),
    validation = Rule::new("has(self.datastoreRef) != has(self.datastoreId)")
        .message("exactly one of datastoreRef or datastoreId must be set: name the FHIRDatastore with datastoreRef, or an unmanaged datastore with datastoreId"),
)]
pub struct FHIRExportJobSpec {
    /// The FHIRDatastore to export from, in this namespace. Set this or `datastoreId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_ref: Option<DatastoreReference>,
    /// Id of a datastore not managed by a FHIRDatastore object. Set this or `datastoreRef`.
    /// Accepted only when the operator runs with `--allow-datastore-id-refs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::DATASTORE_ID_MAX), regex(pattern = patterns::DATASTORE_ID))]
    pub datastore_id: Option<String>,
    /// Name of the job in HealthLake. Defaults to the object's name (cut to 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = patterns::JOB_NAME_MAX), regex(pattern = patterns::JOB_NAME))]
    pub job_name: Option<String>,
    /// Where HealthLake writes the exported data.
    pub output_data_config: ExportOutputDataConfig,
    /// ARN of the IAM role HealthLake assumes to write to S3.
    #[schemars(length(min = patterns::IAM_ROLE_ARN_MIN, max = patterns::IAM_ROLE_ARN_MAX), regex(pattern = patterns::IAM_ROLE_ARN))]
    pub data_access_role_arn: String,
    /// Delete this object this many seconds after the job finished. Kept forever when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Where an export job writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportOutputDataConfig {
    /// The S3 location and KMS key for the exported data.
    pub s3_configuration: S3Configuration,
}

/// What the operator last observed of the export job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FHIRExportJobStatus {
    /// The job's id in HealthLake, saved the moment AWS returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `SUBMITTED`, `QUEUED`, `IN_PROGRESS`, `COMPLETED`, `COMPLETED_WITH_ERRORS`, `FAILED` or a
    /// `CANCEL_*` value; values AWS adds later are shown as AWS sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// The datastore the job runs against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_id: Option<String>,
    /// The region the job runs in, recorded when it starts; every later call for the job goes
    /// there, even if its FHIRDatastore object is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// When AWS accepted the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<Time>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// AWS's explanation of any errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as kstatus defines them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
