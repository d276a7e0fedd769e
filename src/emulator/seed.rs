//! Datastores "created outside" the operator: by CloudFormation, the console or another tool,
//! with tags users cannot set (`aws:cloudformation:stack-name`, ...) and any status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::EmulatorError;
use super::clock::EpochMillis;
use super::faults::{ErrorCategory, ErrorCause};
use super::operations::MAX_TAGS_PER_RESOURCE;
use super::state::{DatastoreRecord, DatastoreStatus};
use super::validate::{DATASTORE_NAME, TAG_KEY, TAG_VALUE, check_string};

/// A datastore to add as if someone else had created it; `POST /_emulator/datastores` takes
/// the same JSON: `{"region"?, "name", "tags"?: {"key": "value"}, "status"?: "ACTIVE"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreSeed {
    /// The region it lives in; the emulator's configured region when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// `DatastoreName`.
    pub name: String,
    /// Its tags, `aws:` keys allowed (at most 50).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its status now (ACTIVE when absent); CREATING and DELETING move on with the clock as
    /// any datastore's do, CREATE_FAILED carries a non-retryable ErrorCause.
    #[serde(default = "active")]
    pub status: DatastoreStatus,
}

fn active() -> DatastoreStatus {
    DatastoreStatus::Active
}

/// A seeded datastore, as `POST /_emulator/datastores` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededDatastore {
    /// The 32-hex-digit id.
    pub id: String,
    /// Its ARN, in its region.
    pub arn: String,
    /// Its FHIR endpoint, in its region.
    pub endpoint: String,
    /// Its region.
    pub region: String,
    /// Its status.
    pub status: DatastoreStatus,
}

impl DatastoreSeed {
    /// An ACTIVE datastore named `name` in the configured region, without tags.
    pub fn new(name: impl Into<String>) -> Self {
        DatastoreSeed {
            region: None,
            name: name.into(),
            tags: BTreeMap::new(),
            status: DatastoreStatus::Active,
        }
    }

    /// Puts it in this region.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Adds a tag (an `aws:` key is allowed).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Sets its status.
    pub fn with_status(mut self, status: DatastoreStatus) -> Self {
        self.status = status;
        self
    }

    /// Refuses what AWS could never hold: a bad region, name or tag, more than 50 tags.
    pub(super) fn check(&self, region: &str) -> Result<(), EmulatorError> {
        let invalid = |reason: String| EmulatorError::Seed(reason);
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(invalid(format!(
                "region {region:?} is not lowercase letters, digits and dashes"
            )));
        }
        check_string(&self.name, &DATASTORE_NAME, "name")
            .map_err(|error| invalid(error.message))?;
        if self.tags.len() > MAX_TAGS_PER_RESOURCE {
            return Err(invalid(format!(
                "{} tags given; a datastore holds at most {MAX_TAGS_PER_RESOURCE}",
                self.tags.len()
            )));
        }
        for (key, value) in &self.tags {
            check_string(key, &TAG_KEY, "tags")
                .and_then(|()| check_string(value, &TAG_VALUE, "tags"))
                .map_err(|error| invalid(error.message))?;
        }
        Ok(())
    }

    /// The record, created at `now` with AWS's defaults for everything the seed leaves out.
    pub(super) fn into_record(
        self,
        id: String,
        sequence: u64,
        now: EpochMillis,
    ) -> DatastoreRecord {
        let error_cause = (self.status == DatastoreStatus::CreateFailed).then(|| ErrorCause {
            category: ErrorCategory::NonRetryable,
            message: "the data store was seeded as CREATE_FAILED".to_string(),
        });
        DatastoreRecord {
            id,
            sequence,
            name: Some(self.name),
            type_version: "R4".to_string(),
            created_at: now,
            sse_configuration: json!({"KmsEncryptionConfig": {"CmkType": "AWS_OWNED_KMS_KEY"}}),
            preload_data_config: None,
            identity_provider_configuration: json!({
                "AuthorizationStrategy": "AWS_AUTH",
                "FineGrainedAuthorizationEnabled": false
            }),
            tags: self.tags,
            status: self.status,
            status_since: now,
            planned_failure: None,
            error_cause,
        }
    }
}
