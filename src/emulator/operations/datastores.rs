//! CreateFHIRDatastore, DeleteFHIRDatastore, DescribeFHIRDatastore, ListFHIRDatastores.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Context;
use crate::emulator::idempotency;
use crate::emulator::operation::Operation;
use crate::emulator::pagination::paginate;
use crate::emulator::state::{DatastoreRecord, DatastoreStatus};
use crate::emulator::validate::{
    AUTHORIZATION_STRATEGIES, CLIENT_TOKEN, CMK_TYPES, DATASTORE_ID, DATASTORE_NAME,
    DATASTORE_STATUSES, ENCRYPTION_KEY_ID, FHIR_VERSIONS, LAMBDA_ARN, METADATA, Members,
    NEXT_TOKEN, PRELOAD_DATA_TYPES,
};
use crate::emulator::wire::{AwsError, epoch_seconds};

use super::tags::{MAX_TAGS_PER_RESOURCE, read_tags};

fn read_sse_configuration(request: &Members<'_>) -> Result<Value, AwsError> {
    let Some(sse) = request.structure("SseConfiguration", false)? else {
        return Ok(json!({"KmsEncryptionConfig": {"CmkType": "AWS_OWNED_KMS_KEY"}}));
    };
    let Some(kms) = sse.structure("KmsEncryptionConfig", true)? else {
        return Err(AwsError::validation("KmsEncryptionConfig is required"));
    };
    let cmk_type = kms
        .enumeration("CmkType", CMK_TYPES, true)?
        .unwrap_or_default();
    let key_id = kms.string("KmsKeyId", &ENCRYPTION_KEY_ID, false)?;
    let mut config = Map::new();
    config.insert("CmkType".into(), Value::from(cmk_type.clone()));
    match key_id {
        Some(key_id) => {
            config.insert("KmsKeyId".into(), Value::from(key_id));
        }
        None if cmk_type == "CUSTOMER_MANAGED_KMS_KEY" => {
            return Err(AwsError::validation(
                "KmsKeyId is required when CmkType is CUSTOMER_MANAGED_KMS_KEY",
            ));
        }
        None => {}
    }
    Ok(json!({ "KmsEncryptionConfig": config }))
}

fn read_identity_provider(request: &Members<'_>) -> Result<Value, AwsError> {
    let Some(identity) = request.structure("IdentityProviderConfiguration", false)? else {
        return Ok(
            json!({"AuthorizationStrategy": "AWS_AUTH", "FineGrainedAuthorizationEnabled": false}),
        );
    };
    let strategy = identity
        .enumeration("AuthorizationStrategy", AUTHORIZATION_STRATEGIES, true)?
        .unwrap_or_default();
    let fine_grained = identity.boolean("FineGrainedAuthorizationEnabled")?;
    let metadata = identity.string("Metadata", &METADATA, false)?;
    let lambda = identity.string("IdpLambdaArn", &LAMBDA_ARN, false)?;
    if strategy != "AWS_AUTH" && (metadata.is_none() || lambda.is_none()) {
        return Err(AwsError::validation(format!(
            "Metadata and IdpLambdaArn are required when AuthorizationStrategy is {strategy}"
        )));
    }
    let mut config = Map::new();
    config.insert("AuthorizationStrategy".into(), Value::from(strategy));
    config.insert(
        "FineGrainedAuthorizationEnabled".into(),
        Value::from(fine_grained.unwrap_or(false)),
    );
    if let Some(metadata) = metadata {
        config.insert("Metadata".into(), Value::from(metadata));
    }
    if let Some(lambda) = lambda {
        config.insert("IdpLambdaArn".into(), Value::from(lambda));
    }
    Ok(Value::Object(config))
}

/// `CreateFHIRDatastore`.
pub fn create(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let token = request.string("ClientToken", &CLIENT_TOKEN, false)?;
    let name = request.string("DatastoreName", &DATASTORE_NAME, false)?;
    let type_version = request
        .enumeration("DatastoreTypeVersion", FHIR_VERSIONS, true)?
        .unwrap_or_default();
    let sse_configuration = read_sse_configuration(&request)?;
    let preload_data_config = match request.structure("PreloadDataConfig", false)? {
        Some(preload) => {
            let kind = preload.enumeration("PreloadDataType", PRELOAD_DATA_TYPES, true)?;
            Some(json!({ "PreloadDataType": kind }))
        }
        None => None,
    };
    let identity_provider_configuration = read_identity_provider(&request)?;
    let tags = read_tags(&request, "Tags", false)?.unwrap_or_default();
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(AwsError::validation(format!(
            "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags"
        )));
    }
    let operation = Operation::CreateFhirDatastore;
    if let Some(first) = idempotency::replay(context.state, operation, token.as_deref(), body)? {
        return Ok(first);
    }
    check_datastore_quota(context)?;

    let id = context.state.new_id();
    let planned_failure = context.faults.take_creation_failure(name.as_deref());
    let record = DatastoreRecord {
        id: id.clone(),
        sequence: context.state.take_sequence(),
        name,
        type_version,
        created_at: context.now,
        sse_configuration,
        preload_data_config,
        identity_provider_configuration,
        tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
        status: DatastoreStatus::Creating,
        status_since: context.now,
        planned_failure,
        error_cause: None,
    };
    context.state.insert_datastore(record);
    let response = json!({
        "DatastoreId": id,
        "DatastoreArn": context.datastore_arn(&id),
        "DatastoreStatus": DatastoreStatus::Creating.aws_name(),
        "DatastoreEndpoint": context.datastore_endpoint(&id),
    });
    idempotency::remember(context.state, operation, token.as_deref(), body, &response);
    Ok(response)
}

/// Refuses a new datastore when the region already holds the data store quota's worth of
/// datastores that are not DELETED. CreateFHIRDatastore declares no quota error in
/// HealthLake's model, so this is a ValidationException (a guess).
fn check_datastore_quota(context: &Context<'_>) -> Result<(), AwsError> {
    let Some(max) = context.config.max_datastores else {
        return Ok(());
    };
    let count = context.state.live_datastores();
    if count < max as usize {
        return Ok(());
    }
    Err(AwsError::validation(format!(
        "data store quota exceeded: the account already has {count} data stores in {} (the quota is {max}); delete a data store or request a quota increase",
        context.region
    )))
}

/// Finds a datastore or answers ResourceNotFoundException.
pub fn find<'a>(context: &'a Context<'_>, id: &str) -> Result<&'a DatastoreRecord, AwsError> {
    context
        .state
        .datastores
        .get(id)
        .ok_or_else(|| AwsError::not_found(format!("Datastore with id {id} was not found")))
}

/// `DatastoreProperties` of a datastore.
fn properties(context: &Context<'_>, datastore: &DatastoreRecord) -> Value {
    let mut properties = json!({
        "DatastoreId": datastore.id,
        "DatastoreArn": context.datastore_arn(&datastore.id),
        "DatastoreStatus": datastore.status.aws_name(),
        "CreatedAt": epoch_seconds(datastore.created_at),
        "DatastoreTypeVersion": datastore.type_version,
        "DatastoreEndpoint": context.datastore_endpoint(&datastore.id),
        "SseConfiguration": datastore.sse_configuration,
        "IdentityProviderConfiguration": datastore.identity_provider_configuration,
    });
    if let Value::Object(object) = &mut properties {
        if let Some(name) = &datastore.name {
            object.insert("DatastoreName".into(), Value::from(name.clone()));
        }
        if let Some(preload) = &datastore.preload_data_config {
            object.insert("PreloadDataConfig".into(), preload.clone());
        }
        if let Some(cause) = &datastore.error_cause {
            object.insert(
                "ErrorCause".into(),
                json!({"ErrorCategory": cause.category.aws_name(), "ErrorMessage": cause.message}),
            );
        }
    }
    properties
}

/// `DescribeFHIRDatastore`.
pub fn describe(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let id = request
        .string("DatastoreId", &DATASTORE_ID, true)?
        .unwrap_or_default();
    let datastore = find(context, &id)?;
    Ok(json!({ "DatastoreProperties": properties(context, datastore) }))
}

/// `DeleteFHIRDatastore`.
pub fn delete(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let id = request
        .string("DatastoreId", &DATASTORE_ID, true)?
        .unwrap_or_default();
    let status = find(context, &id)?.status;
    match status {
        DatastoreStatus::Creating | DatastoreStatus::Deleting => {
            return Err(AwsError::conflict(format!(
                "Datastore {id} is in status {} and cannot be deleted now",
                status.aws_name()
            )));
        }
        DatastoreStatus::Deleted => {
            return Err(AwsError::not_found(format!(
                "Datastore with id {id} was not found"
            )));
        }
        DatastoreStatus::Active | DatastoreStatus::CreateFailed => {}
    }
    let now = context.now;
    context
        .state
        .set_datastore_status(&id, DatastoreStatus::Deleting, now);
    context.state.fail_jobs_of(&id, now);
    Ok(json!({
        "DatastoreId": id,
        "DatastoreArn": context.datastore_arn(&id),
        "DatastoreStatus": DatastoreStatus::Deleting.aws_name(),
        "DatastoreEndpoint": context.datastore_endpoint(&id),
    }))
}

/// `ListFHIRDatastores`.
pub fn list(context: &mut Context<'_>, body: &Value) -> Result<Value, AwsError> {
    let request = Members::of_request(body)?;
    let next_token = request.string("NextToken", &NEXT_TOKEN, false)?;
    let max_results = request.integer("MaxResults", 1, 500)?;
    let (name, status, before, after) = match request.structure("Filter", false)? {
        Some(filter) => (
            filter.string("DatastoreName", &DATASTORE_NAME, false)?,
            filter.enumeration("DatastoreStatus", DATASTORE_STATUSES, false)?,
            filter.timestamp("CreatedBefore")?,
            filter.timestamp("CreatedAfter")?,
        ),
        None => (None, None, None, None),
    };
    let matching = context
        .state
        .datastores_in_order()
        .filter(|datastore| name.is_none() || datastore.name == name)
        .filter(|datastore| {
            status
                .as_deref()
                .is_none_or(|status| datastore.status.aws_name() == status)
        })
        .filter(|datastore| before.is_none_or(|before| datastore.created_at < before))
        .filter(|datastore| after.is_none_or(|after| datastore.created_at > after))
        .map(|datastore| (datastore.sequence, properties(context, datastore)));
    let (page, token) = paginate("datastores", matching, max_results, next_token.as_deref())?;
    let mut response = json!({ "DatastorePropertiesList": page });
    if let (Some(token), Value::Object(object)) = (token, &mut response) {
        object.insert("NextToken".into(), Value::from(token));
    }
    Ok(response)
}
