//! Import and export jobs end to end: waiting for the datastore, every status, progress, the
//! per-datastore queue, errors that stall without retry loops (their slow retries are in
//! `recovery.rs`), and references that are refused.

use std::time::Duration;

use healthlake_operator::api::{FHIRDatastore, FHIRExportJob, FHIRImportJob};
use healthlake_operator::emulator::{ErrorType, Fault, Operation};
use kube::api::PostParams;
use serde::de::DeserializeOwned;

use super::datastore::{CREATION, create_ready, datastore, has_id};
use super::harness::{Rig, condition, event_reasons, eventually, is_true, wait_for};

fn manifest<K: DeserializeOwned>(kind: &str, name: &str, yaml_spec: &str) -> K {
    let manifest = format!(
        "apiVersion: healthlake.fhir-operator.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{yaml_spec}"
    );
    serde_saphyr::from_str(&manifest).expect("test manifest parses")
}

pub fn import_job(name: &str, datastore: &str) -> FHIRImportJob {
    let spec = format!(
        "  datastoreRef:\n    name: {datastore}\n  inputDataConfig:\n    s3Uri: s3://fhir-input/{name}/\n  jobOutputDataConfig:\n    s3Configuration:\n      s3Uri: s3://fhir-output/{name}/\n      kmsKeyId: alias/fhir-output\n  dataAccessRoleArn: arn:aws:iam::123456789012:role/HealthLakeImport\n  validationLevel: strict\n"
    );
    manifest("FHIRImportJob", name, &spec)
}

fn export_job(name: &str, datastore: &str) -> FHIRExportJob {
    let spec = format!(
        "  datastoreRef:\n    name: {datastore}\n  outputDataConfig:\n    s3Configuration:\n      s3Uri: s3://fhir-export/{name}/\n      kmsKeyId: alias/fhir-export\n  dataAccessRoleArn: arn:aws:iam::123456789012:role/HealthLakeExport\n"
    );
    manifest("FHIRExportJob", name, &spec)
}

pub fn import_status(object: &FHIRImportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_status.as_ref())
        .map(|status| status.to_string())
}

fn export_status(object: &FHIRExportJob) -> Option<String> {
    object
        .status
        .as_ref()
        .and_then(|status| status.job_status.as_ref())
        .map(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_waits_for_its_datastore_then_runs_through_every_status_with_progress() {
    let rig = Rig::start().await;
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("nightly", "patients"))
        .await
        .expect("admitted");
    let waiting = wait_for(&imports, "nightly", "waiting for its datastore", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Reconciling").1 == "WaitingForDatastore"
        })
    })
    .await;
    assert!(waiting.status.and_then(|status| status.job_id).is_none());

    datastores
        .create(
            &PostParams::default(),
            &datastore("patients", "  deletionPolicy: Delete\n"),
        )
        .await
        .expect("admitted");
    wait_for(&datastores, "patients", "created", has_id).await;
    assert_eq!(
        rig.calls(Operation::StartFhirImportJob),
        0,
        "no start while the datastore is CREATING"
    );
    rig.advance(CREATION);

    let submitted = wait_for(&imports, "nightly", "submitted", |object| {
        import_status(object).as_deref() == Some("SUBMITTED")
    })
    .await;
    let job_id = submitted
        .status
        .as_ref()
        .and_then(|status| status.job_id.clone())
        .expect("job id saved");
    rig.advance(Duration::from_secs(1));
    wait_for(&imports, "nightly", "queued", |object| {
        import_status(object).as_deref() == Some("QUEUED")
    })
    .await;
    rig.advance(Duration::from_secs(1));
    wait_for(&imports, "nightly", "in progress", |object| {
        import_status(object).as_deref() == Some("IN_PROGRESS")
    })
    .await;
    rig.advance(Duration::from_secs(5));
    let running = wait_for(&imports, "nightly", "half imported", |object| {
        object
            .status
            .as_ref()
            .and_then(|status| status.progress.as_ref())
            .and_then(|progress| progress.total_number_of_resources_imported)
            .is_some_and(|imported| imported > 0)
    })
    .await;
    let half = running
        .status
        .and_then(|status| status.progress)
        .expect("progress");
    rig.advance(Duration::from_secs(6));
    let done = wait_for(&imports, "nightly", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    let status = done.status.expect("status");
    assert_eq!(
        status
            .job_status
            .map(|status| status.to_string())
            .as_deref(),
        Some("COMPLETED")
    );
    assert_eq!(status.job_id.as_deref(), Some(job_id.as_str()));
    assert!(status.submit_time.is_some() && status.end_time.is_some());
    let progress = status.progress.expect("progress");
    let record = rig.emulator.state().jobs[&job_id].progress;
    assert_eq!(
        progress.total_number_of_resources_imported,
        Some(record.resources_imported as i64)
    );
    assert_eq!(
        progress.total_number_of_resources_scanned,
        Some(record.resources_scanned as i64)
    );
    assert_eq!(
        progress.total_number_of_scanned_files,
        Some(record.scanned_files as i64)
    );
    assert_eq!(
        progress.total_number_of_imported_files,
        Some(record.imported_files as i64)
    );
    assert_eq!(
        progress.total_number_of_resources_with_customer_error,
        Some(record.resources_with_error as i64)
    );
    assert_eq!(
        progress.total_number_of_files_read_with_customer_error,
        Some(record.files_with_error as i64)
    );
    assert!(progress.total_size_of_scanned_files_in_mb.is_some() && progress.throughput.is_some());
    assert!(
        progress.total_number_of_resources_imported > half.total_number_of_resources_imported,
        "progress grew"
    );
    assert_eq!(
        progress.summary,
        Some(format!(
            "{}/{}",
            record.resources_imported, record.resources_scanned
        ))
    );
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1);

    // A finished job is never described again.
    let describes = rig.calls(Operation::DescribeFhirImportJob);
    rig.advance(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.calls(Operation::DescribeFhirImportJob), describes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_runs_to_completion() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let exports = rig.api::<FHIRExportJob>();
    exports
        .create(&PostParams::default(), &export_job("weekly", "patients"))
        .await
        .expect("admitted");
    wait_for(&exports, "weekly", "submitted", |object| {
        export_status(object).is_some()
    })
    .await;
    rig.advance(Duration::from_secs(15));
    let done = wait_for(&exports, "weekly", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    assert_eq!(export_status(&done).as_deref(), Some("COMPLETED"));
    let job_id = done
        .status
        .and_then(|status| status.job_id)
        .expect("job id");
    let record = rig.emulator.state().jobs[&job_id].clone();
    assert_eq!(
        record.output_data_config["S3Configuration"]["S3Uri"],
        "s3://fhir-export/weekly/"
    );
    assert_eq!(
        record.data_access_role_arn,
        "arn:aws:iam::123456789012:role/HealthLakeExport"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_jobs_on_one_datastore_queue_and_finish_in_order() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let imports = rig.api::<FHIRImportJob>();
    for index in 0..20 {
        imports
            .create(
                &PostParams::default(),
                &import_job(&format!("batch-{index:02}"), "patients"),
            )
            .await
            .expect("admitted");
    }
    eventually("all twenty jobs are submitted", || async {
        rig.emulator.state().jobs.len() == 20
    })
    .await;
    for _ in 0..40 {
        rig.advance(Duration::from_secs(6));
        let jobs = rig.emulator.state().jobs;
        let running = jobs
            .values()
            .filter(|job| job.status.aws_name() == "IN_PROGRESS")
            .count();
        assert!(running <= 1, "one running job per datastore");
        if jobs
            .values()
            .all(|job| job.status.aws_name() == "COMPLETED")
        {
            break;
        }
    }
    let mut jobs: Vec<_> = rig.emulator.state().jobs.into_values().collect();
    assert!(jobs.iter().all(|job| job.status.aws_name() == "COMPLETED"));
    jobs.sort_by_key(|job| job.sequence);
    let ends: Vec<_> = jobs.iter().map(|job| job.end_time).collect();
    assert!(
        ends.windows(2).all(|pair| pair[0] < pair[1]),
        "finished in submission order: {ends:?}"
    );
    for index in 0..20 {
        wait_for(&imports, &format!("batch-{index:02}"), "Ready", |object| {
            object
                .status
                .as_ref()
                .is_some_and(|status| is_true(&status.conditions, "Ready"))
        })
        .await;
    }
    assert_eq!(
        rig.calls(Operation::StartFhirImportJob),
        20,
        "each job started exactly once"
    );
}

/// A ValidationException on start stalls the job with AWS's message, and the operator does not
/// retry it on its poll schedule: ten poll intervals of real time later there is still one call.
/// A Stalled object is retried only on the slow schedule, which runs on the emulator's clock
/// (first retry `stalled_retry_base` = 60 s after the stall in `fast_settings`); this test never
/// advances that clock, so no retry comes due. The slow retries themselves are in `recovery.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_error_stalls_without_a_retry_loop() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::FailNext {
        operation: Operation::StartFhirImportJob,
        error: ErrorType::ValidationException,
        count: 1,
        message: Some("the input location is not readable".to_owned()),
    });
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("bad-input", "patients"))
        .await
        .expect("admitted");
    let stalled = wait_for(&imports, "bad-input", "Stalled", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Stalled"))
    })
    .await;
    let stall = stalled
        .status
        .as_ref()
        .and_then(|status| {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == "Stalled")
                .cloned()
        })
        .expect("stalled");
    assert_eq!(stall.reason, "ValidationException");
    assert!(
        stall.message.contains("the input location is not readable"),
        "{}",
        stall.message
    );
    // Ten poll intervals (`poll_long`, 50 ms) later there is still exactly one call: no retry
    // loop. The emulator's clock stands still, so the slow retry is not due either.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 1);
}

/// AccessDenied on start stalls the job without a job id, and the operator does not retry it on
/// its poll schedule: ten poll intervals of real time later there is still one call. As above,
/// the slow retry runs on the emulator's clock, which this test never advances (see
/// `recovery.rs` for the retries once it does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_stalls_without_a_retry_loop() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::StartFhirExportJob,
    });
    let exports = rig.api::<FHIRExportJob>();
    exports
        .create(&PostParams::default(), &export_job("forbidden", "patients"))
        .await
        .expect("admitted");
    let stalled = wait_for(&exports, "forbidden", "Stalled", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Stalled")
                == ("True".to_owned(), "AccessDenied".to_owned())
        })
    })
    .await;
    assert!(stalled.status.is_some_and(|status| status.job_id.is_none()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.calls(Operation::StartFhirExportJob), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_converges() {
    let rig = Rig::start().await;
    for operation in [
        Operation::CreateFhirDatastore,
        Operation::DescribeFhirDatastore,
        Operation::ListFhirDatastores,
        Operation::ListTagsForResource,
        Operation::StartFhirImportJob,
        Operation::DescribeFhirImportJob,
    ] {
        rig.emulator.inject(Fault::ErrorProbability {
            operation,
            throttling: 0.4,
            internal_server: 0.1,
        });
    }
    let datastores = rig.api::<FHIRDatastore>();
    let imports = rig.api::<FHIRImportJob>();
    for index in 0..3 {
        datastores
            .create(
                &PostParams::default(),
                &datastore(&format!("store-{index}"), "  deletionPolicy: Delete\n"),
            )
            .await
            .expect("admitted");
        imports
            .create(
                &PostParams::default(),
                &import_job(&format!("load-{index}"), &format!("store-{index}")),
            )
            .await
            .expect("admitted");
    }
    for index in 0..3 {
        let name = format!("load-{index}");
        let done = async {
            loop {
                rig.advance(Duration::from_secs(2));
                if let Ok(Some(job)) = imports.get_opt(&name).await
                    && job
                        .status
                        .as_ref()
                        .is_some_and(|status| is_true(&status.conditions, "Ready"))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("converged despite throttling");
    }
    assert_eq!(
        rig.emulator.state().datastores.len(),
        3,
        "throttling never duplicated a datastore"
    );
    assert_eq!(
        rig.emulator.state().jobs.len(),
        3,
        "throttling never duplicated a job"
    );
    assert!(
        rig.emulator
            .calls()
            .iter()
            .any(|call| call.error_type.as_deref() == Some("ThrottlingException")),
        "the storm happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_another_namespace_is_refused() {
    let rig = Rig::start().await;
    let imports = rig.api::<FHIRImportJob>();
    let mut job = import_job("sneaky", "patients");
    if let Some(reference) = job.spec.datastore_ref.as_mut() {
        reference.namespace = Some("another-team".to_owned());
    }
    imports
        .create(&PostParams::default(), &job)
        .await
        .expect("admitted");
    let refused = wait_for(&imports, "sneaky", "Stalled", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Stalled")
                == ("True".to_owned(), "CrossNamespaceReference".to_owned())
        })
    })
    .await;
    assert!(refused.status.is_some_and(|status| status.job_id.is_none()));
    assert_eq!(rig.calls(Operation::StartFhirImportJob), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let imports = rig.api::<FHIRImportJob>();
    let mut job = import_job("short-lived", "patients");
    job.spec.ttl_seconds_after_finished = Some(120);
    imports
        .create(&PostParams::default(), &job)
        .await
        .expect("admitted");
    wait_for(&imports, "short-lived", "started", |object| {
        import_status(object).is_some()
    })
    .await;
    rig.advance(Duration::from_secs(15));
    wait_for(&imports, "short-lived", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    // Kept until the TTL has passed on the clock the operator shares with AWS...
    rig.advance(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        imports.get_opt("short-lived").await.expect("get").is_some(),
        "kept before the TTL"
    );
    // ...and deleted after.
    let describes = rig.calls(Operation::DescribeFhirImportJob);
    rig.advance(Duration::from_secs(61));
    super::harness::wait_gone(&imports, "short-lived").await;
    assert_eq!(
        rig.calls(Operation::DescribeFhirImportJob),
        describes,
        "no AWS call for a finished job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_datastore_ids_need_the_operator_flag() {
    let rig = Rig::start().await;
    let datastore = create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let id = datastore
        .status
        .and_then(|status| status.datastore_id)
        .expect("id");
    let exports = rig.api::<FHIRExportJob>();
    let mut job = export_job("by-id", "unused");
    job.spec.datastore_ref = None;
    job.spec.datastore_id = Some(id.clone());
    exports
        .create(&PostParams::default(), &job)
        .await
        .expect("admitted");
    let refused = wait_for(&exports, "by-id", "Stalled", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Stalled")
                == ("True".to_owned(), "DatastoreIdRefsDisabled".to_owned())
        })
    })
    .await;
    assert!(refused.status.is_some_and(|status| status.job_id.is_none()));
    assert_eq!(rig.calls(Operation::StartFhirExportJob), 0);

    let permissive = Rig::start_with(
        healthlake_operator::emulator::EmulatorConfig::for_tests(),
        super::harness::unlimited(),
        |settings| {
            settings.allow_datastore_id_refs = true;
        },
    )
    .await;
    let datastore = create_ready(&permissive, "patients", "  deletionPolicy: Delete\n").await;
    job.spec.datastore_id = datastore.status.and_then(|status| status.datastore_id);
    let exports = permissive.api::<FHIRExportJob>();
    exports
        .create(&PostParams::default(), &job)
        .await
        .expect("admitted");
    wait_for(&exports, "by-id", "started", |object| {
        export_status(object).is_some()
    })
    .await;
    assert_eq!(permissive.calls(Operation::StartFhirExportJob), 1);
}

/// Events record what the operator did, one per object on the happy path (`Created`,
/// `Started`); what AWS does on its own (ACTIVE, IN_PROGRESS, COMPLETED) shows in the conditions.
/// Errors are Warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_costs_one_event_per_object_and_errors_are_warnings() {
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    let imports = rig.api::<FHIRImportJob>();
    imports
        .create(&PostParams::default(), &import_job("loaded", "patients"))
        .await
        .expect("admitted");
    wait_for(&imports, "loaded", "started", |object| {
        import_status(object).is_some()
    })
    .await;
    rig.advance(Duration::from_secs(15));
    wait_for(&imports, "loaded", "Ready", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Ready"))
    })
    .await;
    rig.emulator.inject(Fault::AccessDenied {
        operation: Operation::StartFhirImportJob,
    });
    imports
        .create(&PostParams::default(), &import_job("denied", "patients"))
        .await
        .expect("admitted");
    wait_for(&imports, "denied", "Stalled", |object| {
        object
            .status
            .as_ref()
            .is_some_and(|status| is_true(&status.conditions, "Stalled"))
    })
    .await;
    let reasons = |kind: &'static str, name: &'static str, warning: bool| {
        event_reasons(&rig, kind, name, warning)
    };
    eventually("the job's error is a Warning event", || async {
        reasons("FHIRImportJob", "denied", true)
            .await
            .iter()
            .any(|reason| reason == "AccessDenied")
    })
    .await;
    // Everything about the datastore and the finished job was published before the later job
    // stalled: these lists are complete.
    assert_eq!(
        reasons("FHIRDatastore", "patients", false).await,
        ["Created"]
    );
    assert_eq!(
        reasons("FHIRDatastore", "patients", true).await,
        Vec::<String>::new()
    );
    assert_eq!(reasons("FHIRImportJob", "loaded", false).await, ["Started"]);
    assert_eq!(
        reasons("FHIRImportJob", "loaded", true).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_and_jobs_with_errors_stall_with_what_aws_reported() {
    use healthlake_operator::emulator::{InjectedJobOutcome, JobKind};
    let rig = Rig::start().await;
    create_ready(&rig, "patients", "  deletionPolicy: Delete\n").await;
    rig.emulator.inject(Fault::JobOutcome {
        job_kind: Some(JobKind::Export),
        job_name: Some("broken-export".to_owned()),
        outcome: InjectedJobOutcome::Failed {
            message: "the output bucket denied access".to_owned(),
        },
    });
    rig.emulator.inject(Fault::JobOutcome {
        job_kind: Some(JobKind::Import),
        job_name: Some("messy-import".to_owned()),
        outcome: InjectedJobOutcome::CompletedWithErrors {
            resources_with_error: 7,
            files_with_error: 1,
        },
    });
    let exports = rig.api::<FHIRExportJob>();
    let imports = rig.api::<FHIRImportJob>();
    exports
        .create(
            &PostParams::default(),
            &export_job("broken-export", "patients"),
        )
        .await
        .expect("admitted");
    imports
        .create(
            &PostParams::default(),
            &import_job("messy-import", "patients"),
        )
        .await
        .expect("admitted");
    let stalled =
        |object_conditions: Option<
            &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
        >| { object_conditions.is_some_and(|conditions| is_true(conditions, "Stalled")) };
    let converged = async {
        loop {
            rig.advance(Duration::from_secs(5));
            let export = exports.get("broken-export").await.expect("export");
            let import = imports.get("messy-import").await.expect("import");
            if stalled(export.status.as_ref().map(|status| &status.conditions))
                && stalled(import.status.as_ref().map(|status| &status.conditions))
            {
                return (export, import);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let (export, import) = tokio::time::timeout(Duration::from_secs(30), converged)
        .await
        .expect("both jobs ended");

    let status = export.status.expect("status");
    assert_eq!(
        status
            .job_status
            .map(|status| status.to_string())
            .as_deref(),
        Some("FAILED")
    );
    assert_eq!(condition(&status.conditions, "Stalled").1, "Failed");
    assert_eq!(
        status.message.as_deref(),
        Some("the output bucket denied access")
    );
    let stall = status
        .conditions
        .iter()
        .find(|condition| condition.type_ == "Stalled")
        .expect("stalled");
    assert!(
        stall.message.contains("the output bucket denied access"),
        "{}",
        stall.message
    );

    let status = import.status.expect("status");
    assert_eq!(
        status
            .job_status
            .map(|status| status.to_string())
            .as_deref(),
        Some("COMPLETED_WITH_ERRORS")
    );
    assert_eq!(
        condition(&status.conditions, "Stalled").1,
        "CompletedWithErrors"
    );
    assert_eq!(condition(&status.conditions, "Ready").0, "False");
    let progress = status.progress.expect("progress");
    assert_eq!(
        progress.total_number_of_resources_with_customer_error,
        Some(7)
    );
    assert_eq!(
        progress.total_number_of_files_read_with_customer_error,
        Some(1)
    );
}
