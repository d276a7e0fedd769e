//! The operator's own writes that its watch has not delivered yet.
//!
//! A controller reconciles the copy of an object in its watch cache. Under load the watch
//! delivers the operator's own write seconds late, and a poll that runs meanwhile would act on the
//! copy from before the write: look a datastore up by name again although its id is recorded, or
//! start a job again (HealthLake's client token returns the same job, but the call and a second
//! `Started` event are wasted; the status write then fails with 409 and is settled again).
//! [`OwnWrites`] keeps the object each write returned until the watch catches up, and hands it to
//! the reconcile instead of the older cached copy.
//!
//! Resource versions are opaque (Kubernetes API conventions): nothing here orders them. A cached
//! copy is older than a write exactly when its `resourceVersion` is one the write was computed
//! from, or one an earlier write in the same chain was computed from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// The objects this process wrote and whose write its watch has not delivered yet, by uid.
pub(super) struct OwnWrites<K: Resource<DynamicType = ()> + 'static> {
    cache: Store<K>,
    writes: Mutex<HashMap<String, OwnWrite<K>>>,
}

struct OwnWrite<K> {
    /// The resource versions the write (and the writes it followed) replaced: older than `latest`.
    replaced: Vec<String>,
    /// What the API server returned for the newest write.
    latest: Arc<K>,
}

impl<K> OwnWrites<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// Tracks the writes to objects that `cache` (the controller's watch cache) holds.
    pub(super) fn new(cache: Store<K>) -> Self {
        Self {
            cache,
            writes: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, OwnWrite<K>>> {
        self.writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The newest copy of `cached` this process knows: `cached` itself, unless it is a version an
    /// own write replaced, in which case the object that write returned.
    pub(super) fn newest(&self, cached: Arc<K>) -> Arc<K> {
        let Some(uid) = cached.meta().uid.as_deref() else {
            return cached;
        };
        let mut writes = self.lock();
        match writes.get(uid) {
            Some(write) if is_replaced(write, cached.as_ref()) => write.latest.clone(),
            Some(_) => {
                // The cache has caught up (or moved past): it is the newest copy.
                writes.remove(uid);
                cached
            }
            None => cached,
        }
    }

    /// Notes that a write succeeded and returned `written`; `read` holds the resource versions of
    /// every copy of the object the write was computed from (all older than `written`). Nothing
    /// is kept when the watch has already delivered a newer copy or the deletion, nor for a write
    /// that changed nothing (the API server answers it with the version it was computed from,
    /// and no watch event follows it).
    pub(super) fn wrote(&self, read: &[String], mut written: K) {
        let Some(uid) = written.meta().uid.clone() else {
            return;
        };
        let Some(written_version) = written.meta().resource_version.clone() else {
            return;
        };
        super::slim(&mut written);
        let mut writes = self.lock();
        let previous = writes.remove(&uid);
        let mut replaced = match &previous {
            Some(previous) => {
                let mut replaced = previous.replaced.clone();
                replaced.extend(previous.latest.meta().resource_version.clone());
                replaced
            }
            None => Vec::new(),
        };
        for version in read {
            if !replaced.contains(version) {
                replaced.push(version.clone());
            }
        }
        let write = if replaced.contains(&written_version) {
            // Nothing changed: what was known before still holds.
            match previous {
                Some(previous) => previous,
                None => return,
            }
        } else {
            OwnWrite {
                replaced,
                latest: Arc::new(written),
            }
        };
        // Checked under the lock: the cache is updated before `observe` runs, so either the check
        // sees the delivered copy (or the object gone) or `observe` sees this entry and removes it.
        if self.cache_is_older(&uid, &write) {
            writes.insert(uid, write);
        }
    }

    /// Whether the cache still holds a copy of the object that `write` replaced. An object the
    /// cache no longer holds was deleted: no reconcile will ask for it, no event forget it.
    fn cache_is_older(&self, uid: &str, write: &OwnWrite<K>) -> bool {
        self.cache
            .get(&ObjectRef::from_obj(write.latest.as_ref()))
            .is_some_and(|cached| {
                cached.meta().uid.as_deref() == Some(uid) && is_replaced(write, cached.as_ref())
            })
    }

    /// Follows the watch, after its event reached the cache: an object is forgotten once the
    /// watch delivers a version no own write replaced, or its deletion, or a relist leaves it out
    /// of the cache.
    pub(super) fn observe(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let Some(uid) = object.meta().uid.as_deref() else {
                    return;
                };
                let mut writes = self.lock();
                if writes
                    .get(uid)
                    .is_some_and(|write| !is_replaced(write, object))
                {
                    writes.remove(uid);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.meta().uid.as_deref() {
                    self.lock().remove(uid);
                }
            }
            // A relist replaced the whole cache; an object deleted while the watch was down
            // left it without a deletion event.
            watcher::Event::InitDone => {
                self.lock()
                    .retain(|uid, write| self.cache_is_older(uid, write));
            }
            watcher::Event::Init => {}
        }
    }

    /// How many objects wait for their watch event (for tests).
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.lock().len()
    }
}

fn is_replaced<K: Resource>(write: &OwnWrite<K>, object: &K) -> bool {
    object
        .meta()
        .resource_version
        .as_ref()
        .is_some_and(|version| write.replaced.contains(version))
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::api::FHIRDatastore;

    fn copy(version: &str, id: Option<&str>) -> FHIRDatastore {
        let mut object: FHIRDatastore = serde_json::from_value(serde_json::json!({
            "apiVersion": "healthlake.fhir-operator.io/v1alpha1",
            "kind": "FHIRDatastore",
            "metadata": {"name": "patients", "namespace": "clinical"},
            "spec": {},
        }))
        .expect("a datastore");
        object.metadata = ObjectMeta {
            uid: Some("uid-1".to_owned()),
            resource_version: Some(version.to_owned()),
            ..object.metadata
        };
        if let Some(id) = id {
            object.status.get_or_insert_default().datastore_id = Some(id.to_owned());
        }
        object
    }

    fn versions(object: &FHIRDatastore) -> Vec<String> {
        object
            .metadata
            .resource_version
            .clone()
            .into_iter()
            .collect()
    }

    fn id(object: &FHIRDatastore) -> Option<&str> {
        object.status.as_ref()?.datastore_id.as_deref()
    }

    /// A cache holding `cached`, and the writer that updates it.
    fn cache_with(
        cached: &FHIRDatastore,
    ) -> (
        OwnWrites<FHIRDatastore>,
        reflector::store::Writer<FHIRDatastore>,
    ) {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(cached.clone()));
        (OwnWrites::new(reader), writer)
    }

    #[test]
    fn a_cached_copy_older_than_a_write_is_replaced_by_what_the_write_returned() {
        let old = copy("1", None);
        let (writes, _writer) = cache_with(&old);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        let newest = writes.newest(Arc::new(old.clone()));
        assert_eq!(id(&newest), Some("ds-1"));
        // A second write on top of the first: the cache is older than both.
        writes.wrote(&versions(&newest), copy("3", Some("ds-1")));
        let newest = writes.newest(Arc::new(old));
        assert_eq!(newest.meta().resource_version.as_deref(), Some("3"));
    }

    #[test]
    fn the_watch_catching_up_forgets_the_write() {
        let old = copy("1", None);
        let (writes, mut writer) = cache_with(&old);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        assert_eq!(writes.pending(), 1);
        let delivered = Event::Apply(copy("2", Some("ds-1")));
        writer.apply_watcher_event(&delivered);
        writes.observe(&delivered);
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_copy_the_write_did_not_replace_is_newer_and_wins() {
        let old = copy("1", None);
        let (writes, _writer) = cache_with(&old);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        // Another writer's change, delivered before ours: not a version ours replaced.
        let other = copy("7", Some("ds-1"));
        let newest = writes.newest(Arc::new(other));
        assert_eq!(newest.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_write_the_watch_already_delivered_is_not_kept() {
        let old = copy("1", None);
        let (writes, mut writer) = cache_with(&old);
        writer.apply_watcher_event(&Event::Apply(copy("2", Some("ds-1"))));
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_deletion_forgets_the_write() {
        let old = copy("1", None);
        let (writes, _writer) = cache_with(&old);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        writes.observe(&Event::Delete(copy("2", Some("ds-1"))));
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_write_answered_after_the_watch_delivered_the_deletion_is_not_kept() {
        // The patch went through, then someone removed the last finalizer: the watch delivered
        // the deletion before the patch's response arrived. No event will ever forget the write.
        let old = copy("1", None);
        let (writes, mut writer) = cache_with(&old);
        let deleted = Event::Delete(copy("3", Some("ds-1")));
        writer.apply_watcher_event(&deleted);
        writes.observe(&deleted);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_relist_without_the_object_forgets_its_write() {
        // The watch fell out of its window (410 Gone) and listed again: an object deleted
        // meanwhile just leaves the cache, without a deletion event.
        let old = copy("1", None);
        let (writes, mut writer) = cache_with(&old);
        writes.wrote(&versions(&old), copy("2", Some("ds-1")));
        assert_eq!(writes.pending(), 1);
        for event in [Event::Init, Event::InitDone] {
            writer.apply_watcher_event(&event);
            writes.observe(&event);
        }
        assert_eq!(writes.pending(), 0);
    }

    #[test]
    fn a_write_that_changed_nothing_keeps_no_entry_the_watch_cannot_clear() {
        // An API server answers a patch that changes nothing with the object as it was, same
        // resourceVersion, and sends no watch event for it.
        let old = copy("1", None);
        let (writes, mut writer) = cache_with(&old);
        writes.wrote(&versions(&old), old.clone());
        assert_eq!(writes.pending(), 0);
        // The same on top of a write the watch has not delivered yet: delivering that write
        // still forgets it.
        let first = copy("2", Some("ds-1"));
        writes.wrote(&versions(&old), first.clone());
        writes.wrote(&versions(&first), first.clone());
        assert_eq!(
            id(&writes.newest(Arc::new(old))),
            Some("ds-1"),
            "the older cached copy is still replaced"
        );
        let delivered = Event::Apply(first);
        writer.apply_watcher_event(&delivered);
        writes.observe(&delivered);
        assert_eq!(writes.pending(), 0);
    }
}
