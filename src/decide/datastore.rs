//! Decisions for `FHIRDatastore`: create once, follow the lifecycle, keep tags in sync, report
//! drift, and delete only what the object owns, only when asked.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Notice, ObjectMeta, Phase, Requeue, Step, TAKING_LONG, keep_transition_times, set_phase,
    set_waiting, settle_failure, worth_sending,
};
use crate::api::{
    ConditionType, DatastoreStatus, DeletionPolicy, FHIRDatastoreSpec, FHIRDatastoreStatus,
    IdentityProviderStatus, OWNER_NAME_TAG, OWNER_UID_TAG, RESERVED_TAG_PREFIX,
};
use crate::healthlake::{
    CreateDatastore, Datastore, DatastoreSummary, Encryption, HealthLakeError, IdentityProvider,
};

/// Prefix of the tags AWS reserves for itself (`aws:cloudformation:stack-name`, ...): the
/// operator never adds, changes or removes them.
pub const AWS_TAG_PREFIX: &str = "aws:";

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
        /// As ListTagsForResource reported them; `None` when they were not read this time
        /// (see [`tags_needed`]): the status's last reading stands.
        tags: Option<BTreeMap<String, String>>,
    },
    /// The datastore id is known, but AWS answers that it does not exist.
    Gone {
        /// The id AWS no longer knows.
        datastore_id: String,
    },
    /// No datastore carries this object's owner tag, but one that an earlier object of the same
    /// namespace and name created (and retained) still exists.
    LeftBehind {
        /// The datastore left behind.
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
    /// The region the datastore lives in, as pinned in status (see [`pin`]).
    pub region: &'a str,
    /// What AWS reported.
    pub observed: &'a Observed,
    /// How long CREATING or DELETING may last before users are warned.
    pub stuck_after: Duration,
    /// The current time.
    pub now: Timestamp,
}

/// What happened when the controller carried out a decision's action.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The action needed no call.
    Nothing,
    /// CreateFHIRDatastore answered.
    Created(DatastoreSummary),
    /// TagResource and UntagResource succeeded.
    TagsSynced,
    /// DeleteFHIRDatastore answered.
    DeleteAccepted(DatastoreSummary),
    /// The call failed.
    Failed {
        /// How it failed.
        error: HealthLakeError,
        /// What was attempted, for messages: "create datastore patients".
        action: String,
    },
}

/// The status to write after a reconcile, when to look again, and what to tell users.
#[derive(Clone, Debug, PartialEq)]
pub struct Settled<S> {
    /// The status to write (only if it differs from the current one).
    pub status: S,
    /// When to look again.
    pub requeue: Requeue,
    /// Events for users.
    pub notices: Vec<Notice>,
}

/// The deletion policy in force: the spec's, else `Delete` for a datastore the operator creates
/// and `Retain` for an adopted one, whose data the operator never owned.
pub fn deletion_policy(spec: &FHIRDatastoreSpec) -> DeletionPolicy {
    spec.deletion_policy
        .unwrap_or(if spec.datastore_id.is_some() {
            DeletionPolicy::Retain
        } else {
            DeletionPolicy::Delete
        })
}

/// The region of the datastore: the one pinned in status, else the spec's, else the operator's
/// default.
pub fn region(spec: &FHIRDatastoreSpec, status: &FHIRDatastoreStatus, default: &str) -> String {
    status
        .region
        .clone()
        .or_else(|| spec.region.clone())
        .unwrap_or_else(|| default.to_owned())
}

/// The status with the region pinned by [`crate::api::REGION_ANNOTATION`] (`annotated`) when the
/// status has none yet, and the deletion policy in force shown with it. The first status write
/// then records both, and [`pin`] needs no write of its own.
pub fn with_annotated_region(
    spec: &FHIRDatastoreSpec,
    mut status: FHIRDatastoreStatus,
    annotated: Option<&str>,
    meta: &ObjectMeta,
) -> FHIRDatastoreStatus {
    if status.region.is_none()
        && let Some(annotated) = annotated.and_then(|value| annotated_region(value, meta))
    {
        // The annotation was written (from `spec.region`, else the default region) before any
        // AWS call: it wins over a `spec.region` added later, while the status had no region
        // yet, which would otherwise look for the datastore (and create it again) elsewhere.
        status.region = Some(annotated.to_owned());
        status.deletion_policy = status.deletion_policy.or(Some(deletion_policy(spec)));
    }
    status
}

/// The value of [`crate::api::REGION_ANNOTATION`] that pins `region` for the object `meta`.
pub fn region_annotation(region: &str, meta: &ObjectMeta) -> String {
    format!("{region}/{}", meta.uid)
}

/// The region a [`crate::api::REGION_ANNOTATION`] value pins, if it was written for this object
/// (its uid); `None` for a value copied from another object or edited into another shape.
fn annotated_region<'a>(value: &'a str, meta: &ObjectMeta) -> Option<&'a str> {
    let (region, uid) = value.split_once('/')?;
    (!region.is_empty() && uid == meta.uid).then_some(region)
}

/// Pins the region (and shows the deletion policy) in status before the first AWS call, so that
/// a later change of the operator's default region can never send the object's calls elsewhere.
/// `None` when the region is pinned already.
pub fn pin(
    spec: &FHIRDatastoreSpec,
    status: &FHIRDatastoreStatus,
    default_region: &str,
    meta: &ObjectMeta,
    now: Timestamp,
) -> Option<FHIRDatastoreStatus> {
    if status.region.is_some() {
        return None;
    }
    let mut pinned = status.clone();
    pinned.region = Some(region(spec, status, default_region));
    pinned.deletion_policy = Some(deletion_policy(spec));
    pinned.observed_generation = meta.generation;
    let message = format!(
        "looking for datastore {} in {}",
        datastore_name(spec, meta),
        pinned.region.as_deref().unwrap_or_default()
    );
    set_phase(
        &mut pinned.conditions,
        Phase::Progressing,
        "Creating",
        &message,
        meta.generation,
        now,
    );
    Some(pinned)
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

/// Reads same-named candidates: the datastore this object created (its owner tag is the
/// object's uid, preferring one that is not DELETED), else one that an earlier object of the same
/// namespace and name created and left behind (not deleted), else nothing.
pub fn find_owned(
    candidates: Vec<(Datastore, BTreeMap<String, String>)>,
    meta: &ObjectMeta,
) -> Observed {
    let owner = owner_name(meta);
    let mut owned: Vec<_> = candidates
        .iter()
        .filter(|(_, tags)| tags.get(OWNER_UID_TAG).is_some_and(|uid| *uid == meta.uid))
        .collect();
    owned.sort_by_key(|(datastore, _)| datastore.status == DatastoreStatus::Deleted);
    if let Some((datastore, tags)) = owned.first() {
        return Observed::Present {
            datastore: datastore.clone(),
            tags: Some((*tags).clone()),
        };
    }
    candidates
        .iter()
        .find(|(datastore, tags)| {
            tags.get(OWNER_NAME_TAG) == Some(&owner)
                && !matches!(
                    datastore.status,
                    DatastoreStatus::Deleted | DatastoreStatus::Deleting
                )
        })
        .map(|(datastore, _)| Observed::LeftBehind {
            datastore_id: datastore.id.clone(),
        })
        .unwrap_or(Observed::Absent)
}

/// Whether a reconcile must read the tags of a datastore DescribeFHIRDatastore just reported
/// (one ListTagsForResource call). Only an ACTIVE datastore's tags are compared with the spec;
/// they are read again unless the status already records them for an object that is Ready and
/// in sync at its current generation, or when `drift_check_due` (the resync interval passed
/// since the last reading, so that tags changed outside Kubernetes are found and put back).
pub fn tags_needed(
    described: &DatastoreStatus,
    status: &FHIRDatastoreStatus,
    meta: &ObjectMeta,
    drift_check_due: bool,
) -> bool {
    if *described != DatastoreStatus::Active {
        return false;
    }
    let in_sync = status.tags.is_some()
        && status.observed_generation == meta.generation
        && status.datastore_status == Some(DatastoreStatus::Active)
        && true_at(&status.conditions, ConditionType::Ready, meta.generation)
        && !true_at(
            &status.conditions,
            ConditionType::Reconciling,
            meta.generation,
        );
    drift_check_due || !in_sync
}

/// Whether the condition of this type is True and describes `generation`.
fn true_at(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: ConditionType,
    generation: Option<i64>,
) -> bool {
    conditions.iter().any(|condition| {
        condition.type_ == type_.as_str()
            && condition.status == "True"
            && condition.observed_generation == generation
    })
}

/// The value of the owner-name tag: `<namespace>/<name>`.
pub fn owner_name(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace, meta.name)
}

/// The tags AWS should hold: the spec's, plus the owner tags on datastores the operator created.
pub fn desired_tags(spec: &FHIRDatastoreSpec, meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    if spec.datastore_id.is_none() {
        tags.insert(OWNER_UID_TAG.to_owned(), meta.uid.clone());
        tags.insert(OWNER_NAME_TAG.to_owned(), owner_name(meta));
    }
    tags
}

/// True for AWS's own tags, which nobody may add, change or remove.
fn is_aws_tag(key: &str) -> bool {
    key.get(..AWS_TAG_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(AWS_TAG_PREFIX))
}

/// The tags to add or overwrite and the keys to remove so that AWS holds `desired`.
///
/// `aws:` tags are never touched and tags under the operator's reserved prefix never removed.
/// On a datastore the operator created (`managed` is `None`) every other tag not desired is
/// removed; on an adopted one only the keys in `managed`, which the operator set itself earlier.
pub fn tag_changes(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
    managed: Option<&[String]>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let add = desired
        .iter()
        .filter(|(key, value)| observed.get(*key) != Some(*value) && !is_aws_tag(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let remove = observed
        .keys()
        .filter(|key| {
            !desired.contains_key(*key)
                && !key.starts_with(RESERVED_TAG_PREFIX)
                && !is_aws_tag(key)
                && managed.is_none_or(|managed| managed.contains(key))
        })
        .cloned()
        .collect();
    (add, remove)
}

/// The keys the operator removes on adoption: `None` on a datastore it created (the spec is
/// authoritative), else the spec keys it set earlier.
fn managed_keys(spec: &FHIRDatastoreSpec, status: &FHIRDatastoreStatus) -> Option<Vec<String>> {
    spec.datastore_id
        .as_ref()
        .map(|_| status.managed_tags.clone().unwrap_or_default())
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
    status.deletion_policy = Some(deletion_policy(input.spec));

    let (action, requeue, notice) = match input.observed {
        Observed::LeftBehind { datastore_id } => {
            let message = format!(
                "datastore {datastore_id} named {} in {}, left behind by an earlier FHIRDatastore {} (deletionPolicy Retain), \
                 still exists, so none was created: to adopt it, delete this FHIRDatastore and create it again with spec.datastoreId {datastore_id} \
                 (the field cannot be added to an existing object), or create it with another spec.datastoreName",
                datastore_name(input.spec, input.meta),
                input.region,
                owner_name(input.meta)
            );
            set_phase(
                &mut status.conditions,
                Phase::Stalled,
                "RetainedDatastoreExists",
                &message,
                generation,
                now,
            );
            (
                DatastoreAction::None,
                Requeue::SlowRetry,
                Some(Notice::warning("RetainedDatastoreExists", message)),
            )
        }
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
            // The event comes with the outcome: `Created` once AWS accepted the request.
            (DatastoreAction::Create(request), Requeue::Soon, None)
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
            record(&mut status, datastore, tags.as_ref());
            present(input, &mut status, datastore, tags.as_ref())
        }
    };

    let notice =
        notice.filter(|notice| worth_sending(notice, &input.status.conditions, &status.conditions));
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
    tags: Option<&BTreeMap<String, String>>,
) -> (DatastoreAction, Requeue, Option<Notice>) {
    let generation = input.meta.generation;
    let now = input.now;
    let id = &datastore.id;
    match &datastore.status {
        DatastoreStatus::Creating => {
            let since = datastore.created_at.or_else(|| reconciling_since(status));
            let (message, notice) = with_stuck_warning(
                format!("HealthLake is creating datastore {id}"),
                &input.status.conditions,
                since,
                input.stuck_after,
                now,
            );
            set_phase(
                &mut status.conditions,
                Phase::Progressing,
                "Creating",
                &message,
                generation,
                now,
            );
            (DatastoreAction::None, Requeue::LongOperation, notice)
        }
        DatastoreStatus::Active => {
            let managed = managed_keys(input.spec, input.status);
            // Tags not read this time: the last reading stands. With no reading at all (which
            // the controller never asks for) every desired tag is added again: TagResource is
            // idempotent, and nothing is removed that was not seen.
            let unread = BTreeMap::new();
            let tags = tags.or(input.status.tags.as_ref()).unwrap_or(&unread);
            let (add, remove) = tag_changes(
                &desired_tags(input.spec, input.meta),
                tags,
                managed.as_deref(),
            );
            if add.is_empty() && remove.is_empty() {
                status.managed_tags = Some(input.spec.tags.keys().cloned().collect());
                let message = format!("datastore {id} is active and in sync");
                set_phase(
                    &mut status.conditions,
                    Phase::Ready,
                    "Active",
                    &message,
                    generation,
                    now,
                );
                // What AWS does on its own shows in the conditions; events record what the
                // operator did (at most one per object on the happy path).
                (DatastoreAction::None, Requeue::Resync, None)
            } else {
                let message = tag_message(id, &add, &remove);
                // The datastore serves requests while its tags change: a Ready one stays Ready
                // and the sync shows in Reconciling.
                set_waiting(
                    &mut status.conditions,
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
    // Deleting the object moves its generation on; the conditions written below describe it.
    status.observed_generation = generation;
    if let Observed::Present { datastore, tags } = input.observed {
        record(&mut status, datastore, tags.as_ref());
    }
    let release = |message: String| {
        (
            DatastoreAction::ReleaseFinalizer,
            Requeue::AwaitChange,
            Some(Notice::normal("Deleted", message)),
        )
    };

    status.deletion_policy = Some(deletion_policy(input.spec));
    let (action, requeue, notice) = match (deletion_policy(input.spec), input.observed) {
        (DeletionPolicy::Retain, observed) => {
            let id = match observed {
                Observed::Present { datastore, .. } => Some(datastore.id.as_str()),
                Observed::Gone { datastore_id } => Some(datastore_id.as_str()),
                Observed::Absent | Observed::LeftBehind { .. } => None,
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
        (DeletionPolicy::Delete, Observed::Absent | Observed::LeftBehind { .. }) => {
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
                    let (message, notice) = with_stuck_warning(
                        format!("HealthLake is deleting datastore {id}"),
                        &input.status.conditions,
                        reconciling_since(&status),
                        input.stuck_after,
                        now,
                    );
                    set_phase(
                        &mut status.conditions,
                        Phase::Progressing,
                        "Deleting",
                        &message,
                        generation,
                        now,
                    );
                    (DatastoreAction::None, Requeue::LongOperation, notice)
                }
                DatastoreStatus::Deleted => release(format!("HealthLake deleted datastore {id}")),
                DatastoreStatus::Unknown(value) => {
                    // A status this operator does not know may be a transition (UPDATING, a
                    // restore): never delete on a guess, look again.
                    let message = format!(
                        "HealthLake reports status {value} for datastore {id}, which this operator version does not know; \
                         it will delete the datastore once HealthLake reports a known status"
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
                DatastoreStatus::Active | DatastoreStatus::CreateFailed => {
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

/// Turns a decision and what came of its action into the status to write: the one status step
/// of every reconcile. It is pure, so that when the write meets a newer object (HTTP 409) the
/// controller re-reads it and settles the same outcome again on the fresh status.
pub fn settle(
    decision: &Decision,
    outcome: &Outcome,
    input: &DatastoreInput<'_>,
) -> Settled<FHIRDatastoreStatus> {
    let generation = input.meta.generation;
    let now = input.now;
    let mut status = decision.status.clone();
    let mut requeue = decision.requeue;
    let mut notices: Vec<Notice> = decision.notice.iter().cloned().collect();
    match outcome {
        Outcome::Nothing => {}
        Outcome::Created(summary) => {
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
                generation,
                now,
            );
            notices.push(Notice::normal(
                "Created",
                format!(
                    "HealthLake accepted datastore {} ({})",
                    summary.id,
                    datastore_name(input.spec, input.meta)
                ),
            ));
        }
        Outcome::TagsSynced => {
            status.managed_tags = Some(input.spec.tags.keys().cloned().collect());
        }
        Outcome::DeleteAccepted(summary) => {
            status.datastore_status = Some(summary.status.clone());
            let message = format!("HealthLake is deleting datastore {}", summary.id);
            set_phase(
                &mut status.conditions,
                Phase::Progressing,
                "Deleting",
                &message,
                generation,
                now,
            );
        }
        Outcome::Failed { error, action } => {
            requeue = settle_failure(
                &input.status.conditions,
                &mut status.conditions,
                &mut notices,
                (error, action, Step::Act),
                generation,
                now,
            );
        }
    }
    keep_transition_times(&input.status.conditions, &mut status.conditions);
    keep_ids(input.status, &mut status);
    Settled {
        status,
        requeue,
        notices,
    }
}

/// The status after a failed look at AWS (`action` says which): the last observation stands,
/// `Ready` included, and the wait or failure shows in `Reconciling` (or `Stalled`).
pub fn unobserved(
    input_status: &FHIRDatastoreStatus,
    error: &HealthLakeError,
    action: &str,
    meta: &ObjectMeta,
    now: Timestamp,
) -> Settled<FHIRDatastoreStatus> {
    let mut status = input_status.clone();
    status.observed_generation = meta.generation;
    let mut notices = Vec::new();
    let requeue = settle_failure(
        &input_status.conditions,
        &mut status.conditions,
        &mut notices,
        (error, action, Step::Observe),
        meta.generation,
        now,
    );
    Settled {
        status,
        requeue,
        notices,
    }
}

/// An AWS id, ARN or endpoint once recorded is never dropped by the operator, whatever a stale
/// copy of the object said.
pub fn keep_ids(previous: &FHIRDatastoreStatus, next: &mut FHIRDatastoreStatus) {
    if next.datastore_id.is_none() {
        next.datastore_id.clone_from(&previous.datastore_id);
    }
    if next.datastore_arn.is_none() {
        next.datastore_arn.clone_from(&previous.datastore_arn);
    }
    if next.datastore_endpoint.is_none() {
        next.datastore_endpoint
            .clone_from(&previous.datastore_endpoint);
    }
    if next.region.is_none() {
        next.region.clone_from(&previous.region);
    }
}

/// When the object last started being `Reconciling`.
pub(crate) fn reconciling_since(status: &FHIRDatastoreStatus) -> Option<Timestamp> {
    status
        .conditions
        .iter()
        .find(|condition| {
            condition.type_ == ConditionType::Reconciling.as_str() && condition.status == "True"
        })
        .map(|condition| condition.last_transition_time.0)
}

/// Adds "longer than usual" to the message of a phase that started `since` and has lasted more
/// than `stuck_after`, with a Warning the first time (when the previous message did not say so).
pub(crate) fn with_stuck_warning(
    message: String,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    since: Option<Timestamp>,
    stuck_after: Duration,
    now: Timestamp,
) -> (String, Option<Notice>) {
    let Some(since) = since else {
        return (message, None);
    };
    if now <= since || now.duration_since(since).unsigned_abs() <= stuck_after {
        return (message, None);
    }
    let hours = stuck_after.as_secs_f64() / 3600.0;
    let message = format!(
        "{message}, for longer than HealthLake usually takes (over {hours:.1} h); the operator keeps polling, \
         check the AWS console or AWS Support if it does not move"
    );
    let warned_before = previous.iter().any(|condition| {
        condition.type_ == ConditionType::Reconciling.as_str()
            && condition
                .message
                .contains("longer than HealthLake usually takes")
    });
    let notice = (!warned_before).then(|| Notice::warning(TAKING_LONG, message.clone()));
    (message, notice)
}

fn record(
    status: &mut FHIRDatastoreStatus,
    datastore: &Datastore,
    tags: Option<&BTreeMap<String, String>>,
) {
    status.datastore_id = Some(datastore.id.clone());
    status.datastore_arn = Some(datastore.arn.clone());
    status.datastore_endpoint = Some(datastore.endpoint.clone());
    status.datastore_name = datastore.name.clone();
    status.datastore_status = Some(datastore.status.clone());
    status.created_at = datastore.created_at.map(Time);
    status.error_cause = datastore.error_cause.clone();
    if let Some(tags) = tags {
        status.tags = Some(tags.clone());
    }
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
