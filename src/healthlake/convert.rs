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
mod tests {
    use super::*;

    fn create_request() -> CreateDatastore {
        CreateDatastore {
            client_token: "8d3c1a7e-uid".into(),
            name: "patients".into(),
            type_version: FhirVersion::R4,
            encryption: Some(Encryption {
                cmk_type: CmkType::CustomerManagedKmsKey,
                kms_key_id: Some("alias/healthlake".into()),
            }),
            preload: Some(PreloadDataType::Synthea),
            identity_provider: Some(IdentityProvider {
                authorization_strategy: AuthorizationStrategy::SmartOnFhirV1,
                fine_grained_authorization_enabled: Some(true),
                metadata: Some(r#"{"issuer":"https://idp.example"}"#.into()),
                idp_lambda_arn: Some("arn:aws:lambda:us-east-1:123456789012:function:d".into()),
            }),
            tags: BTreeMap::from([
                ("team".to_owned(), "records".to_owned()),
                (
                    "healthlake.fhir-operator.io/owner-uid".to_owned(),
                    "8d3c1a7e-uid".to_owned(),
                ),
            ]),
        }
    }

    #[test]
    fn create_request_carries_every_setting() {
        let input = create_datastore_input(&create_request())
            .and_then(|builder| builder.build().map_err(invalid_request))
            .unwrap_or_else(|error| panic!("building the input failed: {error}"));
        assert_eq!(input.client_token(), Some("8d3c1a7e-uid"));
        assert_eq!(input.datastore_name(), Some("patients"));
        assert_eq!(input.datastore_type_version(), Some(&sdk::FhirVersion::R4));
        let kms = input
            .sse_configuration()
            .and_then(|sse| sse.kms_encryption_config());
        assert_eq!(
            kms.map(|kms| (kms.cmk_type().as_str(), kms.kms_key_id())),
            Some(("CUSTOMER_MANAGED_KMS_KEY", Some("alias/healthlake")))
        );
        assert_eq!(
            input
                .preload_data_config()
                .map(|preload| preload.preload_data_type().as_str()),
            Some("SYNTHEA")
        );
        let idp = input.identity_provider_configuration();
        assert_eq!(
            idp.map(|idp| (
                idp.authorization_strategy().as_str(),
                idp.fine_grained_authorization_enabled(),
                idp.metadata(),
                idp.idp_lambda_arn()
            )),
            Some((
                "SMART_ON_FHIR_V1",
                true,
                Some(r#"{"issuer":"https://idp.example"}"#),
                Some("arn:aws:lambda:us-east-1:123456789012:function:d")
            ))
        );
        assert_eq!(tags_from_sdk(input.tags()), create_request().tags);
    }

    #[test]
    fn minimal_create_request_sends_no_optional_members() {
        let request = CreateDatastore {
            encryption: None,
            preload: None,
            identity_provider: None,
            tags: BTreeMap::new(),
            ..create_request()
        };
        let input = create_datastore_input(&request)
            .and_then(|builder| builder.build().map_err(invalid_request))
            .unwrap_or_else(|error| panic!("building the input failed: {error}"));
        assert!(input.sse_configuration().is_none());
        assert!(input.preload_data_config().is_none());
        assert!(input.identity_provider_configuration().is_none());
        assert!(input.tags.is_none());
    }

    #[test]
    fn domain_enums_map_to_aws_spellings() {
        let strategies = [
            (AuthorizationStrategy::SmartOnFhirV1, "SMART_ON_FHIR_V1"),
            (AuthorizationStrategy::SmartOnFhir, "SMART_ON_FHIR"),
            (AuthorizationStrategy::AwsAuth, "AWS_AUTH"),
        ];
        for (strategy, wire) in strategies {
            assert_eq!(authorization_strategy(strategy).as_str(), wire);
        }
        let cmk_types = [
            (CmkType::CustomerManagedKmsKey, "CUSTOMER_MANAGED_KMS_KEY"),
            (CmkType::AwsOwnedKmsKey, "AWS_OWNED_KMS_KEY"),
        ];
        for (cmk, wire) in cmk_types {
            assert_eq!(cmk_type(cmk).as_str(), wire);
        }
        let levels = [
            (ValidationLevel::Strict, "strict"),
            (ValidationLevel::StructureOnly, "structure-only"),
            (ValidationLevel::Minimal, "minimal"),
        ];
        for (level, wire) in levels {
            assert_eq!(validation_level(level).as_str(), wire);
        }
        assert_eq!(fhir_version(FhirVersion::R4).as_str(), "R4");
        assert_eq!(
            preload_data_type(PreloadDataType::Synthea).as_str(),
            "SYNTHEA"
        );
    }

    #[test]
    fn job_requests_carry_every_setting() {
        let output = S3Output {
            s3_uri: "s3://results/out".into(),
            kms_key_id: "arn:aws:kms:us-east-1:123456789012:key/k".into(),
        };
        let import = start_import_job_input(&StartImportJob {
            client_token: "uid-1".into(),
            datastore_id: "ds1".into(),
            job_name: "nightly".into(),
            input_s3_uri: "s3://input/in".into(),
            output: output.clone(),
            data_access_role_arn: "arn:aws:iam::123456789012:role/r".into(),
            validation_level: Some(ValidationLevel::StructureOnly),
        })
        .and_then(|builder| builder.build().map_err(invalid_request))
        .unwrap_or_else(|error| panic!("building the import input failed: {error}"));
        assert_eq!(import.client_token(), Some("uid-1"));
        assert_eq!(import.datastore_id(), Some("ds1"));
        assert_eq!(import.job_name(), Some("nightly"));
        assert_eq!(
            import.input_data_config(),
            Some(&sdk::InputDataConfig::S3Uri("s3://input/in".into()))
        );
        let expected_output = sdk::OutputDataConfig::S3Configuration(
            sdk::S3Configuration::builder()
                .s3_uri("s3://results/out")
                .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/k")
                .build()
                .unwrap_or_else(|error| panic!("{error}")),
        );
        assert_eq!(import.job_output_data_config(), Some(&expected_output));
        assert_eq!(
            import.data_access_role_arn(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        assert_eq!(
            import.validation_level().map(|level| level.as_str()),
            Some("structure-only")
        );

        let export = start_export_job_input(&StartExportJob {
            client_token: "uid-2".into(),
            datastore_id: "ds1".into(),
            job_name: "weekly".into(),
            output,
            data_access_role_arn: "arn:aws:iam::123456789012:role/r".into(),
        })
        .and_then(|builder| builder.build().map_err(invalid_request))
        .unwrap_or_else(|error| panic!("building the export input failed: {error}"));
        assert_eq!(export.client_token(), Some("uid-2"));
        assert_eq!(export.job_name(), Some("weekly"));
        assert_eq!(export.output_data_config(), Some(&expected_output));
    }

    fn properties(status: &str) -> sdk::DatastoreProperties {
        sdk::DatastoreProperties::builder()
            .datastore_id("ds1")
            .datastore_arn("arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/ds1")
            .datastore_endpoint("https://healthlake.us-east-1.amazonaws.com/datastore/ds1/r4/")
            .datastore_name("patients")
            .datastore_status(sdk::DatastoreStatus::from(status))
            .datastore_type_version(sdk::FhirVersion::from("R4"))
            .created_at(DateTime::from_secs_and_nanos(1_700_000_000, 500_000_000))
            .error_cause(
                sdk::ErrorCause::builder()
                    .error_category(sdk::ErrorCategory::from("NON_RETRYABLE_ERROR"))
                    .error_message("kms key is disabled")
                    .build(),
            )
            .sse_configuration(
                sdk::SseConfiguration::builder()
                    .kms_encryption_config(
                        sdk::KmsEncryptionConfig::builder()
                            .cmk_type(sdk::CmkType::from("AWS_OWNED_KMS_KEY"))
                            .build()
                            .unwrap_or_else(|error| panic!("{error}")),
                    )
                    .build(),
            )
            .preload_data_config(
                sdk::PreloadDataConfig::builder()
                    .preload_data_type(sdk::PreloadDataType::from("SYNTHEA"))
                    .build()
                    .unwrap_or_else(|error| panic!("{error}")),
            )
            .identity_provider_configuration(
                sdk::IdentityProviderConfiguration::builder()
                    .authorization_strategy(sdk::AuthorizationStrategy::from("SMART_ON_FHIR"))
                    .fine_grained_authorization_enabled(false)
                    .metadata("{}")
                    .build()
                    .unwrap_or_else(|error| panic!("{error}")),
            )
            .build()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn datastore_statuses_keep_values_this_release_does_not_know() {
        let cases = [
            ("CREATING", DatastoreStatus::Creating),
            ("ACTIVE", DatastoreStatus::Active),
            ("DELETING", DatastoreStatus::Deleting),
            ("DELETED", DatastoreStatus::Deleted),
            ("CREATE_FAILED", DatastoreStatus::CreateFailed),
            ("UPDATING", DatastoreStatus::Unknown("UPDATING".into())),
            (
                "HIBERNATING",
                DatastoreStatus::Unknown("HIBERNATING".into()),
            ),
        ];
        for (wire, expected) in cases {
            assert_eq!(
                datastore_from_sdk(&properties(wire)).status,
                expected,
                "{wire}"
            );
        }
    }

    #[test]
    fn datastore_properties_become_the_domain_datastore() {
        let datastore = datastore_from_sdk(&properties("CREATE_FAILED"));
        assert_eq!(
            datastore,
            Datastore {
                id: "ds1".into(),
                arn: "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/ds1".into(),
                endpoint: "https://healthlake.us-east-1.amazonaws.com/datastore/ds1/r4/".into(),
                name: Some("patients".into()),
                status: DatastoreStatus::CreateFailed,
                type_version: "R4".into(),
                created_at: Timestamp::new(1_700_000_000, 500_000_000).ok(),
                error_cause: Some(ErrorCause {
                    error_category: Some(ErrorCategory::NonRetryable),
                    error_message: Some("kms key is disabled".into()),
                }),
                encryption: Some(("AWS_OWNED_KMS_KEY".into(), None)),
                preload: Some("SYNTHEA".into()),
                identity_provider: Some(ReportedIdentityProvider {
                    authorization_strategy: "SMART_ON_FHIR".into(),
                    fine_grained_authorization_enabled: Some(false),
                    metadata: Some("{}".into()),
                    idp_lambda_arn: None,
                }),
            }
        );
    }

    #[test]
    fn unknown_error_categories_and_strategies_are_kept() {
        let mut properties = properties("ACTIVE");
        properties.error_cause = Some(
            sdk::ErrorCause::builder()
                .error_category(sdk::ErrorCategory::from("MAYBE_RETRYABLE"))
                .build(),
        );
        properties.identity_provider_configuration = Some(
            sdk::IdentityProviderConfiguration::builder()
                .authorization_strategy(sdk::AuthorizationStrategy::from("OAUTH3"))
                .build()
                .unwrap_or_else(|error| panic!("{error}")),
        );
        let datastore = datastore_from_sdk(&properties);
        assert_eq!(
            datastore.error_cause.and_then(|cause| cause.error_category),
            Some(ErrorCategory::Unknown("MAYBE_RETRYABLE".into()))
        );
        assert_eq!(
            datastore
                .identity_provider
                .map(|idp| idp.authorization_strategy),
            Some("OAUTH3".into())
        );
    }

    #[test]
    fn job_statuses_keep_values_this_release_does_not_know() {
        let known = JobStatus::KNOWN
            .iter()
            .map(|wire| (*wire, JobStatus::from(*wire)));
        let cases = known.chain([("PAUSED", JobStatus::Unknown("PAUSED".into()))]);
        for (wire, expected) in cases {
            assert!(
                !matches!(expected, JobStatus::Unknown(_)) || wire == "PAUSED",
                "{wire} is a known status"
            );
            let properties = sdk::ExportJobProperties::builder()
                .job_id("job1")
                .datastore_id("ds1")
                .job_status(sdk::JobStatus::from(wire))
                .submit_time(DateTime::from_secs(1_700_000_000))
                .build()
                .unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(export_job_from_sdk(&properties).status, expected, "{wire}");
        }
    }

    #[test]
    fn import_job_reports_progress_and_times() {
        let report = sdk::JobProgressReport::builder()
            .total_number_of_scanned_files(10)
            .total_size_of_scanned_files_in_mb(12.5)
            .total_number_of_imported_files(9)
            .total_number_of_resources_scanned(1000)
            .total_number_of_resources_imported(990)
            .total_number_of_resources_with_customer_error(10)
            .total_number_of_files_read_with_customer_error(1)
            .throughput(33.0)
            .total_number_of_scanned_non_fhir_files(4)
            .build();
        let properties = sdk::ImportJobProperties::builder()
            .job_id("job1")
            .job_name("nightly")
            .datastore_id("ds1")
            .job_status(sdk::JobStatus::CompletedWithErrors)
            .submit_time(DateTime::from_secs(1_700_000_000))
            .end_time(DateTime::from_secs(1_700_000_600))
            .message("10 resources rejected")
            .job_progress_report(report)
            .build()
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            import_job_from_sdk(&properties),
            Job {
                job_id: "job1".into(),
                datastore_id: "ds1".into(),
                job_name: Some("nightly".into()),
                status: JobStatus::CompletedWithErrors,
                submit_time: Timestamp::new(1_700_000_000, 0).ok(),
                end_time: Timestamp::new(1_700_000_600, 0).ok(),
                message: Some("10 resources rejected".into()),
                progress: Some(ProgressReport {
                    scanned_files: Some(10),
                    scanned_size_mb: Some(12.5),
                    imported_files: Some(9),
                    resources_scanned: Some(1000),
                    resources_imported: Some(990),
                    resources_with_customer_error: Some(10),
                    files_read_with_customer_error: Some(1),
                    throughput: Some(33.0),
                }),
            }
        );
    }

    #[test]
    fn times_beyond_what_jiff_represents_become_none() {
        let cases = [
            (DateTime::from_secs(0), Timestamp::new(0, 0).ok()),
            (
                DateTime::from_secs_and_nanos(-1, 999_999_999),
                Timestamp::new(-1, 999_999_999).ok(),
            ),
            (DateTime::from_secs(i64::MAX), None),
            (DateTime::from_secs(i64::MIN), None),
        ];
        for (time, expected) in cases {
            assert_eq!(timestamp(&time), expected, "{time:?}");
        }
    }

    #[test]
    fn tags_round_trip_in_key_order() {
        let tags = BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "".to_owned()),
        ]);
        let sdk_tags = tags_to_sdk(&tags);
        assert_eq!(
            sdk_tags.iter().map(|tag| tag.key()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(tags_from_sdk(&sdk_tags), tags);
    }
}
