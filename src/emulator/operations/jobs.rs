//! StartFHIRImportJob, StartFHIRExportJob, DescribeFHIR*Job and ListFHIR*Jobs.

use serde_json::{Map, Value, json};

use super::Context;
use super::datastores::find;
use crate::emulator::faults::JobKind;
use crate::emulator::idempotency;
use crate::emulator::operation::Operation;
use crate::emulator::pagination::paginate;
use crate::emulator::state::{DatastoreStatus, JobRecord, JobStatus, Progress};
use crate::emulator::validate::{
    CLIENT_TOKEN, DATASTORE_ID, ENCRYPTION_KEY_ID, IAM_ROLE_ARN, JOB_ID, JOB_NAME, JOB_STATUSES,
    Members, NEXT_TOKEN, S3_URI, VALIDATION_LEVELS,
};
use crate::emulator::wire::{AwsError, epoch_seconds};

/// Reads an `OutputDataConfig` union (its one member is `S3Configuration`).
fn read_output_data_config(request: &Members<'_>, name: &str) -> Result<Value, AwsError> {
    let output = request.structure(name, true)?;
    let s3 = match output {
        Some(output) => output.structure("S3Configuration", false)?,
        None => None,
    };
    let Some(s3) = s3 else {
        return Err(AwsError::validation(format!(
            "{name} must set exactly one member: S3Configuration"
        )));
    };
    let uri = s3.string("S3Uri", &S3_URI, true)?;
    let key = s3.string("KmsKeyId", &ENCRYPTION_KEY_ID, true)?;
    Ok(json!({"S3Configuration": {"S3Uri": uri, "KmsKeyId": key}}))
}

/// Reads an `InputDataConfig` union (its one member is `S3Uri`).
fn read_input_data_config(request: &Members<'_>) -> Result<Value, AwsError> {
    let uri = match request.structure("InputDataConfig", true)? {
        Some(input) => input.string("S3Uri", &S3_URI, false)?,
        None => None,
    };
    match uri {
        Some(uri) => Ok(json!({ "S3Uri": uri })),
        None => Err(AwsError::validation(
            "InputDataConfig must set exactly one member: S3Uri",
        )),
    }
}

fn start(context: &mut Context<'_>, body: &Value, kind: JobKind) -> Result<Value, AwsError> {
    let operation = match kind {
        JobKind::Import => Operation::StartFhirImportJob,
        JobKind::Export => Operation::StartFhirExportJob,
    };
    let request = Members::of_request(body)?;
    let token = request.string("ClientToken", &CLIENT_TOKEN, false)?;
    let name = request.string("JobName", &JOB_NAME, false)?;
    let datastore_id = request
        .string("DatastoreId", &DATASTORE_ID, true)?
        .unwrap_or_default();
    let (input_data_config, output_data_config, validation_level) = match kind {
        JobKind::Import => (
            Some(read_input_data_config(&request)?),
            read_output_data_config(&request, "JobOutputDataConfig")?,
            request.enumeration("ValidationLevel", VALIDATION_LEVELS, false)?,
        ),
        JobKind::Export => (
            None,
            read_output_data_config(&request, "OutputDataConfig")?,
            None,
        ),
    };
    let role = request
        .string("DataAccessRoleArn", &IAM_ROLE_ARN, true)?
        .unwrap_or_default();
    if let Some(first) = idempotency::replay(context.state, operation, token.as_deref(), body)? {
        return Ok(first);
    }
    let status = find(context, &datastore_id)?.status;
    if status != DatastoreStatus::Active {
        return Err(AwsError::validation(format!(
            "Datastore {datastore_id} is in status {}; jobs can only start on an ACTIVE data store",
            status.aws_name()
        )));
    }

    let id = context.state.new_id();
    let planned_outcome = context.faults.take_job_outcome(kind, name.as_deref());
    let job = JobRecord {
        kind,
        id: id.clone(),
        sequence: context.state.take_sequence(),
        datastore_id: datastore_id.clone(),
        name,
        submit_time: context.now,
        data_access_role_arn: role,
        input_data_config,
        output_data_config,
        validation_level,
        status: JobStatus::Submitted,
        started_at: None,
        end_time: None,
        message: None,
        planned_outcome,
        progress: Progress::default(),
    };
    context.state.insert_job(job);
    let response = json!({
        "JobId": id,
        "JobStatus": JobStatus::Submitted.aws_name(),
        "DatastoreId": datastore_id,
    });
    idempotency::remember(context.state, operation, token.as_deref(), body, &response);
    Ok(response)
}

/// `StartFHIRImportJob`.
pub fn start_import(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    start(context, body, JobKind::Import)
}

/// `StartFHIRExportJob`.
pub fn start_export(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    start(context, body, JobKind::Export)
}

fn kind_of(operation: Operation) -> JobKind {
    match operation {
        Operation::DescribeFhirExportJob | Operation::ListFhirExportJobs => JobKind::Export,
        _ => JobKind::Import,
    }
}

/// `ImportJobProperties` or `ExportJobProperties` of a job.
fn properties(job: &JobRecord) -> Value {
    let mut properties = Map::new();
    properties.insert("JobId".into(), Value::from(job.id.clone()));
    properties.insert("JobStatus".into(), Value::from(job.status.aws_name()));
    properties.insert("SubmitTime".into(), epoch_seconds(job.submit_time));
    properties.insert("DatastoreId".into(), Value::from(job.datastore_id.clone()));
    properties.insert(
        "DataAccessRoleArn".into(),
        Value::from(job.data_access_role_arn.clone()),
    );
    if let Some(name) = &job.name {
        properties.insert("JobName".into(), Value::from(name.clone()));
    }
    if let Some(end) = job.end_time {
        properties.insert("EndTime".into(), epoch_seconds(end));
    }
    if let Some(message) = &job.message {
        properties.insert("Message".into(), Value::from(message.clone()));
    }
    match job.kind {
        JobKind::Export => {
            properties.insert("OutputDataConfig".into(), job.output_data_config.clone());
        }
        JobKind::Import => {
            if let Some(input) = &job.input_data_config {
                properties.insert("InputDataConfig".into(), input.clone());
            }
            properties.insert("JobOutputDataConfig".into(), job.output_data_config.clone());
            if let Some(level) = &job.validation_level {
                properties.insert("ValidationLevel".into(), Value::from(level.clone()));
            }
            let progress = &job.progress;
            properties.insert(
                "JobProgressReport".into(),
                json!({
                    "TotalNumberOfScannedFiles": progress.scanned_files,
                    "TotalSizeOfScannedFilesInMB": progress.scanned_megabytes,
                    "TotalNumberOfImportedFiles": progress.imported_files,
                    "TotalNumberOfResourcesScanned": progress.resources_scanned,
                    "TotalNumberOfResourcesImported": progress.resources_imported,
                    "TotalNumberOfResourcesWithCustomerError": progress.resources_with_error,
                    "TotalNumberOfFilesReadWithCustomerError": progress.files_with_error,
                    "Throughput": progress.throughput,
                }),
            );
        }
    }
    Value::Object(properties)
}

fn properties_key(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Import => "ImportJobProperties",
        JobKind::Export => "ExportJobProperties",
    }
}

/// `DescribeFHIRImportJob` and `DescribeFHIRExportJob`.
pub fn describe(
    context: &mut Context<'_>,
    body: &Value,
    operation: Operation,
) -> Result<Value, AwsError> {
    let kind = kind_of(operation);
    let request = Members::of_request(body)?;
    let datastore_id = request
        .string("DatastoreId", &DATASTORE_ID, true)?
        .unwrap_or_default();
    let job_id = request.string("JobId", &JOB_ID, true)?.unwrap_or_default();
    find(context, &datastore_id)?;
    let job = context
        .state
        .jobs
        .get(&job_id)
        .filter(|job| job.kind == kind && job.datastore_id == datastore_id)
        .ok_or_else(|| {
            AwsError::not_found(format!(
                "Job {job_id} was not found for datastore {datastore_id}"
            ))
        })?;
    Ok(json!({ properties_key(kind): properties(job) }))
}

/// `ListFHIRImportJobs` and `ListFHIRExportJobs`.
pub fn list(
    context: &mut Context<'_>,
    body: &Value,
    operation: Operation,
) -> Result<Value, AwsError> {
    let kind = kind_of(operation);
    let request = Members::of_request(body)?;
    let datastore_id = request
        .string("DatastoreId", &DATASTORE_ID, true)?
        .unwrap_or_default();
    let next_token = request.string("NextToken", &NEXT_TOKEN, false)?;
    let max_results = request.integer("MaxResults", 1, 500)?;
    let name = request.string("JobName", &JOB_NAME, false)?;
    let status = request.enumeration("JobStatus", JOB_STATUSES, false)?;
    let before = request.timestamp("SubmittedBefore")?;
    let after = request.timestamp("SubmittedAfter")?;
    find(context, &datastore_id)?;
    let matching = context
        .state
        .jobs_of(&datastore_id)
        .filter(|job| job.kind == kind)
        .filter(|job| name.is_none() || job.name == name)
        .filter(|job| {
            status
                .as_deref()
                .is_none_or(|status| job.status.aws_name() == status)
        })
        .filter(|job| before.is_none_or(|before| job.submit_time < before))
        .filter(|job| after.is_none_or(|after| job.submit_time > after))
        .map(|job| (job.sequence, properties(job)));
    let token_kind = match kind {
        JobKind::Import => "import-jobs",
        JobKind::Export => "export-jobs",
    };
    let (page, token) = paginate(token_kind, matching, max_results, next_token.as_deref())?;
    let list_key = match kind {
        JobKind::Import => "ImportJobPropertiesList",
        JobKind::Export => "ExportJobPropertiesList",
    };
    let mut response = json!({ list_key: page });
    if let (Some(token), Value::Object(object)) = (token, &mut response) {
        object.insert("NextToken".into(), Value::from(token));
    }
    Ok(response)
}
