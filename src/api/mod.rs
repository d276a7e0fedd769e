//! The custom resources users declare: `FHIRDatastore`, `FHIRImportJob` and `FHIRExportJob`.
//!
//! Everything a user writes is validated by the API server before the operator sees it: the
//! OpenAPI schema carries AWS's patterns, lengths and enums, and CEL rules
//! (`x-kubernetes-validations`) keep create-only fields immutable and check the rules that span
//! several fields. Status fields that copy AWS values accept values AWS adds later.

mod common;
mod conditions;
mod datastore;
mod export_job;
mod import_job;
mod open_enum;
pub mod patterns;

pub use common::{DatastoreReference, ErrorCategory, ErrorCause, JobStatus, S3Configuration};
pub use conditions::{ConditionStatus, ConditionType, set_condition};
pub use datastore::{
    AuthorizationStrategy, CmkType, DatastoreStatus, DeletionPolicy, FHIRDatastore,
    FHIRDatastoreSpec, FHIRDatastoreStatus, FhirVersion, IdentityProviderConfiguration,
    IdentityProviderStatus, KmsEncryptionConfig, PreloadDataConfig, PreloadDataType,
    SseConfiguration,
};
pub use export_job::{
    ExportOutputDataConfig, FHIRExportJob, FHIRExportJobSpec, FHIRExportJobStatus,
};
pub use import_job::{
    FHIRImportJob, FHIRImportJobSpec, FHIRImportJobStatus, ImportInputDataConfig,
    ImportOutputDataConfig, JobProgress, ValidationLevel,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every resource the operator serves.
pub const GROUP: &str = "healthlake.fhir-operator.io";

/// The API version of every resource the operator serves.
pub const VERSION: &str = "v1alpha1";

/// Tag the operator puts on every datastore it creates, holding the object's `metadata.uid`.
///
/// It lets the operator find a datastore it created before a crash wiped the id from memory, and
/// tells anyone looking at the AWS console which Kubernetes object owns the datastore.
pub const OWNER_UID_TAG: &str = "healthlake.fhir-operator.io/owner-uid";

/// Tag the operator puts on every datastore it creates, holding the object's
/// `<namespace>/<name>`.
///
/// It outlives the object when the datastore is retained, so that re-applying the same manifest
/// finds the datastore left behind instead of silently creating a second one.
pub const OWNER_NAME_TAG: &str = "healthlake.fhir-operator.io/owner";

/// Prefix reserved for tags the operator manages; user tags may not use it.
pub const RESERVED_TAG_PREFIX: &str = "healthlake.fhir-operator.io/";

/// Annotation the operator writes on a `FHIRDatastore` together with its finalizer, before any
/// AWS call: the region its datastore will live in (`spec.region`, else the operator's default
/// region at that moment), as `<region>/<metadata.uid>`. A crash after CreateFHIRDatastore and
/// before the id reaches the status, followed by a restart under another default region, still
/// looks for (and finds) the datastore in this region. Copied to `status.region` by the first
/// status write. The uid ties the value to this object: one copied with another object's
/// manifest is ignored.
pub const REGION_ANNOTATION: &str = "healthlake.fhir-operator.io/region";

/// Finalizer that holds a `FHIRDatastore` until AWS confirms its deletion (or it is retained).
pub const DATASTORE_FINALIZER: &str = "healthlake.fhir-operator.io/datastore-cleanup";

/// The CustomResourceDefinitions of all three kinds, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        FHIRDatastore::crd(),
        FHIRImportJob::crd(),
        FHIRExportJob::crd(),
    ]
}

/// Why the CRDs could not be rendered as YAML.
#[derive(Debug, thiserror::Error)]
#[error("failed to render crd {name} as yaml: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: serde_saphyr::SerializeError,
}

/// The CRDs as YAML documents, each with the file name `crds/` uses for it
/// (`<plural>.<group>.yaml`). This is the one place the committed `crds/` comes from.
pub fn crd_documents() -> Result<Vec<(String, String)>, RenderError> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_saphyr::to_string(&crd).map_err(|source| RenderError {
                name: name.clone(),
                source,
            })?;
            Ok((format!("{name}.yaml"), yaml))
        })
        .collect()
}
