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
