//! Decisions for `FHIRDatastore`: create once, follow the lifecycle, keep tags in sync, report
//! drift, and delete only what the object owns, only when asked.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Notice, ObjectMeta, Phase, Requeue, phase_changed, set_phase};
use crate::api::{
    DatastoreStatus, DeletionPolicy, FHIRDatastoreSpec, FHIRDatastoreStatus,
    IdentityProviderStatus, OWNER_UID_TAG, RESERVED_TAG_PREFIX,
};
use crate::healthlake::{
    CreateDatastore, Datastore, DatastoreSummary, Encryption, IdentityProvider,
};

/// How the controller should find out what AWS holds for the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Describe this datastore (its id is in the spec or the status).
    Describe {
        /// The datastore id.
        datastore_id: String,
    },
    /// No id is known: list datastores with this name and pick the one whose owner tag is the
    /// object's uid. This finds a datastore created just before a crash lost its id.
    FindOwned {
        /// The datastore name to list.
        name: String,
    },
}

/// What AWS reported for the object.
#[derive(Clone, Debug, PartialEq, Eq)]
// One value per reconcile, moved once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum Observed {
    /// No id is known and no datastore carries this object's owner tag.
    Absent,
    /// The datastore and its tags.
    Present {
        /// As DescribeFHIRDatastore reported it.
        datastore: Datastore,
        /// As ListTagsForResource reported them.
        tags: BTreeMap<String, String>,
    },
    /// The datastore id is known, but AWS answers that it does not exist.
    Gone {
        /// The id AWS no longer knows.
        datastore_id: String,
    },
}

/// The one AWS call (or finalizer release) a decision asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatastoreAction {
    /// Nothing to do now.
    None,
    /// CreateFHIRDatastore.
    Create(CreateDatastore),
    /// DeleteFHIRDatastore.
    Delete {
        /// The datastore to delete.
        datastore_id: String,
    },
    /// TagResource and UntagResource, so that AWS holds exactly the desired tags.
    SyncTags {
        /// The datastore ARN.
        arn: String,
        /// Tags to add or overwrite.
        add: BTreeMap<String, String>,
        /// Tag keys to remove.
        remove: Vec<String>,
    },
    /// Cleanup is complete (AWS confirmed the deletion, or the policy is Retain): remove the
    /// finalizer.
    ReleaseFinalizer,
}

/// The outcome of a datastore decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to do.
    pub action: DatastoreAction,
    /// The status to write (only if it differs from the current one).
    pub status: FHIRDatastoreStatus,
    /// When to look again.
    pub requeue: Requeue,
    /// An event for users, when something they care about changed.
    pub notice: Option<Notice>,
}

/// Everything a datastore decision reads.
#[derive(Clone, Debug)]
pub struct DatastoreInput<'a> {
    /// The object's identity.
    pub meta: &'a ObjectMeta,
    /// Its spec.
    pub spec: &'a FHIRDatastoreSpec,
    /// Its current status.
    pub status: &'a FHIRDatastoreStatus,
    /// The region the datastore lives in (the spec's, else the operator's default).
    pub region: &'a str,
    /// What AWS reported.
    pub observed: &'a Observed,
    /// The current time.
    pub now: Timestamp,
}

/// The datastore's name in HealthLake: `spec.datastoreName`, else `metadata.name`.
pub fn datastore_name(spec: &FHIRDatastoreSpec, meta: &ObjectMeta) -> String {
    spec.datastore_name
        .clone()
        .unwrap_or_else(|| meta.name.clone())
}

/// How to find the datastore: by the id in the spec (adoption) or status, else by owner tag.
pub fn lookup(spec: &FHIRDatastoreSpec, status: &FHIRDatastoreStatus, meta: &ObjectMeta) -> Lookup {
    match spec.datastore_id.as_ref().or(status.datastore_id.as_ref()) {
        Some(datastore_id) => Lookup::Describe {
            datastore_id: datastore_id.clone(),
        },
        None => Lookup::FindOwned {
            name: datastore_name(spec, meta),
        },
    }
}

/// Picks the datastore this object created from same-named candidates: the one whose owner tag
/// is the object's uid, preferring one that is not DELETED.
pub fn find_owned(
    candidates: Vec<(Datastore, BTreeMap<String, String>)>,
    uid: &str,
) -> Option<(Datastore, BTreeMap<String, String>)> {
    let mut owned: Vec<_> = candidates
        .into_iter()
        .filter(|(_, tags)| tags.get(OWNER_UID_TAG).is_some_and(|owner| owner == uid))
        .collect();
    owned.sort_by_key(|(datastore, _)| datastore.status == DatastoreStatus::Deleted);
    owned.into_iter().next()
}

/// The tags AWS should hold: the spec's, plus the owner tag on datastores the operator created.
pub fn desired_tags(spec: &FHIRDatastoreSpec, meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    if spec.datastore_id.is_none() {
        tags.insert(OWNER_UID_TAG.to_owned(), meta.uid.clone());
    }
    tags
}

/// The tags to add or overwrite and the keys to remove so that AWS holds `desired`. Tags under
/// the operator's reserved prefix are never removed.
pub fn tag_changes(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let add = desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let remove = observed
        .keys()
        .filter(|key| !desired.contains_key(*key) && !key.starts_with(RESERVED_TAG_PREFIX))
        .cloned()
        .collect();
    (add, remove)
}

/// The CreateFHIRDatastore request for the spec, with the object's uid as ClientToken.
pub fn create_request(spec: &FHIRDatastoreSpec, meta: &ObjectMeta) -> CreateDatastore {
    CreateDatastore {
        client_token: meta.uid.clone(),
        name: datastore_name(spec, meta),
        type_version: spec.datastore_type_version,
        encryption: spec.sse_configuration.as_ref().map(|sse| Encryption {
            cmk_type: sse.kms_encryption_config.cmk_type,
            kms_key_id: sse.kms_encryption_config.kms_key_id.clone(),
        }),
        preload: spec
            .preload_data_config
            .as_ref()
            .map(|preload| preload.preload_data_type),
        identity_provider: spec.identity_provider_configuration.as_ref().map(|idp| {
            IdentityProvider {
                authorization_strategy: idp.authorization_strategy,
                fine_grained_authorization_enabled: idp.fine_grained_authorization_enabled,
                metadata: idp
                    .metadata
                    .as_ref()
                    .map(|document| serde_json::Value::Object(document.clone()).to_string()),
                idp_lambda_arn: idp.idp_lambda_arn.clone(),
            }
        }),
        tags: desired_tags(spec, meta),
    }
}

/// Decides what to do for a datastore object that is not being deleted.
pub fn apply(input: &DatastoreInput<'_>) -> Decision {
    let generation = input.meta.generation;
    let now = input.now;
    let mut status = input.status.clone();
    status.observed_generation = generation;
    status.region = Some(input.region.to_owned());

    let (action, requeue, notice) = match input.observed {
        Observed::Absent => {
            let request = create_request(input.spec, input.meta);
            let message = format!("creating datastore {} in {}", request.name, input.region);
            set_phase(
                &mut status.conditions,
                Phase::Progressing,
                "Creating",
                &message,
                generation,
                now,
            );
            let notice = Notice::normal("Creating", message);
            (
                DatastoreAction::Create(request),
                Requeue::Soon,
                Some(notice),
            )
        }
        Observed::Gone { datastore_id } => {
            let (reason, message) = if input.spec.datastore_id.is_some()
                && input.status.datastore_status.is_none()
            {
                (
                    "DatastoreNotFound",
                    format!(
                        "datastore {datastore_id} named in spec.datastoreId does not exist in {}: check the id and region",
                        input.region
                    ),
                )
            } else {
                (
                    "DatastoreGone",
                    format!(
                        "datastore {datastore_id} no longer exists in HealthLake: it was deleted outside Kubernetes; \
                         delete and re-create this FHIRDatastore to create a new one"
                    ),
                )
            };
            set_phase(
                &mut status.conditions,
                Phase::Stalled,
                reason,
                &message,
                generation,
                now,
            );
            (
                DatastoreAction::None,
                Requeue::Resync,
                Some(Notice::warning(reason, message)),
            )
        }
        Observed::Present { datastore, tags } => {
            record(&mut status, datastore, tags);
            present(input, &mut status, datastore, tags)
        }
    };

    let notice = notice.filter(|_| phase_changed(&input.status.conditions, &status.conditions));
    Decision {
        action,
        status,
        requeue,
        notice,
    }
}

fn present(
    input: &DatastoreInput<'_>,
    status: &mut FHIRDatastoreStatus,
    datastore: &Datastore,
    tags: &BTreeMap<String, String>,
) -> (DatastoreAction, Requeue, Option<Notice>) {
    let generation = input.meta.generation;
    let now = input.now;
    let id = &datastore.id;
    match &datastore.status {
        DatastoreStatus::Creating => {
            let message = format!("HealthLake is creating datastore {id}");
            set_phase(
                &mut status.conditions,
                Phase::Progressing,
                "Creating",
                &message,
                generation,
                now,
            );
            (DatastoreAction::None, Requeue::LongOperation, None)
        }
        DatastoreStatus::Active => {
            let (add, remove) = tag_changes(&desired_tags(input.spec, input.meta), tags);
            if add.is_empty() && remove.is_empty() {
                let message = format!("datastore {id} is active and in sync");
                set_phase(
                    &mut status.conditions,
                    Phase::Ready,
                    "Active",
                    &message,
                    generation,
                    now,
                );
                (
                    DatastoreAction::None,
                    Requeue::Resync,
                    Some(Notice::normal("Active", message)),
                )
            } else {
                let message = tag_message(id, &add, &remove);
                set_phase(
                    &mut status.conditions,
                    Phase::Progressing,
                    "SyncingTags",
                    &message,
                    generation,
                    now,
                );
                let action = DatastoreAction::SyncTags {
                    arn: datastore.arn.clone(),
                    add,
                    remove,
                };
                (
                    action,
                    Requeue::Soon,
                    Some(Notice::normal("SyncingTags", message)),
                )
            }
        }
        DatastoreStatus::CreateFailed => {
            let cause = datastore
                .error_cause
                .as_ref()
                .map(|cause| {
                    let category = cause
                        .error_category
                        .as_ref()
                        .map(|c| c.as_str())
                        .unwrap_or("UNKNOWN");
                    format!(
                        "{category}: {}",
                        cause.error_message.as_deref().unwrap_or("no message")
                    )
                })
                .unwrap_or_else(|| "no error cause reported".to_owned());
            let message = format!(
                "HealthLake failed to create datastore {id}: {cause}; fix the cause, then delete and re-create this FHIRDatastore"
            );
            set_phase(
                &mut status.conditions,
                Phase::Stalled,
                "CreateFailed",
                &message,
                generation,
                now,
            );
            (
                DatastoreAction::None,
                Requeue::AwaitChange,
                Some(Notice::warning("CreateFailed", message)),
            )
        }
        DatastoreStatus::Deleting | DatastoreStatus::Deleted => {
            let message = format!(
                "datastore {id} is {} in HealthLake: it was deleted outside Kubernetes; \
                 delete and re-create this FHIRDatastore to create a new one",
                datastore.status
            );
            set_phase(
                &mut status.conditions,
                Phase::Stalled,
                "DatastoreGone",
                &message,
                generation,
                now,
            );
            (
                DatastoreAction::None,
                Requeue::Resync,
                Some(Notice::warning("DatastoreGone", message)),
            )
        }
        DatastoreStatus::Unknown(value) => {
            let message = format!(
                "HealthLake reports status {value} for datastore {id}, which this operator version does not know; \
                 it will look again"
            );
            set_phase(
                &mut status.conditions,
                Phase::Progressing,
                "UnknownStatus",
                &message,
                generation,
                now,
            );
            (
                DatastoreAction::None,
                Requeue::LongOperation,
                Some(Notice::warning("UnknownStatus", message)),
            )
        }
    }
}

/// Decides what to do for a datastore object that is being deleted (its finalizer is held).
pub fn cleanup(input: &DatastoreInput<'_>) -> Decision {
    let generation = input.meta.generation;
    let now = input.now;
    let mut status = input.status.clone();
    if let Observed::Present { datastore, tags } = input.observed {
        record(&mut status, datastore, tags);
    }
    let release = |message: String| {
        (
            DatastoreAction::ReleaseFinalizer,
            Requeue::AwaitChange,
            Some(Notice::normal("Deleted", message)),
        )
    };

    let (action, requeue, notice) = match (input.spec.deletion_policy, input.observed) {
        (DeletionPolicy::Retain, observed) => {
            let id = match observed {
                Observed::Present { datastore, .. } => Some(datastore.id.as_str()),
                Observed::Gone { datastore_id } => Some(datastore_id.as_str()),
                Observed::Absent => None,
            };
            let message = match id {
                Some(id) => {
                    format!("left datastore {id} in HealthLake as deletionPolicy is Retain")
                }
                None => "no datastore to retain".to_owned(),
            };
            (
                DatastoreAction::ReleaseFinalizer,
                Requeue::AwaitChange,
                Some(Notice::normal("Retained", message)),
            )
        }
        (DeletionPolicy::Delete, Observed::Absent) => {
            release("no datastore was created, nothing to delete".to_owned())
        }
        (DeletionPolicy::Delete, Observed::Gone { datastore_id }) => release(format!(
            "datastore {datastore_id} no longer exists in HealthLake"
        )),
        (DeletionPolicy::Delete, Observed::Present { datastore, .. }) => {
            let id = &datastore.id;
            match &datastore.status {
                DatastoreStatus::Creating => {
                    let message = format!(
                        "datastore {id} is still being created; it will be deleted once HealthLake finishes"
                    );
                    set_phase(
                        &mut status.conditions,
                        Phase::Progressing,
                        "WaitingForCreation",
                        &message,
                        generation,
                        now,
                    );
                    (DatastoreAction::None, Requeue::LongOperation, None)
                }
                DatastoreStatus::Deleting => {
                    let message = format!("HealthLake is deleting datastore {id}");
                    set_phase(
                        &mut status.conditions,
                        Phase::Progressing,
                        "Deleting",
                        &message,
                        generation,
                        now,
                    );
                    (DatastoreAction::None, Requeue::LongOperation, None)
                }
                DatastoreStatus::Deleted => release(format!("HealthLake deleted datastore {id}")),
                DatastoreStatus::Active
                | DatastoreStatus::CreateFailed
                | DatastoreStatus::Unknown(_) => {
                    let message = format!("deleting datastore {id}");
                    set_phase(
                        &mut status.conditions,
                        Phase::Progressing,
                        "Deleting",
                        &message,
                        generation,
                        now,
                    );
                    let action = DatastoreAction::Delete {
                        datastore_id: id.clone(),
                    };
                    (
                        action,
                        Requeue::Soon,
                        Some(Notice::normal("Deleting", message)),
                    )
                }
            }
        }
    };
    Decision {
        action,
        status,
        requeue,
        notice,
    }
}

/// Records what CreateFHIRDatastore returned. The controller writes this status before doing
/// anything else, so that a crash right after never loses the id.
pub fn after_create(
    status: &FHIRDatastoreStatus,
    summary: &DatastoreSummary,
    meta: &ObjectMeta,
    now: Timestamp,
) -> FHIRDatastoreStatus {
    let mut status = status.clone();
    status.datastore_id = Some(summary.id.clone());
    status.datastore_arn = Some(summary.arn.clone());
    status.datastore_endpoint = Some(summary.endpoint.clone());
    status.datastore_status = Some(summary.status.clone());
    let message = format!("HealthLake is creating datastore {}", summary.id);
    set_phase(
        &mut status.conditions,
        Phase::Progressing,
        "Creating",
        &message,
        meta.generation,
        now,
    );
    status
}

/// Records what DeleteFHIRDatastore returned.
pub fn after_delete(
    status: &FHIRDatastoreStatus,
    summary: &DatastoreSummary,
    meta: &ObjectMeta,
    now: Timestamp,
) -> FHIRDatastoreStatus {
    let mut status = status.clone();
    status.datastore_status = Some(summary.status.clone());
    let message = format!("HealthLake is deleting datastore {}", summary.id);
    set_phase(
        &mut status.conditions,
        Phase::Progressing,
        "Deleting",
        &message,
        meta.generation,
        now,
    );
    status
}

fn record(
    status: &mut FHIRDatastoreStatus,
    datastore: &Datastore,
    tags: &BTreeMap<String, String>,
) {
    status.datastore_id = Some(datastore.id.clone());
    status.datastore_arn = Some(datastore.arn.clone());
    status.datastore_endpoint = Some(datastore.endpoint.clone());
    status.datastore_name = datastore.name.clone();
    status.datastore_status = Some(datastore.status.clone());
    status.created_at = datastore.created_at.map(Time);
    status.error_cause = datastore.error_cause.clone();
    status.tags = Some(tags.clone());
    status.identity_provider =
        datastore
            .identity_provider
            .as_ref()
            .map(|idp| IdentityProviderStatus {
                authorization_strategy: Some(idp.authorization_strategy.clone()),
                fine_grained_authorization_enabled: idp.fine_grained_authorization_enabled,
                idp_lambda_arn: idp.idp_lambda_arn.clone(),
            });
}

fn tag_message(id: &str, add: &BTreeMap<String, String>, remove: &[String]) -> String {
    let mut parts = Vec::new();
    if !add.is_empty() {
        parts.push(format!(
            "setting {}",
            add.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !remove.is_empty() {
        parts.push(format!("removing {}", remove.join(", ")));
    }
    format!("syncing tags of datastore {id}: {}", parts.join("; "))
}

#[cfg(test)]
mod tests;
