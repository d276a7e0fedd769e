//! The objects, the global resourceVersion counter, the watch history, and every write's
//! semantics: creation metadata, generation, status subresource, finalizers, admission and
//! garbage collection of dependents and terminating namespaces.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::apply::{self, ApplyRequest};
use super::resources::{CRD_GROUP, CRD_PLURAL, Registry, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, Subject};
use crate::admission::{FieldError, FieldErrorKind};

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

/// Options shared by writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: compute and validate, store nothing.
    pub dry_run: bool,
}

/// How a delete treats dependents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents after the owner is gone (the default here).
    #[default]
    Background,
    /// Treated as background: dependents are deleted once the owner is gone.
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

/// The server's state.
pub struct Store {
    registry: Registry,
    revision: u64,
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<Change>>,
    history_floor: u64,
    history_capacity: usize,
    sender: broadcast::Sender<Arc<Change>>,
}

fn text_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's metadata map, created when missing; `None` only when `object` is not a map.
fn metadata_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let root = object.as_object_mut()?;
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata.as_object_mut()
}

fn set_metadata(object: &mut Value, key: &str, value: Value) {
    if let Some(metadata) = metadata_mut(object) {
        metadata.insert(key.to_string(), value);
    }
}

fn finalizers(object: &Value) -> Vec<String> {
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

fn new_uid() -> String {
    let bits: u128 = rand::random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| {
            let index = rand::random_range(0..ALPHABET.len());
            char::from(ALPHABET[index])
        })
        .collect()
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn field_error(
    field: &str,
    kind: FieldErrorKind,
    value: Option<Value>,
    message: &str,
) -> FieldError {
    FieldError {
        field: field.to_string(),
        kind,
        value,
        message: message.to_string(),
    }
}

/// The part of an object whose changes bump `metadata.generation`.
fn generation_content(resource: &ResourceType, object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if resource.status_subresource {
            map.remove("status");
        }
    }
    content
}

/// The object without the fields every write changes, to spot writes that change nothing.
fn comparable(object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(metadata) = content.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    content
}

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
            history_capacity: 50_000,
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

    fn subject<'a>(resource: &'a ResourceType, name: &'a str) -> Subject<'a> {
        Subject {
            plural: &resource.plural,
            group: &resource.group,
            kind: &resource.kind,
            name,
        }
    }

    fn bucket(&self, resource: &ResourceType) -> Option<&BTreeMap<(String, String), Value>> {
        self.objects.get(&resource.storage_key())
    }

    fn key(resource: &ResourceType, namespace: Option<&str>, name: &str) -> (String, String) {
        let namespace = if resource.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        (namespace.to_string(), name.to_string())
    }

    /// Sets `apiVersion` to the version the client asked for (conversion strategy `None`).
    fn presented(resource: &ResourceType, object: &Value) -> Value {
        let mut object = object.clone();
        object["apiVersion"] = Value::String(resource.api_version());
        object["kind"] = Value::String(resource.kind.clone());
        object
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

    fn record(&mut self, change: Change) {
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

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn check_namespace(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let Some(namespace) = namespace.filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        };
        let found = self
            .objects
            .get("/namespaces")
            .and_then(|bucket| bucket.get(&(String::new(), namespace.to_string())));
        match found {
            None => Err(ApiError::not_found(Subject {
                plural: "namespaces",
                group: "",
                kind: "Namespace",
                name: namespace,
            })),
            Some(object) if object.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                        resource.plural,
                        text_at(object, "/metadata/name")
                    ),
                    details: None,
                })
            }
            Some(_) => Ok(()),
        }
    }

    fn admit(
        &self,
        resource: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = text_at(object, "/metadata/name").to_string();
        let mut errors = Vec::new();
        if let Some(validator) = &resource.validator
            && let Err(found) = validator.admit(&resource.version, object, old)
        {
            errors.extend(found);
        }
        if resource.storage_key() == format!("{CRD_GROUP}/{CRD_PLURAL}")
            && let Err(message) = serde_json::from_value::<CustomResourceDefinition>(object.clone())
        {
            errors.push(field_error(
                "spec",
                FieldErrorKind::Invalid,
                None,
                &message.to_string(),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(Self::subject(resource, &name), &errors))
        }
    }

    /// Creates an object.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        if let Some(kind) = object.get("kind").and_then(Value::as_str)
            && kind != resource.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource {} (kind {})",
                resource.plural, resource.kind
            )));
        }
        let namespace = if resource.namespaced {
            let in_body = text_at(&object, "/metadata/namespace").to_string();
            let namespace = namespace.unwrap_or_default().to_string();
            if !in_body.is_empty() && in_body != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(namespace)
        } else {
            None
        };
        self.check_namespace(resource, namespace.as_deref())?;
        let mut name = text_at(&object, "/metadata/name").to_string();
        if name.is_empty() {
            let prefix = text_at(&object, "/metadata/generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    Self::subject(resource, ""),
                    &[field_error(
                        "metadata.name",
                        FieldErrorKind::Required,
                        None,
                        "name or generateName is required",
                    )],
                ));
            }
            name = format!("{prefix}{}", random_suffix());
        }
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                Self::subject(resource, &name),
                &[field_error(
                    "metadata.name",
                    FieldErrorKind::Invalid,
                    Some(Value::String(name.clone())),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                )],
            ));
        }
        let key = Self::key(resource, namespace.as_deref(), &name);
        if self
            .bucket(resource)
            .is_some_and(|bucket| bucket.contains_key(&key))
        {
            return Err(ApiError::already_exists(Self::subject(resource, &name)));
        }
        object["apiVersion"] = Value::String(resource.api_version());
        object["kind"] = Value::String(resource.kind.clone());
        {
            let Some(metadata) = metadata_mut(&mut object) else {
                return Err(ApiError::bad_request(
                    "the request body is not a JSON object",
                ));
            };
            metadata.insert("name".into(), Value::String(name.clone()));
            match &namespace {
                Some(namespace) => {
                    metadata.insert("namespace".into(), Value::String(namespace.clone()));
                }
                None => {
                    metadata.remove("namespace");
                }
            }
            metadata.insert("uid".into(), Value::String(new_uid()));
            metadata.insert("creationTimestamp".into(), Value::String(now_timestamp()));
            for server_owned in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ] {
                metadata.remove(server_owned);
            }
            if resource.has_generation {
                metadata.insert("generation".into(), json!(1));
            } else {
                metadata.remove("generation");
            }
        }
        if resource.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        self.admit(resource, &mut object, None)?;
        let storage_key = resource.storage_key();
        if storage_key == "/namespaces" {
            object["status"] = json!({"phase": "Active"});
            if object.pointer("/spec/finalizers").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        if storage_key == format!("{CRD_GROUP}/{CRD_PLURAL}") {
            self.register_crd(&mut object)?;
        }
        if options.dry_run {
            return Ok(object);
        }
        let revision = self.next_revision();
        set_metadata(
            &mut object,
            "resourceVersion",
            Value::String(revision.to_string()),
        );
        self.objects
            .entry(storage_key.clone())
            .or_default()
            .insert(key, object.clone());
        self.record(Change {
            revision,
            storage_key,
            kind: EventKind::Added,
            object: object.clone(),
            previous: None,
        });
        Ok(Self::presented(resource, &object))
    }

    /// Registers a CRD object's resources and fills in its status.
    fn register_crd(&mut self, object: &mut Value) -> Result<(), ApiError> {
        let name = text_at(object, "/metadata/name").to_string();
        let crd: CustomResourceDefinition =
            serde_json::from_value(object.clone()).map_err(|error| {
                ApiError::bad_request(format!("invalid customresourcedefinition {name}: {error}"))
            })?;
        let expected = format!("{}.{}", crd.spec.names.plural, crd.spec.group);
        if name != expected {
            return Err(ApiError::invalid(
                Subject {
                    plural: CRD_PLURAL,
                    group: CRD_GROUP,
                    kind: "CustomResourceDefinition",
                    name: &name,
                },
                &[field_error(
                    "metadata.name",
                    FieldErrorKind::Invalid,
                    Some(Value::String(name.clone())),
                    &format!("must be spec.names.plural+\".\"+spec.group ({expected})"),
                )],
            ));
        }
        self.registry.register_crd(&crd).map_err(|error| {
            ApiError::invalid(
                Subject {
                    plural: CRD_PLURAL,
                    group: CRD_GROUP,
                    kind: "CustomResourceDefinition",
                    name: &name,
                },
                &[field_error(
                    "spec.versions",
                    FieldErrorKind::Invalid,
                    None,
                    &error.to_string(),
                )],
            )
        })?;
        let now = now_timestamp();
        let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now});
        object["status"] = json!({
            "acceptedNames": object.pointer("/spec/names").cloned().unwrap_or(Value::Null),
            "storedVersions": crd.spec.versions.iter().filter(|v| v.storage).map(|v| v.name.clone()).collect::<Vec<_>>(),
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
        });
        Ok(())
    }

    /// Replaces an object (PUT), on the main endpoint or the status subresource.
    pub fn replace(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        status_only: bool,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let old = self.stored(resource, namespace, name)?;
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        let body_name = text_at(&object, "/metadata/name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let requested = text_at(&object, "/metadata/resourceVersion");
        if !requested.is_empty() && requested != text_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                Self::subject(resource, name),
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.commit_update(resource, old, object, status_only, options)
    }

    fn stored(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.bucket(resource)
            .and_then(|bucket| bucket.get(&Self::key(resource, namespace, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(Self::subject(resource, name)))
    }

    /// Patches an object with a merge or JSON patch, already applied by the caller to `old`.
    pub fn patch_with(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        status_only: bool,
        options: &WriteOptions,
        patcher: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let old = self.stored(resource, namespace, name)?;
        let presented = Self::presented(resource, &old);
        let new = patcher(&presented)?;
        let requested = text_at(&new, "/metadata/resourceVersion");
        if !requested.is_empty() && requested != text_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                Self::subject(resource, name),
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.commit_update(resource, old, new, status_only, options)
    }

    /// Server-side apply: creates the object when absent, merges otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        config: Value,
        manager: &str,
        force: bool,
        status_only: bool,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if manager.is_empty() {
            return Err(ApiError::invalid(
                Subject {
                    plural: "patchoptions",
                    group: "meta.k8s.io",
                    kind: "PatchOptions",
                    name: "",
                },
                &[field_error(
                    "fieldManager",
                    FieldErrorKind::Required,
                    None,
                    "is required for apply patch",
                )],
            ));
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration is not an object",
            ));
        }
        let body_name = text_at(&config, "/metadata/name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let now = now_timestamp();
        let api_version = resource.api_version();
        let request = ApplyRequest {
            manager,
            force,
            subresource: if status_only { "status" } else { "" },
            api_version: &api_version,
            now: &now,
        };
        let existing = self.stored(resource, namespace, name);
        let old = match existing {
            Ok(old) => old,
            Err(error) if status_only => return Err(error),
            Err(_) => {
                let created = apply::apply(&json!({}), &config, &request).map_err(|conflicts| {
                    ApiError::apply_conflict(Self::subject(resource, name), &conflicts)
                })?;
                let managed = created.pointer("/metadata/managedFields").cloned();
                let mut object = config.clone();
                if let Some(managed) = managed {
                    set_metadata(&mut object, "managedFields", managed);
                }
                return self.create(resource, namespace, object, options);
            }
        };
        let presented = Self::presented(resource, &old);
        let requested = text_at(&config, "/metadata/resourceVersion");
        if !requested.is_empty() && requested != text_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                Self::subject(resource, name),
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let new = apply::apply(&presented, &config, &request).map_err(|conflicts| {
            ApiError::apply_conflict(Self::subject(resource, name), &conflicts)
        })?;
        self.commit_update(resource, old, new, status_only, options)
    }

    /// The common end of every update: server-owned fields kept, status handling, finalizer
    /// rules, admission, generation, and the write itself.
    fn commit_update(
        &mut self,
        resource: &ResourceType,
        old: Value,
        mut new: Value,
        status_only: bool,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = text_at(&old, "/metadata/name").to_string();
        if status_only {
            let status = new.get("status").cloned();
            let managed = new.pointer("/metadata/managedFields").cloned();
            new = old.clone();
            match status {
                Some(status) => new["status"] = status,
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            if let Some(managed) = managed {
                set_metadata(&mut new, "managedFields", managed);
            }
        } else if resource.status_subresource {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        new["apiVersion"] = Value::String(resource.api_version());
        new["kind"] = Value::String(resource.kind.clone());
        {
            let old_metadata = old
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let Some(metadata) = metadata_mut(&mut new) else {
                return Err(ApiError::bad_request(
                    "the request body is not a JSON object",
                ));
            };
            for server_owned in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_metadata.get(server_owned) {
                    Some(value) => {
                        metadata.insert(server_owned.into(), value.clone());
                    }
                    None => {
                        metadata.remove(server_owned);
                    }
                }
            }
            if !metadata.contains_key("managedFields")
                && let Some(managed) = old_metadata.get("managedFields")
            {
                metadata.insert("managedFields".into(), managed.clone());
            }
        }
        let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            let before: BTreeSet<String> = finalizers(&old).into_iter().collect();
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    Self::subject(resource, &name),
                    &[field_error(
                        "metadata.finalizers",
                        FieldErrorKind::Forbidden,
                        None,
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        if !(deleting && finalizers(&new).is_empty()) {
            self.admit(resource, &mut new, Some(&old))?;
        }
        if resource.has_generation
            && generation_content(resource, &new) != generation_content(resource, &old)
        {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            set_metadata(&mut new, "generation", json!(generation));
        }
        let storage_key = resource.storage_key();
        let is_crd = storage_key == format!("{CRD_GROUP}/{CRD_PLURAL}");
        if is_crd && !status_only && !deleting {
            self.register_crd(&mut new)?;
        }
        if comparable(&new) == comparable(&old) {
            return Ok(Self::presented(resource, &old));
        }
        if options.dry_run {
            return Ok(Self::presented(resource, &new));
        }
        if deleting && finalizers(&new).is_empty() {
            let key = (text_at(&old, "/metadata/namespace").to_string(), name);
            self.remove(&storage_key, &key, Some(new.clone()));
            self.collect_garbage();
            return Ok(Self::presented(resource, &new));
        }
        let revision = self.next_revision();
        set_metadata(
            &mut new,
            "resourceVersion",
            Value::String(revision.to_string()),
        );
        let key = (text_at(&new, "/metadata/namespace").to_string(), name);
        self.objects
            .entry(storage_key.clone())
            .or_default()
            .insert(key, new.clone());
        self.record(Change {
            revision,
            storage_key,
            kind: EventKind::Modified,
            object: new.clone(),
            previous: Some(old),
        });
        Ok(Self::presented(resource, &new))
    }

    /// Removes an object for good and records the DELETED change.
    fn remove(&mut self, storage_key: &str, key: &(String, String), last_state: Option<Value>) {
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
        if finalizers(&old).is_empty() && !is_namespace {
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
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        let revision = self.next_revision();
        set_metadata(
            &mut new,
            "resourceVersion",
            Value::String(revision.to_string()),
        );
        self.objects
            .entry(storage_key.clone())
            .or_default()
            .insert(key, new.clone());
        self.record(Change {
            revision,
            storage_key,
            kind: EventKind::Modified,
            object: new.clone(),
            previous: Some(old),
        });
        Deleted {
            object: new,
            removed: false,
        }
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
        for (storage_key, key, old, mut new) in updates {
            let revision = self.next_revision();
            set_metadata(
                &mut new,
                "resourceVersion",
                Value::String(revision.to_string()),
            );
            self.objects
                .entry(storage_key.clone())
                .or_default()
                .insert(key, new.clone());
            self.record(Change {
                revision,
                storage_key,
                kind: EventKind::Modified,
                object: new,
                previous: Some(old),
            });
        }
    }

    /// Deletes dependents whose owners are all gone, empties terminating namespaces and removes
    /// them once empty; repeats until nothing changes.
    fn collect_garbage(&mut self) {
        loop {
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
                    let owners: Vec<&str> = object
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .map(|refs| refs.iter().map(|r| text_at(r, "/uid")).collect())
                        .unwrap_or_default();
                    let orphaned =
                        !owners.is_empty() && owners.iter().all(|uid| !uids.contains(*uid));
                    let in_terminating = !namespace.is_empty() && terminating.contains(namespace);
                    if orphaned || in_terminating {
                        doomed.push((storage_key.clone(), object.clone()));
                    }
                }
            }
            let empty: Vec<String> = terminating.difference(&occupied).cloned().collect();
            if doomed.is_empty() && empty.is_empty() {
                return;
            }
            for (storage_key, object) in doomed {
                self.delete_object(storage_key, object, Propagation::Background);
            }
            for namespace in empty {
                self.remove("/namespaces", &(String::new(), namespace), None);
            }
        }
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
