//! The objects, the global resourceVersion counter, the watch history, and every write's
//! semantics: creation metadata, generation, status subresource, finalizers, admission and
//! garbage collection of dependents and terminating namespaces.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::conversion;
use super::resources::{Registry, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Subject};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone.
    Deleted,
}

/// One change, as kept in the watch history and sent to open watches.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion of the change.
    pub revision: u64,
    /// The storage key (`group/plural`) of the object's resource.
    pub storage_key: String,
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (the last state for a deletion).
    pub object: Value,
    /// The object before the change, so selector watches see objects leave and enter.
    pub previous: Option<Value>,
}

/// Which objects a list or watch selects.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// The namespace, or every namespace when `None`.
    pub namespace: Option<String>,
    /// The label selector.
    pub labels: LabelSelector,
    /// The field selector.
    pub fields: FieldSelector,
}

impl Selection {
    /// Whether an object is selected.
    pub fn matches(&self, object: &Value) -> bool {
        let namespace_matches = self
            .namespace
            .as_deref()
            .is_none_or(|namespace| text_at(object, "/metadata/namespace") == namespace);
        namespace_matches && self.labels.matches(object) && self.fields.matches(object)
    }
}

/// How a write treats fields the CRD's schema does not declare (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Prune them silently.
    Ignore,
    /// Prune them and warn (the server's default).
    #[default]
    Warn,
    /// Refuse the request (kubectl's default).
    Strict,
}

/// Options shared by writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: compute and validate, store nothing.
    pub dry_run: bool,
    /// What to do with unknown fields.
    pub field_validation: FieldValidation,
    /// Warnings for the response's `Warning` headers, filled in by the write.
    pub warnings: std::cell::RefCell<Vec<String>>,
    /// The field manager of a write that is not an apply (from `fieldManager` or the client's
    /// user agent, as the API server derives it).
    pub field_manager: String,
}

/// How a delete treats dependents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents after the owner is gone (the default here).
    #[default]
    Background,
    /// Keep the owner, with the `foregroundDeletion` finalizer, until its dependents are gone.
    Foreground,
    /// Keep dependents, removing their owner reference.
    Orphan,
}

/// The body of a delete request.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// What to do with dependents.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The result of a delete: the object and whether it is gone already.
pub struct Deleted {
    /// The object, with `deletionTimestamp` set if finalizers keep it.
    pub object: Value,
    /// Whether the object was removed (false while finalizers remain).
    pub removed: bool,
}

/// A page of a list.
pub struct Page {
    /// The selected objects.
    pub items: Vec<Value>,
    /// The resourceVersion the list reflects.
    pub revision: u64,
    /// The token for the next page, if any.
    pub continue_token: Option<String>,
    /// How many selected objects are left after this page.
    pub remaining: Option<usize>,
}

/// Where a watch starts.
pub enum WatchStart {
    /// Synthetic ADDED events for the current objects, then every later change.
    CurrentState,
    /// Every change after this resourceVersion.
    After(u64),
}

/// An opened watch: the events to send first, and the stream of later changes.
pub struct Subscription {
    /// Events to send before the live ones.
    pub initial: Vec<Arc<Change>>,
    /// Changes after `revision`.
    pub receiver: broadcast::Receiver<Arc<Change>>,
    /// The revision the initial events reflect.
    pub revision: u64,
}

/// How many changes the watch history keeps. Each change holds the object before and after, so
/// this bounds memory in long benchmarks; kube-runtime only needs the recent past.
const HISTORY_CAPACITY: usize = 10_000;

/// The server's state.
pub struct Store {
    registry: Registry,
    revision: u64,
    pub(super) objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<Change>>,
    history_floor: u64,
    history_capacity: usize,
    sender: broadcast::Sender<Arc<Change>>,
}

pub(super) fn text_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's metadata map, created when missing; `None` only when `object` is not a map.
pub(super) fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let root = object.as_object_mut()?;
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata.as_object_mut()
}

pub(super) fn set_metadata(object: &mut Value, key: &str, value: Value) {
    if let Some(metadata) = metadata_mut(object) {
        metadata.insert(key.to_string(), value);
    }
}

pub(super) fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The current time as the API server writes timestamps.
pub fn now_timestamp() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

mod checks;
mod delete;
mod write;

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store with the built-in resources and the usual namespaces.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(16_384);
        let mut store = Self {
            registry: Registry::with_builtins(),
            revision: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_floor: 0,
            history_capacity: HISTORY_CAPACITY,
            sender,
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let Some(namespaces) = store.registry.get("", "v1", "namespaces").cloned() else {
                continue;
            };
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            // Creating a fixed namespace in an empty store cannot fail.
            let _ = store.create(&namespaces, None, body, &WriteOptions::default());
        }
        store
    }

    /// The served resources.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The latest resourceVersion.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Forgets the watch history: watches from any older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.history_floor = self.revision;
    }

    pub(super) fn subject<'a>(resource: &'a ResourceType, name: &'a str) -> Subject<'a> {
        Subject {
            plural: &resource.plural,
            group: &resource.group,
            kind: &resource.kind,
            name,
        }
    }

    pub(super) fn bucket(
        &self,
        resource: &ResourceType,
    ) -> Option<&BTreeMap<(String, String), Value>> {
        self.objects.get(&resource.storage_key())
    }

    pub(super) fn key(
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> (String, String) {
        let namespace = if resource.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        (namespace.to_string(), name.to_string())
    }

    /// Sets `apiVersion` to the version the client asked for (conversion strategy `None`).
    pub(super) fn presented(resource: &ResourceType, object: &Value) -> Value {
        conversion::present(resource, object)
    }

    /// One object.
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.bucket(resource)
            .and_then(|bucket| bucket.get(&Self::key(resource, namespace, name)))
            .map(|object| Self::presented(resource, object))
            .ok_or_else(|| ApiError::not_found(Self::subject(resource, name)))
    }

    /// A page of the selected objects, in namespace and name order.
    pub fn list(
        &self,
        resource: &ResourceType,
        selection: &Selection,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let after = match continue_token {
            Some(token) if !token.is_empty() => Some(decode_continue(token)?),
            _ => None,
        };
        let selected: Vec<&Value> = self
            .bucket(resource)
            .map(|bucket| {
                bucket
                    .iter()
                    .filter(|(key, _)| after.as_ref().is_none_or(|after| *key > after))
                    .map(|(_, object)| object)
                    .filter(|object| selection.matches(object))
                    .collect()
            })
            .unwrap_or_default();
        let total = selected.len();
        let take = limit.filter(|limit| *limit > 0).unwrap_or(total).min(total);
        let items: Vec<Value> = selected[..take]
            .iter()
            .map(|object| Self::presented(resource, object))
            .collect();
        let continue_token = (take < total).then(|| {
            let last = &items[take - 1];
            encode_continue(
                text_at(last, "/metadata/namespace"),
                text_at(last, "/metadata/name"),
            )
        });
        Ok(Page {
            items,
            revision: self.revision,
            continue_token,
            remaining: (take < total).then_some(total - take),
        })
    }

    /// Opens a watch on the selected objects.
    pub fn subscribe(
        &self,
        resource: &ResourceType,
        selection: &Selection,
        start: WatchStart,
    ) -> Result<Subscription, ApiError> {
        let receiver = self.sender.subscribe();
        let storage_key = resource.storage_key();
        let initial = match start {
            WatchStart::CurrentState => self
                .bucket(resource)
                .map(|bucket| {
                    bucket
                        .values()
                        .filter(|object| selection.matches(object))
                        .map(|object| {
                            Arc::new(Change {
                                revision: self.revision,
                                storage_key: storage_key.clone(),
                                kind: EventKind::Added,
                                object: object.clone(),
                                previous: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchStart::After(revision) => {
                if revision < self.history_floor {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {revision} ({})",
                        self.history_floor
                    )));
                }
                self.history
                    .iter()
                    .filter(|change| {
                        change.revision > revision && change.storage_key == storage_key
                    })
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            initial,
            receiver,
            revision: self.revision,
        })
    }

    /// Stores `object` under a fresh resourceVersion and tells watchers: ADDED when there was no
    /// `previous` state, MODIFIED otherwise. Returns the object as stored.
    pub(super) fn commit(
        &mut self,
        storage_key: &str,
        key: (String, String),
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        let revision = self.next_revision();
        set_metadata(
            &mut object,
            "resourceVersion",
            Value::String(revision.to_string()),
        );
        self.objects
            .entry(storage_key.to_string())
            .or_default()
            .insert(key, object.clone());
        let kind = if previous.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(Change {
            revision,
            storage_key: storage_key.to_string(),
            kind,
            object: object.clone(),
            previous,
        });
        object
    }

    pub(super) fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_capacity {
            if let Some(dropped) = self.history.pop_front() {
                self.history_floor = dropped.revision;
            }
        }
        // Nobody watching is fine.
        let _ = self.sender.send(change);
    }

    pub(super) fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }
}

fn encode_continue(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(token.get(index..index + 2).unwrap_or("zz"), 16))
        .collect();
    let text = String::from_utf8(bytes.map_err(|_| invalid())?).map_err(|_| invalid())?;
    let (namespace, name) = text.split_once('/').ok_or_else(invalid)?;
    Ok((namespace.to_string(), name.to_string()))
}
