//! Deletion: finalizers, owner-reference garbage collection, terminating namespaces and CRDs
//! that take their objects with them.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    Change, DeleteOptions, Deleted, EventKind, Propagation, Selection, Store, finalizers,
    now_timestamp, set_metadata, text_at,
};
use crate::apiserver::resources::{CRD_GROUP, CRD_PLURAL, ResourceType};
use crate::apiserver::status::ApiError;

/// The finalizer that holds an owner deleted with `propagationPolicy: Foreground`.
const FOREGROUND: &str = "foregroundDeletion";

/// The finalizer that holds a CRD until its objects are gone.
pub(super) const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

fn owner_uids(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().map(|r| text_at(r, "/uid")).collect())
        .unwrap_or_default()
}

impl Store {
    /// Removes an object for good and records the DELETED change.
    pub(super) fn remove(
        &mut self,
        storage_key: &str,
        key: &(String, String),
        last_state: Option<Value>,
    ) {
        let Some(previous) = self
            .objects
            .get_mut(storage_key)
            .and_then(|bucket| bucket.remove(key))
        else {
            return;
        };
        let revision = self.next_revision();
        let mut object = last_state.unwrap_or_else(|| previous.clone());
        set_metadata(
            &mut object,
            "resourceVersion",
            Value::String(revision.to_string()),
        );
        if storage_key == format!("{CRD_GROUP}/{CRD_PLURAL}") {
            self.remove_crd_objects(&object);
        }
        self.record(Change {
            revision,
            storage_key: storage_key.to_string(),
            kind: EventKind::Deleted,
            object,
            previous: Some(previous),
        });
    }

    fn remove_crd_objects(&mut self, crd: &Value) {
        let name = text_at(crd, "/metadata/name").to_string();
        let group = text_at(crd, "/spec/group");
        let plural = text_at(crd, "/spec/names/plural");
        let storage_key = format!("{group}/{plural}");
        self.registry.unregister_crd(&name);
        let keys: Vec<(String, String)> = self
            .objects
            .get(&storage_key)
            .map(|bucket| bucket.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.remove(&storage_key, &key, None);
        }
    }

    /// Deletes an object: at once without finalizers, else marks it with `deletionTimestamp`.
    pub fn delete(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let old = self.stored(resource, namespace, name)?;
        let subject = Self::subject(resource, name);
        if let Some(uid) = &options.uid
            && uid != text_at(&old, "/metadata/uid")
        {
            return Err(ApiError::conflict(
                subject,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    text_at(&old, "/metadata/uid")
                ),
            ));
        }
        if let Some(version) = &options.resource_version
            && version != text_at(&old, "/metadata/resourceVersion")
        {
            return Err(ApiError::conflict(
                subject,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {version}, ResourceVersion in object meta: {}",
                    text_at(&old, "/metadata/resourceVersion")
                ),
            ));
        }
        if options.dry_run {
            return Ok(Deleted {
                object: Self::presented(resource, &old),
                removed: false,
            });
        }
        let result = self.delete_object(resource.storage_key(), old, options.propagation);
        self.collect_garbage();
        Ok(Deleted {
            object: Self::presented(resource, &result.object),
            removed: result.removed,
        })
    }

    fn delete_object(
        &mut self,
        storage_key: String,
        old: Value,
        propagation: Propagation,
    ) -> Deleted {
        let key = (
            text_at(&old, "/metadata/namespace").to_string(),
            text_at(&old, "/metadata/name").to_string(),
        );
        if propagation == Propagation::Orphan {
            self.orphan_dependents(text_at(&old, "/metadata/uid"));
        }
        let is_namespace = storage_key == "/namespaces";
        let foreground = propagation == Propagation::Foreground
            && self.has_dependents(text_at(&old, "/metadata/uid"));
        if finalizers(&old).is_empty() && !is_namespace && !foreground {
            self.remove(&storage_key, &key, None);
            return Deleted {
                object: old,
                removed: true,
            };
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Deleted {
                object: old,
                removed: false,
            };
        }
        let mut new = old.clone();
        set_metadata(
            &mut new,
            "deletionTimestamp",
            Value::String(now_timestamp()),
        );
        set_metadata(&mut new, "deletionGracePeriodSeconds", json!(0));
        // Marking an object for deletion bumps its generation, so that controllers comparing
        // observedGeneration notice, as the API server does.
        if let Some(generation) = old.pointer("/metadata/generation").and_then(Value::as_i64) {
            set_metadata(&mut new, "generation", json!(generation + 1));
        }
        if foreground {
            let mut kept = finalizers(&old);
            kept.push(FOREGROUND.to_string());
            set_metadata(&mut new, "finalizers", json!(kept));
        }
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        let new = self.commit(&storage_key, key, new, Some(old));
        Deleted {
            object: new,
            removed: false,
        }
    }

    fn has_dependents(&self, owner_uid: &str) -> bool {
        self.objects
            .values()
            .flat_map(|bucket| bucket.values())
            .any(|object| owner_uids(object).contains(&owner_uid))
    }

    /// Removes one finalizer from an object, deleting it when it was the last.
    fn drop_finalizer(&mut self, storage_key: &str, object: &Value, finalizer: &str) {
        let key = (
            text_at(object, "/metadata/namespace").to_string(),
            text_at(object, "/metadata/name").to_string(),
        );
        let kept: Vec<String> = finalizers(object)
            .into_iter()
            .filter(|name| name != finalizer)
            .collect();
        let mut new = object.clone();
        set_metadata(&mut new, "finalizers", json!(kept));
        if kept.is_empty() {
            self.remove(storage_key, &key, Some(new));
            return;
        }
        self.commit(storage_key, key, new, Some(object.clone()));
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        let mut updates = Vec::new();
        for (storage_key, bucket) in &self.objects {
            for (key, object) in bucket {
                let references = object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array);
                if references
                    .is_some_and(|refs| refs.iter().any(|r| text_at(r, "/uid") == owner_uid))
                {
                    let mut new = object.clone();
                    if let Some(Value::Array(refs)) = new.pointer_mut("/metadata/ownerReferences") {
                        refs.retain(|r| text_at(r, "/uid") != owner_uid);
                    }
                    updates.push((storage_key.clone(), key.clone(), object.clone(), new));
                }
            }
        }
        for (storage_key, key, old, new) in updates {
            self.commit(&storage_key, key, new, Some(old));
        }
    }

    /// Deletes dependents whose owners are all gone or are being deleted in the foreground,
    /// lets foreground-deleted owners go once their dependents are gone, empties terminating
    /// namespaces and removes them once empty; repeats until nothing changes.
    pub(super) fn collect_garbage(&mut self) {
        loop {
            let foreground: Vec<(String, Value)> = self
                .objects
                .iter()
                .flat_map(|(storage_key, bucket)| {
                    bucket.values().map(move |object| (storage_key, object))
                })
                .filter(|(_, object)| {
                    object.pointer("/metadata/deletionTimestamp").is_some()
                        && finalizers(object).iter().any(|name| name == FOREGROUND)
                })
                .map(|(storage_key, object)| (storage_key.clone(), object.clone()))
                .collect();
            let foreground_uids: BTreeSet<String> = foreground
                .iter()
                .map(|(_, object)| text_at(object, "/metadata/uid").to_string())
                .collect();
            let released: Vec<(String, Value)> = foreground
                .into_iter()
                .filter(|(_, object)| !self.has_dependents(text_at(object, "/metadata/uid")))
                .collect();
            let uids: BTreeSet<String> = self
                .objects
                .values()
                .flat_map(|bucket| bucket.values())
                .map(|object| text_at(object, "/metadata/uid").to_string())
                .collect();
            let terminating: BTreeSet<String> = self
                .objects
                .get("/namespaces")
                .map(|bucket| {
                    bucket
                        .values()
                        .filter(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
                        .map(|ns| text_at(ns, "/metadata/name").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let mut doomed = Vec::new();
            let mut occupied = BTreeSet::new();
            for (storage_key, bucket) in &self.objects {
                for ((namespace, _), object) in bucket {
                    if !namespace.is_empty() && terminating.contains(namespace) {
                        occupied.insert(namespace.clone());
                    }
                    if object.pointer("/metadata/deletionTimestamp").is_some() {
                        continue;
                    }
                    let owners = owner_uids(object);
                    let orphaned = (!owners.is_empty()
                        && owners.iter().all(|uid| !uids.contains(*uid)))
                        || owners.iter().any(|uid| foreground_uids.contains(*uid));
                    let in_terminating = !namespace.is_empty() && terminating.contains(namespace);
                    if orphaned || in_terminating {
                        doomed.push((storage_key.clone(), object.clone()));
                    }
                }
            }
            let empty: Vec<String> = terminating.difference(&occupied).cloned().collect();
            let cleaned = self.clean_up_crds();
            if doomed.is_empty() && empty.is_empty() && released.is_empty() && !cleaned {
                return;
            }
            for (storage_key, object) in released {
                self.drop_finalizer(&storage_key, &object, FOREGROUND);
            }
            for (storage_key, object) in doomed {
                self.delete_object(storage_key, object, Propagation::Background);
            }
            for namespace in empty {
                self.remove("/namespaces", &(String::new(), namespace), None);
            }
        }
    }

    /// Deletes the objects of CRDs being deleted (finalizers respected) and lets each CRD go
    /// once its objects are gone. Returns whether anything changed.
    fn clean_up_crds(&mut self) -> bool {
        let crd_key = format!("{CRD_GROUP}/{CRD_PLURAL}");
        let terminating: Vec<Value> = self
            .objects
            .get(&crd_key)
            .map(|bucket| {
                bucket
                    .values()
                    .filter(|crd| {
                        crd.pointer("/metadata/deletionTimestamp").is_some()
                            && finalizers(crd).iter().any(|name| name == CRD_CLEANUP)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut changed = false;
        for crd in terminating {
            let storage_key = format!(
                "{}/{}",
                text_at(&crd, "/spec/group"),
                text_at(&crd, "/spec/names/plural")
            );
            let objects: Vec<Value> = self
                .objects
                .get(&storage_key)
                .map(|bucket| bucket.values().cloned().collect())
                .unwrap_or_default();
            if objects.is_empty() {
                self.drop_finalizer(&crd_key, &crd, CRD_CLEANUP);
                changed = true;
                continue;
            }
            for object in objects
                .into_iter()
                .filter(|object| object.pointer("/metadata/deletionTimestamp").is_none())
            {
                self.delete_object(storage_key.clone(), object, Propagation::Background);
                changed = true;
            }
        }
        changed
    }

    /// Deletes every selected object of a resource.
    pub fn delete_collection(
        &mut self,
        resource: &ResourceType,
        selection: &Selection,
        options: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(resource, selection, None, None)?;
        let mut deleted = Vec::new();
        for item in page.items {
            let namespace = text_at(&item, "/metadata/namespace").to_string();
            let name = text_at(&item, "/metadata/name").to_string();
            let namespace = (!namespace.is_empty()).then_some(namespace);
            if let Ok(result) = self.delete(resource, namespace.as_deref(), &name, options) {
                deleted.push(result.object);
            }
        }
        Ok(deleted)
    }
}
