//! The FHIRDatastore controller: finalizer, observe, decide, act, settle.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};

use super::{Context, Error, OwnWrites, Written, object_meta, write_status};
use crate::api::{
    DATASTORE_FINALIZER, DatastoreStatus, DeletionPolicy, FHIRDatastore, REGION_ANNOTATION,
};
use crate::decide::datastore::{
    self as decide, DatastoreAction, DatastoreInput, Lookup, Observed, Outcome, Settled,
};
use crate::decide::stall::Hold;
use crate::decide::{ObjectMeta, Requeue};
use crate::healthlake::{HealthLakeError, Result as HealthLakeResult};

const KIND: &str = "FHIRDatastore";

/// How often a status write that meets a newer object is settled again before the reconcile
/// gives up and lets the requeue try later.
const STALE_WRITE_ATTEMPTS: usize = 3;

/// The datastore controller's context: the shared one, and the writes its watch has not
/// delivered yet.
pub(super) struct DatastoreContext {
    pub(super) shared: Arc<Context>,
    pub(super) own_writes: Arc<OwnWrites<FHIRDatastore>>,
}

/// Reconciles one FHIRDatastore through the finalizer helper, on the newest copy this process
/// knows (its own last write, when the watch has not delivered it yet).
pub(super) async fn reconcile(
    object: Arc<FHIRDatastore>,
    datastore_context: Arc<DatastoreContext>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let context = datastore_context.shared.as_ref();
    let own_writes = datastore_context.own_writes.as_ref();
    let object = own_writes.newest(object);
    let meta = object_meta(object.as_ref())?;
    let api: Api<FHIRDatastore> = Api::namespaced(context.client.clone(), &meta.namespace);
    let result = if needs_finalizer(&object) {
        add_finalizer_and_region(&api, &object, context, own_writes).await
    } else {
        finalizer(&api, DATASTORE_FINALIZER, object, |event| async {
            match event {
                FinalizerEvent::Apply(object) => apply(&api, &object, context, own_writes).await,
                FinalizerEvent::Cleanup(object) => {
                    cleanup(&api, &object, context, own_writes).await
                }
            }
        })
        .await
        .map_err(|error| Error::Finalizer(Box::new(error)))
    };
    context.metrics.reconciled_in(
        KIND,
        result.is_ok()
            || result
                .as_ref()
                .is_err_and(|error| error.pending().is_some()),
        started.elapsed(),
    );
    result
}

/// A live object without the finalizer: nothing was done for it yet.
fn needs_finalizer(object: &FHIRDatastore) -> bool {
    object.metadata.deletion_timestamp.is_none()
        && !object
            .finalizers()
            .iter()
            .any(|finalizer| finalizer == DATASTORE_FINALIZER)
}

/// The first write for a new object, before any AWS call: the finalizer and the region its
/// datastore will live in ([`REGION_ANNOTATION`]), in one merge patch that carries the
/// `resourceVersion` it was computed from (a 409 means the object changed: the next reconcile
/// sees the newer copy). kube-runtime's finalizer helper takes over once the finalizer is there.
/// The patch's watch event starts the next reconcile.
async fn add_finalizer_and_region(
    api: &Api<FHIRDatastore>,
    object: &FHIRDatastore,
    context: &Context,
    own_writes: &OwnWrites<FHIRDatastore>,
) -> Result<Action, Error> {
    let meta = object_meta(object)?;
    let status = object.status.clone().unwrap_or_default();
    let region = decide::region(&object.spec, &status, &context.settings.default_region);
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(DATASTORE_FINALIZER.to_owned());
    let mut patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": object.resource_version(),
        }
    });
    // Always written, never taken from the object: an annotation copied from another object's
    // manifest must not choose the region before the operator has called AWS.
    patch["metadata"]["annotations"] =
        serde_json::json!({ REGION_ANNOTATION: decide::region_annotation(&region, &meta) });
    let params = kube::api::PatchParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    match api
        .patch(
            &object.name_any(),
            &params,
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(written) => {
            let read: Vec<String> = object.resource_version().into_iter().collect();
            own_writes.wrote(&read, written);
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(Action::requeue(std::time::Duration::from_millis(100)))
        }
        Err(error) => Err(error.into()),
    }
}

/// The object's status with the region its annotation pinned, when the status has none yet.
fn current_status(object: &FHIRDatastore, meta: &ObjectMeta) -> crate::api::FHIRDatastoreStatus {
    decide::with_annotated_region(
        &object.spec,
        object.status.clone().unwrap_or_default(),
        object
            .annotations()
            .get(REGION_ANNOTATION)
            .map(String::as_str),
        meta,
    )
}

/// Requeues after a Kubernetes-side failure (HealthLake errors never get here), or after the
/// wait a cleanup asked for.
pub(super) fn error_policy(
    object: Arc<FHIRDatastore>,
    error: &Error,
    context: Arc<DatastoreContext>,
) -> Action {
    if let Some(action) = error.pending() {
        return action;
    }
    tracing::warn!(%error, name = %object.name_any(), "datastore reconcile failed");
    Action::requeue(
        context
            .shared
            .errors
            .backoff(object.metadata.uid.as_deref().unwrap_or_default()),
    )
}

/// What one reconcile observed and did, so that its status can be settled again on a fresher copy
/// of the object.
// One value per reconcile, kept on the stack while its status is written: boxing would only add
// noise.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// AWS could not be asked (the limiter waits, or the read failed).
    Unobserved {
        error: HealthLakeError,
        action: String,
    },
    /// AWS answered; the decision's action had this outcome.
    Acted {
        observed: Observed,
        outcome: Outcome,
    },
}

async fn apply(
    api: &Api<FHIRDatastore>,
    object: &FHIRDatastore,
    context: &Context,
    own_writes: &OwnWrites<FHIRDatastore>,
) -> Result<Action, Error> {
    let meta = object_meta(object)?;
    let status = current_status(object, &meta);
    if let Some(pinned) = decide::pin(
        &object.spec,
        &status,
        &context.settings.default_region,
        &meta,
        context.now(),
    ) {
        // The region is pinned before the first AWS call, so that a restart under another
        // default region can never look for (or create) the datastore elsewhere.
        let read: Vec<String> = object.resource_version().into_iter().collect();
        return match write_status(
            api,
            own_writes,
            &meta.name,
            &read,
            &object.status.clone().unwrap_or_default(),
            &pinned,
        )
        .await?
        {
            Written::Done => Ok(context.action(object, &meta, Requeue::Soon, context.now())),
            Written::Stale => Ok(Action::requeue(std::time::Duration::from_millis(100))),
        };
    }
    if let Hold::Wait(wait) = context.hold(object, &meta, &status.conditions) {
        return Ok(Action::requeue(wait));
    }
    let region = decide::region(&object.spec, &status, &context.settings.default_region);
    let lookup = decide::lookup(&object.spec, &status, &meta);
    let step = match observe(context, &region, &lookup, &meta, Some(&status)).await {
        Err(error) => Step::Unobserved {
            error,
            action: format!("look up datastore of {}", meta.name),
        },
        Ok(observed) => {
            let decision =
                decide::apply(&input(object, &status, &meta, &region, &observed, context));
            let outcome = act(context, &region, &decision.action).await;
            Step::Acted { observed, outcome }
        }
    };
    let decided_at = context.now();
    let settled = settle_and_write(
        api,
        own_writes,
        object,
        &meta,
        &region,
        &step,
        context,
        decide::apply,
    )
    .await?;
    Ok(context.action(object, &meta, settled.requeue, decided_at))
}

async fn cleanup(
    api: &Api<FHIRDatastore>,
    object: &FHIRDatastore,
    context: &Context,
    own_writes: &OwnWrites<FHIRDatastore>,
) -> Result<Action, Error> {
    let meta = object_meta(object)?;
    let status = current_status(object, &meta);
    let region = decide::region(&object.spec, &status, &context.settings.default_region);
    let retain = decide::deletion_policy(&object.spec) == DeletionPolicy::Retain;
    if !retain && let Hold::Wait(wait) = context.hold(object, &meta, &status.conditions) {
        return Err(Error::CleanupPending(Action::requeue(wait)));
    }
    let observed = if retain {
        // Retain never calls AWS: report what the status already knows.
        match status
            .datastore_id
            .clone()
            .or_else(|| object.spec.datastore_id.clone())
        {
            Some(datastore_id) => Ok(Observed::Gone { datastore_id }),
            None => Ok(Observed::Absent),
        }
    } else {
        let lookup = decide::lookup(&object.spec, &status, &meta);
        // Deleting needs no tags: the status's last reading stands.
        observe(context, &region, &lookup, &meta, None).await
    };
    let step = match observed {
        Err(error) => Step::Unobserved {
            error,
            action: format!("look up datastore of {}", meta.name),
        },
        Ok(observed) => {
            let decision =
                decide::cleanup(&input(object, &status, &meta, &region, &observed, context));
            if decision.action == DatastoreAction::ReleaseFinalizer {
                if let Some(notice) = &decision.notice {
                    context.publish(object, notice, "Delete").await;
                }
                context.errors.forget(&meta.uid);
                context.tag_readings.forget(&meta.uid);
                return Ok(Action::await_change());
            }
            let outcome = act(context, &region, &decision.action).await;
            if let Outcome::Failed {
                error: HealthLakeError::NotFound { .. },
                ..
            } = outcome
            {
                // DeleteFHIRDatastore in the datastore's own (pinned) region: NotFound is gone.
                context.errors.forget(&meta.uid);
                context.tag_readings.forget(&meta.uid);
                return Ok(Action::await_change());
            }
            Step::Acted { observed, outcome }
        }
    };
    let decided_at = context.now();
    let settled = settle_and_write(
        api,
        own_writes,
        object,
        &meta,
        &region,
        &step,
        context,
        decide::cleanup,
    )
    .await?;
    let requeue = match settled.requeue {
        Requeue::AwaitChange => Requeue::LongOperation,
        other => other,
    };
    Err(Error::CleanupPending(
        context.action(object, &meta, requeue, decided_at),
    ))
}

fn input<'a>(
    object: &'a FHIRDatastore,
    status: &'a crate::api::FHIRDatastoreStatus,
    meta: &'a ObjectMeta,
    region: &'a str,
    observed: &'a Observed,
    context: &Context,
) -> DatastoreInput<'a> {
    DatastoreInput {
        meta,
        spec: &object.spec,
        status,
        region,
        observed,
        stuck_after: context.settings.datastore_stuck_after,
        now: context.now(),
    }
}

/// Settles the step on the object's status and writes it; when the object changed meanwhile
/// (409), re-reads it and settles the same step again on the fresh status, so that what AWS
/// answered is recorded and nothing newer is overwritten. Publishes the settled events once.
// The reconcile's state, passed down as it is: a struct for one call would only add noise.
#[allow(clippy::too_many_arguments)]
async fn settle_and_write(
    api: &Api<FHIRDatastore>,
    own_writes: &OwnWrites<FHIRDatastore>,
    object: &FHIRDatastore,
    meta: &ObjectMeta,
    region: &str,
    step: &Step,
    context: &Context,
    decide_with: fn(&DatastoreInput<'_>) -> decide::Decision,
) -> Result<Settled<crate::api::FHIRDatastoreStatus>, Error> {
    let mut current = object.clone();
    let mut read = Vec::new();
    for _ in 0..STALE_WRITE_ATTEMPTS {
        read.extend(current.resource_version());
        // Settled on the status with the annotated region; diffed against what is stored, so that
        // the first write records the region too.
        let stored = current.status.clone().unwrap_or_default();
        let status = current_status(&current, meta);
        let settled = match step {
            Step::Unobserved { error, action } => {
                context.count_error(KIND, error);
                decide::unobserved(&status, error, action, meta, context.now())
            }
            Step::Acted { observed, outcome } => {
                if let Outcome::Failed { error, .. } = outcome {
                    context.count_error(KIND, error);
                }
                let input = input(&current, &status, meta, region, observed, context);
                decide::settle(&decide_with(&input), outcome, &input)
            }
        };
        match write_status(api, own_writes, &meta.name, &read, &stored, &settled.status).await? {
            Written::Done => {
                for notice in &settled.notices {
                    context.publish(object, notice, "Reconcile").await;
                }
                return Ok(settled);
            }
            Written::Stale => current = super::reread(api, meta).await?,
        }
    }
    Err(Error::StaleStatus)
}

/// Carries out a decision's action.
async fn act(context: &Context, region: &str, action: &DatastoreAction) -> Outcome {
    let healthlake = context.healthlake.as_ref();
    match action {
        DatastoreAction::None | DatastoreAction::ReleaseFinalizer => Outcome::Nothing,
        DatastoreAction::Create(request) => {
            match healthlake.create_datastore(region, request).await {
                Ok(summary) => Outcome::Created(summary),
                Err(error) => Outcome::Failed {
                    error,
                    action: format!("create datastore {} in {region}", request.name),
                },
            }
        }
        DatastoreAction::SyncTags { arn, add, remove } => {
            match sync_tags(context, region, arn, add, remove).await {
                Ok(()) => Outcome::TagsSynced,
                Err(error) => Outcome::Failed {
                    error,
                    action: format!("sync tags of datastore {arn}"),
                },
            }
        }
        DatastoreAction::Delete { datastore_id } => {
            match healthlake.delete_datastore(region, datastore_id).await {
                Ok(summary) => Outcome::DeleteAccepted(summary),
                Err(error) => Outcome::Failed {
                    error,
                    action: format!("delete datastore {datastore_id} in {region}"),
                },
            }
        }
    }
}

/// When each datastore's tags were last read (by uid, on the context's clock): a datastore in
/// sync has them read again once per resync interval, to find tags changed outside Kubernetes,
/// instead of on every poll. Forgotten when the object goes; empty after a restart, so that the
/// first reconcile of each datastore reads them.
#[derive(Default)]
pub struct TagReadings {
    read_at: std::sync::Mutex<std::collections::HashMap<String, jiff::Timestamp>>,
}

impl TagReadings {
    /// Whether the datastore's tags were last read `interval` or longer ago (or never, since the
    /// operator started).
    fn due(&self, uid: &str, interval: std::time::Duration, now: jiff::Timestamp) -> bool {
        let read_at = self.lock();
        read_at
            .get(uid)
            .is_none_or(|at| now.duration_since(*at).unsigned_abs() >= interval || now < *at)
    }

    fn read(&self, uid: &str, now: jiff::Timestamp) {
        self.lock().insert(uid.to_owned(), now);
    }

    /// Drops what is known about a datastore object that is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, jiff::Timestamp>> {
        self.read_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Asks AWS what it holds for the object, as `lookup` says, in the object's pinned region.
/// With `status` (the object is not being deleted), an ACTIVE datastore's tags are read when
/// [`decide::tags_needed`] says so; without it, never.
async fn observe(
    context: &Context,
    region: &str,
    lookup: &Lookup,
    meta: &ObjectMeta,
    status: Option<&crate::api::FHIRDatastoreStatus>,
) -> HealthLakeResult<Observed> {
    let healthlake = context.healthlake.as_ref();
    match lookup {
        Lookup::Describe { datastore_id } => {
            match healthlake.describe_datastore(region, datastore_id).await {
                Ok(datastore) => {
                    let now = context.now();
                    let needed = status.is_some_and(|status| {
                        let due = context
                            .tag_readings
                            .due(&meta.uid, context.settings.resync, now);
                        decide::tags_needed(&datastore.status, status, meta, due)
                    });
                    let tags = if needed {
                        let tags =
                            tags_of(context, region, &datastore.arn, &datastore.status).await?;
                        context.tag_readings.read(&meta.uid, now);
                        Some(tags)
                    } else {
                        None
                    };
                    Ok(Observed::Present { datastore, tags })
                }
                Err(HealthLakeError::NotFound { .. }) => Ok(Observed::Gone {
                    datastore_id: datastore_id.clone(),
                }),
                Err(error) => Err(error),
            }
        }
        Lookup::FindOwned { name } => {
            let mut candidates = Vec::new();
            for datastore in healthlake.list_datastores(region, Some(name)).await? {
                let tags = tags_of(context, region, &datastore.arn, &datastore.status).await?;
                candidates.push((datastore, tags));
            }
            Ok(decide::find_owned(candidates, meta))
        }
    }
}

/// The datastore's tags; a deleted datastore has none worth asking for.
async fn tags_of(
    context: &Context,
    region: &str,
    arn: &str,
    status: &DatastoreStatus,
) -> HealthLakeResult<BTreeMap<String, String>> {
    if *status == DatastoreStatus::Deleted {
        return Ok(BTreeMap::new());
    }
    match context.healthlake.list_tags(region, arn).await {
        Err(HealthLakeError::NotFound { .. }) => Ok(BTreeMap::new()),
        other => other,
    }
}

async fn sync_tags(
    context: &Context,
    region: &str,
    arn: &str,
    add: &BTreeMap<String, String>,
    remove: &[String],
) -> HealthLakeResult<()> {
    if !add.is_empty() {
        context.healthlake.tag_resource(region, arn, add).await?;
    }
    if !remove.is_empty() {
        context
            .healthlake
            .untag_resource(region, arn, remove)
            .await?;
    }
    Ok(())
}
