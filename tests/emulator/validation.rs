//! AWS's input validation: each bad member is refused with a ValidationException naming it.

use aws_sdk_healthlake::types::{
    AuthorizationStrategy, CmkType, FhirVersion, IdentityProviderConfiguration, InputDataConfig,
    KmsEncryptionConfig, SseConfiguration, Tag,
};

use crate::support::{
    Fixture, ROLE_ARN, active_datastore, client_without_retries, fixture, output_config,
};

/// The ValidationException message of a failed call, or a description of what came instead.
fn validation_message<E, R>(
    result: Result<R, aws_sdk_healthlake::error::SdkError<E, impl std::fmt::Debug>>,
) -> String
where
    E: aws_sdk_healthlake::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    use aws_sdk_healthlake::error::ProvideErrorMetadata;
    match result {
        Ok(output) => format!("unexpected success: {output:?}"),
        Err(error) if error.code() == Some("ValidationException") => {
            error.message().unwrap_or_default().to_string()
        }
        Err(error) => format!("unexpected error: {error:?}"),
    }
}

fn assert_names(message: &str, member: &str) {
    assert!(
        message.contains(&format!("'{member}'")),
        "expected a ValidationException naming '{member}', got: {message}"
    );
}

#[tokio::test]
async fn create_refuses_each_malformed_member() {
    let Fixture { emulator, .. } = fixture().await;
    let client = client_without_retries(&emulator);

    let long_name = "n".repeat(257);
    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .datastore_name(long_name)
        .send()
        .await;
    assert_names(&validation_message(result), "datastoreName");

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .datastore_name("bad<name>")
        .send()
        .await;
    assert_names(&validation_message(result), "datastoreName");

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::from("R5"))
        .send()
        .await;
    assert_names(&validation_message(result), "datastoreTypeVersion");

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .client_token("not a token")
        .send()
        .await;
    assert_names(&validation_message(result), "clientToken");

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .sse_configuration(
            SseConfiguration::builder()
                .kms_encryption_config(
                    KmsEncryptionConfig::builder()
                        .cmk_type(CmkType::CmCmk)
                        .kms_key_id("not a key!")
                        .build()
                        .expect("kms config"),
                )
                .build(),
        )
        .send()
        .await;
    assert_names(
        &validation_message(result),
        "sseConfiguration.kmsEncryptionConfig.kmsKeyId",
    );

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .sse_configuration(
            SseConfiguration::builder()
                .kms_encryption_config(
                    KmsEncryptionConfig::builder()
                        .cmk_type(CmkType::CmCmk)
                        .build()
                        .expect("kms config"),
                )
                .build(),
        )
        .send()
        .await;
    assert!(validation_message(result).contains("KmsKeyId is required"));

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .identity_provider_configuration(
            IdentityProviderConfiguration::builder()
                .authorization_strategy(AuthorizationStrategy::SmartOnFhir)
                .idp_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:short")
                .build()
                .expect("identity provider"),
        )
        .send()
        .await;
    assert!(validation_message(result).contains("Metadata and IdpLambdaArn are required"));

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .tags(
            Tag::builder()
                .key("k".repeat(129))
                .value("v")
                .build()
                .expect("tag"),
        )
        .send()
        .await;
    assert_names(&validation_message(result), "tags.1.member.key");

    let result = client
        .create_fhir_datastore()
        .datastore_type_version(FhirVersion::R4)
        .tags(
            Tag::builder()
                .key("aws:reserved")
                .value("v")
                .build()
                .expect("tag"),
        )
        .send()
        .await;
    assert!(validation_message(result).contains("reserved prefix"));

    assert!(
        emulator.state().datastores.is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn start_import_refuses_each_malformed_member() {
    let fixture = fixture().await;
    let datastore = active_datastore(&fixture, "validation").await;
    let client = client_without_retries(&fixture.emulator);

    let result = client
        .start_fhir_import_job()
        .datastore_id(&datastore)
        .input_data_config(InputDataConfig::S3Uri("https://not-s3/".to_string()))
        .job_output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await;
    assert_names(&validation_message(result), "inputDataConfig.s3Uri");

    let result = client
        .start_fhir_import_job()
        .datastore_id(&datastore)
        .input_data_config(crate::support::input_config())
        .job_output_data_config(output_config())
        .data_access_role_arn("arn:aws:iam::123:role/short")
        .send()
        .await;
    assert_names(&validation_message(result), "dataAccessRoleArn");

    let result = client
        .start_fhir_import_job()
        .datastore_id(&datastore)
        .job_name("j".repeat(65))
        .input_data_config(crate::support::input_config())
        .job_output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await;
    assert_names(&validation_message(result), "jobName");

    let result = client
        .start_fhir_import_job()
        .datastore_id(&datastore)
        .input_data_config(crate::support::input_config())
        .job_output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .validation_level(aws_sdk_healthlake::types::ValidationLevel::from("lenient"))
        .send()
        .await;
    assert_names(&validation_message(result), "validationLevel");

    let result = client
        .start_fhir_export_job()
        .datastore_id("x".repeat(33))
        .output_data_config(output_config())
        .data_access_role_arn(ROLE_ARN)
        .send()
        .await;
    assert_names(&validation_message(result), "datastoreId");
}

#[tokio::test]
async fn list_operations_refuse_out_of_range_max_results_and_bad_tokens() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    let result = client.list_fhir_datastores().max_results(501).send().await;
    assert_names(&validation_message(result), "maxResults");
    let result = client.list_fhir_datastores().max_results(0).send().await;
    assert_names(&validation_message(result), "maxResults");
    let result = client
        .list_fhir_datastores()
        .next_token("not-a-token")
        .send()
        .await;
    assert!(validation_message(result).contains("pagination token"));

    let unknown = client
        .list_fhir_import_jobs()
        .datastore_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .expect_err("unknown datastore");
    assert_eq!(
        crate::support::error_code(&unknown).as_deref(),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn tag_operations_refuse_malformed_arns() {
    let fixture = fixture().await;
    let client = client_without_retries(&fixture.emulator);
    let result = client
        .list_tags_for_resource()
        .resource_arn("arn:aws:s3:::bucket")
        .send()
        .await;
    assert_names(&validation_message(result), "resourceARN");
}
