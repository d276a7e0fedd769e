//! `FHIRImportJob`: one bulk import of FHIR data from S3 into a datastore.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{DatastoreReference, JobStatus, S3Configuration};
use super::patterns;

/// A bulk import of FHIR data from S3 into a datastore.
///
/// A job runs once, so the whole spec is fixed at creation: to import again, create a new
/// FHIRImportJob.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "healthlake.fhir-operator.io",
    version = "v1alpha1",
    kind = "FHIRImportJob",
    plural = "fhirimportjobs",
    singular = "fhirimportjob",
    shortname = "fhirimport",
    category = "healthlake",
    namespaced,
    doc = "A one-off bulk import of FHIR data from S3 into a HealthLake datastore.",
    status = "FHIRImportJobStatus",
    printcolumn = r#"{"name":"Datastore","type":"string","jsonPath":".spec.datastoreRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.jobStatus"}"#,
    printcolumn = r#"{"name":"Imported/Scanned","type":"string","jsonPath":".status.progress.summary"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("the spec of a FHIRImportJob is immutable: a job runs once, so create a new FHIRImportJob to import again"),
    validation = Rule::new("has(self.datastoreRef) != has(self.datastoreId)")
        .message("exactly one of datastoreRef or datastoreId must be set: name the FHIRDatastore with datastoreRef, or an unmanaged datastore with datastoreId"),
)]
pub struct FHIRImportJobSpec {
    /// The FHIRDatastore to import into, in this namespace. Set this or `datastoreId`.
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
    /// Where the FHIR data to import is.
    pub input_data_config: ImportInputDataConfig,
    /// Where HealthLake writes the import's results and error reports.
    pub job_output_data_config: ImportOutputDataConfig,
    /// ARN of the IAM role HealthLake assumes to read the input and write the results.
    #[schemars(length(min = patterns::IAM_ROLE_ARN_MIN, max = patterns::IAM_ROLE_ARN_MAX), regex(pattern = patterns::IAM_ROLE_ARN))]
    pub data_access_role_arn: String,
    /// How strictly HealthLake validates the imported resources: `strict`, `structure-only` or
    /// `minimal`. HealthLake's default applies when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_level: Option<ValidationLevel>,
    /// Delete this object this many seconds after the job finished. Kept forever when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// The S3 location of the FHIR data to import.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportInputDataConfig {
    /// The S3 prefix holding the FHIR data (NDJSON), as `s3://bucket/prefix`.
    #[schemars(length(max = patterns::S3_URI_MAX), regex(pattern = patterns::S3_URI))]
    pub s3_uri: String,
}

/// Where an import job writes its results.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportOutputDataConfig {
    /// The S3 location and KMS key for the results.
    pub s3_configuration: S3Configuration,
}

/// How strictly an import validates resources.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ValidationLevel {
    /// Full validation against the FHIR profiles.
    #[serde(rename = "strict")]
    Strict,
    /// Structural validation only.
    #[serde(rename = "structure-only")]
    StructureOnly,
    /// The least validation.
    #[serde(rename = "minimal")]
    Minimal,
}

/// What the operator last observed of the import job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FHIRImportJobStatus {
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
    /// How far the import has come, as AWS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, as kstatus defines them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// An import job's progress, copied from AWS's `JobProgressReport`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// Resources imported out of resources scanned, as `imported/scanned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Files scanned in the input location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_scanned_files: Option<i64>,
    /// Size of the scanned files, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size_of_scanned_files_in_mb: Option<f64>,
    /// Files imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_imported_files: Option<i64>,
    /// Resources scanned in the input files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_resources_scanned: Option<i64>,
    /// Resources imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_resources_imported: Option<i64>,
    /// Resources rejected because of an error in the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_resources_with_customer_error: Option<i64>,
    /// Files that could not be read because of an error in the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_number_of_files_read_with_customer_error: Option<i64>,
    /// Resources processed per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
}
