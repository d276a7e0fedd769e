//! The thirteen operations: validation, business rules and answers, over [`State`].

use serde_json::Value;

use super::clock::EpochMillis;
use super::config::EmulatorConfig;
use super::faults::Faults;
use super::operation::Operation;
use super::state::State;
use super::wire::AwsError;

mod datastores;
mod jobs;
mod tags;

pub use tags::MAX_TAGS_PER_RESOURCE;

/// The ARN of a datastore.
pub fn datastore_arn(region: &str, account_id: &str, id: &str) -> String {
    format!("arn:aws:healthlake:{region}:{account_id}:datastore/fhir/{id}")
}

/// The FHIR endpoint of a datastore.
pub fn datastore_endpoint(region: &str, id: &str) -> String {
    format!("https://healthlake.{region}.amazonaws.com/datastore/{id}/r4/")
}

/// What an operation may read and change.
pub struct Context<'a> {
    /// The region the request was signed for.
    pub region: &'a str,
    /// The region's datastores, jobs and tokens.
    pub state: &'a mut State,
    /// Armed faults (lifecycle faults are consumed by creations and job starts).
    pub faults: &'a mut Faults,
    /// The emulator's configuration.
    pub config: &'a EmulatorConfig,
    /// The emulator's time of the call.
    pub now: EpochMillis,
}

impl Context<'_> {
    /// The ARN of a datastore.
    pub fn datastore_arn(&self, id: &str) -> String {
        datastore_arn(self.region, &self.config.account_id, id)
    }

    /// The FHIR endpoint of a datastore.
    pub fn datastore_endpoint(&self, id: &str) -> String {
        datastore_endpoint(self.region, id)
    }
}

/// Runs one operation on a JSON request and answers its JSON response.
pub fn execute(
    context: &mut Context<'_>,
    operation: Operation,
    request: &Value,
) -> Result<Value, AwsError> {
    match operation {
        Operation::CreateFhirDatastore => datastores::create(context, request),
        Operation::DeleteFhirDatastore => datastores::delete(context, request),
        Operation::DescribeFhirDatastore => datastores::describe(context, request),
        Operation::ListFhirDatastores => datastores::list(context, request),
        Operation::StartFhirImportJob => jobs::start_import(context, request),
        Operation::StartFhirExportJob => jobs::start_export(context, request),
        Operation::DescribeFhirImportJob => jobs::describe(context, request, operation),
        Operation::DescribeFhirExportJob => jobs::describe(context, request, operation),
        Operation::ListFhirImportJobs => jobs::list(context, request, operation),
        Operation::ListFhirExportJobs => jobs::list(context, request, operation),
        Operation::TagResource => tags::tag(context, request),
        Operation::UntagResource => tags::untag(context, request),
        Operation::ListTagsForResource => tags::list(context, request),
    }
}
