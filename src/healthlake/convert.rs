//! Conversions between the port's domain types and aws-sdk-healthlake's types.
//!
//! Requests become SDK input builders (sent with `send_with`), answers become domain types.
//! Every SDK enum is non-exhaustive and may carry a value this release does not know; such values
//! pass through `as_str()` into the operator's open enums or plain strings, so they are kept as
//! AWS sent them instead of failing the call.

use std::collections::BTreeMap;

use aws_sdk_healthlake::operation::create_fhir_datastore::CreateFhirDatastoreOutput;
use aws_sdk_healthlake::operation::create_fhir_datastore::builders::CreateFhirDatastoreInputBuilder;
use aws_sdk_healthlake::operation::delete_fhir_datastore::DeleteFhirDatastoreOutput;
use aws_sdk_healthlake::operation::start_fhir_export_job::StartFhirExportJobOutput;
use aws_sdk_healthlake::operation::start_fhir_export_job::builders::StartFhirExportJobInputBuilder;
use aws_sdk_healthlake::operation::start_fhir_import_job::StartFhirImportJobOutput;
use aws_sdk_healthlake::operation::start_fhir_import_job::builders::StartFhirImportJobInputBuilder;
use aws_sdk_healthlake::primitives::DateTime;
use aws_sdk_healthlake::types as sdk;
use jiff::Timestamp;

use super::classify::INVALID_REQUEST_REASON;
use super::{
    CreateDatastore, Datastore, DatastoreSummary, Encryption, HealthLakeError, IdentityProvider,
    Job, ProgressReport, ReportedIdentityProvider, S3Output, StartExportJob, StartImportJob,
    StartedJob,
};
use crate::api::{
    AuthorizationStrategy, CmkType, DatastoreStatus, ErrorCategory, ErrorCause, FhirVersion,
    JobStatus, PreloadDataType, ValidationLevel,
};

/// The CreateFHIRDatastore input for a request.
pub fn create_datastore_input(
    request: &CreateDatastore,
) -> Result<CreateFhirDatastoreInputBuilder, HealthLakeError> {
    let identity_provider = request
        .identity_provider
        .as_ref()
        .map(identity_provider_configuration)
        .transpose()?;
    let encryption = request
        .encryption
        .as_ref()
        .map(sse_configuration)
        .transpose()?;
    let preload = request.preload.map(preload_data_config).transpose()?;
    Ok(CreateFhirDatastoreInputBuilder::default()
        .client_token(&request.client_token)
        .datastore_name(&request.name)
        .datastore_type_version(fhir_version(request.type_version))
        .set_sse_configuration(encryption)
        .set_preload_data_config(preload)
        .set_identity_provider_configuration(identity_provider)
        .set_tags((!request.tags.is_empty()).then(|| tags_to_sdk(&request.tags))))
}

fn preload_data_config(
    preload: PreloadDataType,
) -> Result<sdk::PreloadDataConfig, HealthLakeError> {
    sdk::PreloadDataConfig::builder()
        .preload_data_type(preload_data_type(preload))
        .build()
        .map_err(invalid_request)
}

/// The StartFHIRImportJob input for a request.
pub fn start_import_job_input(
    request: &StartImportJob,
) -> Result<StartFhirImportJobInputBuilder, HealthLakeError> {
    Ok(StartFhirImportJobInputBuilder::default()
        .client_token(&request.client_token)
        .datastore_id(&request.datastore_id)
        .job_name(&request.job_name)
        .input_data_config(sdk::InputDataConfig::S3Uri(request.input_s3_uri.clone()))
        .job_output_data_config(output_data_config(&request.output)?)
        .data_access_role_arn(&request.data_access_role_arn)
        .set_validation_level(request.validation_level.map(validation_level)))
}

/// The StartFHIRExportJob input for a request.
pub fn start_export_job_input(
    request: &StartExportJob,
) -> Result<StartFhirExportJobInputBuilder, HealthLakeError> {
    Ok(StartFhirExportJobInputBuilder::default()
        .client_token(&request.client_token)
        .datastore_id(&request.datastore_id)
        .job_name(&request.job_name)
        .output_data_config(output_data_config(&request.output)?)
        .data_access_role_arn(&request.data_access_role_arn))
}

fn output_data_config(output: &S3Output) -> Result<sdk::OutputDataConfig, HealthLakeError> {
    let s3 = sdk::S3Configuration::builder()
        .s3_uri(&output.s3_uri)
        .kms_key_id(&output.kms_key_id)
        .build()
        .map_err(invalid_request)?;
    Ok(sdk::OutputDataConfig::S3Configuration(s3))
}

fn sse_configuration(encryption: &Encryption) -> Result<sdk::SseConfiguration, HealthLakeError> {
    let kms = sdk::KmsEncryptionConfig::builder()
        .cmk_type(cmk_type(encryption.cmk_type))
        .set_kms_key_id(encryption.kms_key_id.clone())
        .build()
        .map_err(invalid_request)?;
    Ok(sdk::SseConfiguration::builder()
        .kms_encryption_config(kms)
        .build())
}

fn identity_provider_configuration(
    identity_provider: &IdentityProvider,
) -> Result<sdk::IdentityProviderConfiguration, HealthLakeError> {
    sdk::IdentityProviderConfiguration::builder()
        .authorization_strategy(authorization_strategy(
            identity_provider.authorization_strategy,
        ))
        .set_fine_grained_authorization_enabled(
            identity_provider.fine_grained_authorization_enabled,
        )
        .set_metadata(identity_provider.metadata.clone())
        .set_idp_lambda_arn(identity_provider.idp_lambda_arn.clone())
        .build()
        .map_err(invalid_request)
}

fn invalid_request(error: aws_sdk_healthlake::error::BuildError) -> HealthLakeError {
    HealthLakeError::Terminal {
        reason: INVALID_REQUEST_REASON.to_owned(),
        message: format!("failed to build request: {error}"),
    }
}

fn fhir_version(version: FhirVersion) -> sdk::FhirVersion {
    match version {
        FhirVersion::R4 => sdk::FhirVersion::R4,
    }
}

fn cmk_type(cmk_type: CmkType) -> sdk::CmkType {
    match cmk_type {
        CmkType::CustomerManagedKmsKey => sdk::CmkType::CmCmk,
        CmkType::AwsOwnedKmsKey => sdk::CmkType::AoCmk,
    }
}

fn preload_data_type(preload: PreloadDataType) -> sdk::PreloadDataType {
    match preload {
        PreloadDataType::Synthea => sdk::PreloadDataType::Synthea,
    }
}

fn authorization_strategy(strategy: AuthorizationStrategy) -> sdk::AuthorizationStrategy {
    match strategy {
        AuthorizationStrategy::SmartOnFhirV1 => sdk::AuthorizationStrategy::Smartv1,
        AuthorizationStrategy::SmartOnFhir => sdk::AuthorizationStrategy::SmartOnFhir,
        AuthorizationStrategy::AwsAuth => sdk::AuthorizationStrategy::AwsAuth,
    }
}

fn validation_level(level: ValidationLevel) -> sdk::ValidationLevel {
    match level {
        ValidationLevel::Strict => sdk::ValidationLevel::Strict,
        ValidationLevel::StructureOnly => sdk::ValidationLevel::StructureOnly,
        ValidationLevel::Minimal => sdk::ValidationLevel::Minimal,
    }
}

/// Tags as the SDK's list of key/value pairs, in key order.
pub fn tags_to_sdk(tags: &BTreeMap<String, String>) -> Vec<sdk::Tag> {
    tags.iter()
        .filter_map(|(key, value)| sdk::Tag::builder().key(key).value(value).build().ok())
        .collect()
}

/// Tags as a map; if AWS repeats a key, the last value wins.
pub fn tags_from_sdk(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|tag| (tag.key().to_owned(), tag.value().to_owned()))
        .collect()
}

/// What CreateFHIRDatastore returned.
pub fn summary_from_create(output: &CreateFhirDatastoreOutput) -> DatastoreSummary {
    DatastoreSummary {
        id: output.datastore_id().to_owned(),
        arn: output.datastore_arn().to_owned(),
        endpoint: output.datastore_endpoint().to_owned(),
        status: datastore_status(output.datastore_status()),
    }
}

/// What DeleteFHIRDatastore returned.
pub fn summary_from_delete(output: &DeleteFhirDatastoreOutput) -> DatastoreSummary {
    DatastoreSummary {
        id: output.datastore_id().to_owned(),
        arn: output.datastore_arn().to_owned(),
        endpoint: output.datastore_endpoint().to_owned(),
        status: datastore_status(output.datastore_status()),
    }
}

/// A datastore as DescribeFHIRDatastore or ListFHIRDatastores reported it.
pub fn datastore_from_sdk(properties: &sdk::DatastoreProperties) -> Datastore {
    Datastore {
        id: properties.datastore_id().to_owned(),
        arn: properties.datastore_arn().to_owned(),
        endpoint: properties.datastore_endpoint().to_owned(),
        name: properties.datastore_name().map(str::to_owned),
        status: datastore_status(properties.datastore_status()),
        type_version: properties.datastore_type_version().as_str().to_owned(),
        created_at: properties.created_at().and_then(timestamp),
        error_cause: properties.error_cause().map(|cause| ErrorCause {
            error_category: cause
                .error_category()
                .map(|category| ErrorCategory::from(category.as_str())),
            error_message: cause.error_message().map(str::to_owned),
        }),
        encryption: properties
            .sse_configuration()
            .and_then(|sse| sse.kms_encryption_config())
            .map(|kms| {
                (
                    kms.cmk_type().as_str().to_owned(),
                    kms.kms_key_id().map(str::to_owned),
                )
            }),
        preload: properties
            .preload_data_config()
            .map(|preload| preload.preload_data_type().as_str().to_owned()),
        identity_provider: properties.identity_provider_configuration().map(|idp| {
            ReportedIdentityProvider {
                authorization_strategy: idp.authorization_strategy().as_str().to_owned(),
                fine_grained_authorization_enabled: Some(idp.fine_grained_authorization_enabled()),
                metadata: idp.metadata().map(str::to_owned),
                idp_lambda_arn: idp.idp_lambda_arn().map(str::to_owned),
            }
        }),
    }
}

fn datastore_status(status: &sdk::DatastoreStatus) -> DatastoreStatus {
    DatastoreStatus::from(status.as_str())
}

fn job_status(status: &sdk::JobStatus) -> JobStatus {
    JobStatus::from(status.as_str())
}

/// What StartFHIRImportJob returned.
pub fn started_import_job(output: &StartFhirImportJobOutput) -> StartedJob {
    StartedJob {
        job_id: output.job_id().to_owned(),
        status: job_status(output.job_status()),
        datastore_id: output.datastore_id().map(str::to_owned),
    }
}

/// What StartFHIRExportJob returned.
pub fn started_export_job(output: &StartFhirExportJobOutput) -> StartedJob {
    StartedJob {
        job_id: output.job_id().to_owned(),
        status: job_status(output.job_status()),
        datastore_id: output.datastore_id().map(str::to_owned),
    }
}

/// An import job as DescribeFHIRImportJob reported it.
pub fn import_job_from_sdk(properties: &sdk::ImportJobProperties) -> Job {
    Job {
        job_id: properties.job_id().to_owned(),
        datastore_id: properties.datastore_id().to_owned(),
        job_name: properties.job_name().map(str::to_owned),
        status: job_status(properties.job_status()),
        submit_time: timestamp(properties.submit_time()),
        end_time: properties.end_time().and_then(timestamp),
        message: properties.message().map(str::to_owned),
        progress: properties.job_progress_report().map(progress_from_sdk),
    }
}

/// An export job as DescribeFHIRExportJob reported it.
pub fn export_job_from_sdk(properties: &sdk::ExportJobProperties) -> Job {
    Job {
        job_id: properties.job_id().to_owned(),
        datastore_id: properties.datastore_id().to_owned(),
        job_name: properties.job_name().map(str::to_owned),
        status: job_status(properties.job_status()),
        submit_time: timestamp(properties.submit_time()),
        end_time: properties.end_time().and_then(timestamp),
        message: properties.message().map(str::to_owned),
        progress: None,
    }
}

/// The eight FHIR counters of a progress report; the non-FHIR ones are not surfaced.
pub fn progress_from_sdk(report: &sdk::JobProgressReport) -> ProgressReport {
    ProgressReport {
        scanned_files: report.total_number_of_scanned_files(),
        scanned_size_mb: report.total_size_of_scanned_files_in_mb(),
        imported_files: report.total_number_of_imported_files(),
        resources_scanned: report.total_number_of_resources_scanned(),
        resources_imported: report.total_number_of_resources_imported(),
        resources_with_customer_error: report.total_number_of_resources_with_customer_error(),
        files_read_with_customer_error: report.total_number_of_files_read_with_customer_error(),
        throughput: report.throughput(),
    }
}

/// An SDK time as a timestamp; `None` for a time jiff cannot represent (beyond year ±9999).
pub fn timestamp(time: &DateTime) -> Option<Timestamp> {
    let nanoseconds = i32::try_from(time.subsec_nanos()).ok()?;
    Timestamp::new(time.secs(), nanoseconds).ok()
}

#[cfg(test)]
mod tests;
