//! The thirteen HealthLake operations the emulator serves, by their AWS names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One HealthLake operation, named as in `X-Amz-Target: HealthLake.<Operation>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// `CreateFHIRDatastore`.
    #[serde(rename = "CreateFHIRDatastore")]
    CreateFhirDatastore,
    /// `DeleteFHIRDatastore`.
    #[serde(rename = "DeleteFHIRDatastore")]
    DeleteFhirDatastore,
    /// `DescribeFHIRDatastore`.
    #[serde(rename = "DescribeFHIRDatastore")]
    DescribeFhirDatastore,
    /// `DescribeFHIRExportJob`.
    #[serde(rename = "DescribeFHIRExportJob")]
    DescribeFhirExportJob,
    /// `DescribeFHIRImportJob`.
    #[serde(rename = "DescribeFHIRImportJob")]
    DescribeFhirImportJob,
    /// `ListFHIRDatastores`.
    #[serde(rename = "ListFHIRDatastores")]
    ListFhirDatastores,
    /// `ListFHIRExportJobs`.
    #[serde(rename = "ListFHIRExportJobs")]
    ListFhirExportJobs,
    /// `ListFHIRImportJobs`.
    #[serde(rename = "ListFHIRImportJobs")]
    ListFhirImportJobs,
    /// `ListTagsForResource`.
    #[serde(rename = "ListTagsForResource")]
    ListTagsForResource,
    /// `StartFHIRExportJob`.
    #[serde(rename = "StartFHIRExportJob")]
    StartFhirExportJob,
    /// `StartFHIRImportJob`.
    #[serde(rename = "StartFHIRImportJob")]
    StartFhirImportJob,
    /// `TagResource`.
    #[serde(rename = "TagResource")]
    TagResource,
    /// `UntagResource`.
    #[serde(rename = "UntagResource")]
    UntagResource,
}

impl Operation {
    /// Every operation, in alphabetical order of the AWS names.
    pub const ALL: [Operation; 13] = [
        Operation::CreateFhirDatastore,
        Operation::DeleteFhirDatastore,
        Operation::DescribeFhirDatastore,
        Operation::DescribeFhirExportJob,
        Operation::DescribeFhirImportJob,
        Operation::ListFhirDatastores,
        Operation::ListFhirExportJobs,
        Operation::ListFhirImportJobs,
        Operation::ListTagsForResource,
        Operation::StartFhirExportJob,
        Operation::StartFhirImportJob,
        Operation::TagResource,
        Operation::UntagResource,
    ];

    /// The AWS name, as sent in `X-Amz-Target` after `HealthLake.`.
    pub fn aws_name(self) -> &'static str {
        match self {
            Operation::CreateFhirDatastore => "CreateFHIRDatastore",
            Operation::DeleteFhirDatastore => "DeleteFHIRDatastore",
            Operation::DescribeFhirDatastore => "DescribeFHIRDatastore",
            Operation::DescribeFhirExportJob => "DescribeFHIRExportJob",
            Operation::DescribeFhirImportJob => "DescribeFHIRImportJob",
            Operation::ListFhirDatastores => "ListFHIRDatastores",
            Operation::ListFhirExportJobs => "ListFHIRExportJobs",
            Operation::ListFhirImportJobs => "ListFHIRImportJobs",
            Operation::ListTagsForResource => "ListTagsForResource",
            Operation::StartFhirExportJob => "StartFHIRExportJob",
            Operation::StartFhirImportJob => "StartFHIRImportJob",
            Operation::TagResource => "TagResource",
            Operation::UntagResource => "UntagResource",
        }
    }

    /// Whether the operation changes state (and so is written to the state file).
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Operation::CreateFhirDatastore
                | Operation::DeleteFhirDatastore
                | Operation::StartFhirExportJob
                | Operation::StartFhirImportJob
                | Operation::TagResource
                | Operation::UntagResource
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.aws_name())
    }
}

/// The name is not one of the thirteen operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown healthlake operation {0:?}")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|operation| operation.aws_name() == name)
            .ok_or_else(|| UnknownOperation(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for operation in Operation::ALL {
            assert_eq!(operation.aws_name().parse::<Operation>(), Ok(operation));
            let json = serde_json::to_string(&operation).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", operation.aws_name()));
        }
        assert!("DescribeFhirDatastore".parse::<Operation>().is_err());
    }
}
