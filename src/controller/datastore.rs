//! The FHIRDatastore controller: finalizer, observe, decide, act.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};

use super::{Context, Error, fail, key_of, object_meta, write_status};
use crate::api::{DATASTORE_FINALIZER, DatastoreStatus, FHIRDatastore};
use crate::decide::Requeue;
use crate::decide::datastore::{self as decide, DatastoreAction, DatastoreInput, Lookup, Observed};
use crate::healthlake::{HealthLakeError, Result as HealthLakeResult};

const KIND: &str = "FHIRDatastore";

/// Reconciles one FHIRDatastore through the finalizer helper.
pub async fn reconcile(object: Arc<FHIRDatastore>, context: Arc<Context>) -> Result<Action, Error> {
    let meta = object_meta(object.as_ref())?;
    let api: Api<FHIRDatastore> = Api::namespaced(context.client.clone(), &meta.namespace);
    let result = finalizer(&api, DATASTORE_FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => apply(&api, &object, &context).await,
            FinalizerEvent::Cleanup(object) => cleanup(&api, &object, &context).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    context.metrics.reconciled(
        KIND,
        result.is_ok()
            || result
                .as_ref()
                .is_err_and(|error| error.pending().is_some()),
    );
    result
}

/// Requeues after a Kubernetes-side failure (HealthLake errors never get here), or after the
/// wait a cleanup asked for.
pub fn error_policy(object: Arc<FHIRDatastore>, error: &Error, context: Arc<Context>) -> Action {
    if let Some(action) = error.pending() {
        return action;
    }
    tracing::warn!(%error, name = %object.metadata.name.as_deref().unwrap_or_default(), "datastore reconcile failed");
    Action::requeue(context.errors.backoff(&key_of(KIND, object.as_ref())))
}

async fn apply(
    api: &Api<FHIRDatastore>,
    object: &FHIRDatastore,
    context: &Context,
) -> Result<Action, Error> {
    let meta = object_meta(object)?;
    let key = key_of(KIND, object);
    if context.errors.is_held(&key, meta.generation) {
        return Ok(Action::await_change());
    }
    let status = object.status.clone().unwrap_or_default();
    let region = region_of(object, context);
    let lookup = decide::lookup(&object.spec, &status, &meta);
    let observed = match observe(context, &region, &lookup, &meta.uid).await {
        Ok(observed) => observed,
        Err(error) => {
            let action = format!("look up datastore of {}", meta.name);
            return fail(
                api, object, KIND, context, &status, &status, &error, &action,
            )
            .await;
        }
    };
    let decision = decide::apply(&DatastoreInput {
        meta: &meta,
        spec: &object.spec,
        status: &status,
        region: &region,
        observed: &observed,
        now: context.now(),
    });
    if let Some(notice) = &decision.notice {
        context.publish(object, notice, "Reconcile").await;
    }
    // One status write per reconcile, after the AWS call that changes something, so that a
    // wait for quota does not flap the conditions between "about to" and "waiting".
    let written = match &decision.action {
        DatastoreAction::Create(request) => {
            match context.healthlake.create_datastore(&region, request).await {
                Ok(summary) => {
                    let created =
                        decide::after_create(&decision.status, &summary, &meta, context.now());
                    let message = format!(
                        "HealthLake accepted datastore {} ({})",
                        summary.id, request.name
                    );
                    context
                        .publish(
                            object,
                            &crate::decide::Notice::normal("Created", message),
                            "Create",
                        )
                        .await;
                    created
                }
                Err(error) => {
                    let action = format!("create datastore {}", request.name);
                    return fail(
                        api,
                        object,
                        KIND,
                        context,
                        &status,
                        &decision.status,
                        &error,
                        &action,
                    )
                    .await;
                }
            }
        }
        DatastoreAction::SyncTags { arn, add, remove } => {
            if let Err(error) = sync_tags(context, &region, arn, add, remove).await {
                let action = format!("sync tags of datastore {arn}");
                return fail(
                    api,
                    object,
                    KIND,
                    context,
                    &status,
                    &decision.status,
                    &error,
                    &action,
                )
                .await;
            }
            decision.status.clone()
        }
        DatastoreAction::None
        | DatastoreAction::Delete { .. }
        | DatastoreAction::ReleaseFinalizer => decision.status.clone(),
    };
    write_status(api, &meta.name, &status, &written).await?;
    context.errors.succeeded(&key);
    Ok(context.action(&key, decision.requeue))
}

async fn cleanup(
    api: &Api<FHIRDatastore>,
    object: &FHIRDatastore,
    context: &Context,
) -> Result<Action, Error> {
    let meta = object_meta(object)?;
    let key = key_of(KIND, object);
    let status = object.status.clone().unwrap_or_default();
    let region = region_of(object, context);
    let observed = if object.spec.deletion_policy == crate::api::DeletionPolicy::Retain {
        // Retain never calls AWS: report what the status already knows.
        match status
            .datastore_id
            .clone()
            .or_else(|| object.spec.datastore_id.clone())
        {
            Some(datastore_id) => Observed::Gone { datastore_id },
            None => Observed::Absent,
        }
    } else {
        let lookup = decide::lookup(&object.spec, &status, &meta);
        match observe(context, &region, &lookup, &meta.uid).await {
            Ok(observed) => observed,
            Err(error) => {
                let action = format!("look up datastore of {}", meta.name);
                let requeue = fail(
                    api, object, KIND, context, &status, &status, &error, &action,
                )
                .await?;
                return Err(Error::CleanupPending(requeue));
            }
        }
    };
    let decision = decide::cleanup(&DatastoreInput {
        meta: &meta,
        spec: &object.spec,
        status: &status,
        region: &region,
        observed: &observed,
        now: context.now(),
    });
    if let Some(notice) = &decision.notice {
        context.publish(object, notice, "Delete").await;
    }
    let written = match &decision.action {
        DatastoreAction::ReleaseFinalizer => {
            context.errors.forget(&key);
            return Ok(Action::await_change());
        }
        DatastoreAction::Delete { datastore_id } => {
            match context
                .healthlake
                .delete_datastore(&region, datastore_id)
                .await
            {
                Ok(summary) => {
                    decide::after_delete(&decision.status, &summary, &meta, context.now())
                }
                Err(HealthLakeError::NotFound { .. }) => {
                    context.errors.forget(&key);
                    return Ok(Action::await_change());
                }
                Err(error) => {
                    let action = format!("delete datastore {datastore_id}");
                    let requeue = fail(
                        api,
                        object,
                        KIND,
                        context,
                        &status,
                        &decision.status,
                        &error,
                        &action,
                    )
                    .await?;
                    return Err(Error::CleanupPending(requeue));
                }
            }
        }
        DatastoreAction::None | DatastoreAction::Create(_) | DatastoreAction::SyncTags { .. } => {
            decision.status.clone()
        }
    };
    write_status(api, &meta.name, &status, &written).await?;
    context.errors.succeeded(&key);
    let requeue = match decision.requeue {
        Requeue::AwaitChange => Requeue::LongOperation,
        other => other,
    };
    Err(Error::CleanupPending(context.action(&key, requeue)))
}

fn region_of(object: &FHIRDatastore, context: &Context) -> String {
    object
        .spec
        .region
        .clone()
        .unwrap_or_else(|| context.settings.default_region.clone())
}

/// Asks AWS what it holds for the object, as `lookup` says.
async fn observe(
    context: &Context,
    region: &str,
    lookup: &Lookup,
    uid: &str,
) -> HealthLakeResult<Observed> {
    let healthlake = context.healthlake.as_ref();
    match lookup {
        Lookup::Describe { datastore_id } => {
            match healthlake.describe_datastore(region, datastore_id).await {
                Ok(datastore) => {
                    let tags = tags_of(context, region, &datastore.arn, &datastore.status).await?;
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
            Ok(match decide::find_owned(candidates, uid) {
                Some((datastore, tags)) => Observed::Present { datastore, tags },
                None => Observed::Absent,
            })
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
