//! Writes: creation with the metadata the server owns, updates with the status-subresource,
//! finalizer and generation rules, patches and server-side apply. What a write must pass first
//! is in `checks`.
use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::checks::{field_error, is_dns_subdomain};
use super::delete::CRD_CLEANUP;
use super::{Store, WriteOptions, finalizers, metadata_mut, now_timestamp, set_metadata, text_at};
use crate::admission::FieldErrorKind;
use crate::apiserver::apply::{self, ApplyRequest};
use crate::apiserver::conversion;
use crate::apiserver::resources::{CRD_GROUP, CRD_PLURAL, ResourceType};
use crate::apiserver::status::{ApiError, Subject};

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

impl Store {
    /// Records a write that is not an apply in the managed fields, as server-side apply's
    /// Update operation: the writer owns what it changed, and nobody else does any more.
    fn record_update(
        resource: &ResourceType,
        old: &Value,
        new: &mut Value,
        status_only: bool,
        options: &WriteOptions,
    ) {
        let now = now_timestamp();
        let api_version = resource.api_version();
        let request = ApplyRequest {
            manager: &options.field_manager,
            force: false,
            subresource: if status_only { "status" } else { "" },
            api_version: &api_version,
            now: &now,
        };
        apply::record_update(old, new, &request);
    }

    /// Creates an object.
    pub fn create(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_object(resource, namespace, object, false, options)
    }

    /// Creates an object; `applied` when server-side apply already recorded its fields.
    fn create_object(
        &mut self,
        resource: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        applied: bool,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut object = conversion::to_storage(resource, object);
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
        self.check_crd_not_terminating(resource)?;
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
        self.admit(resource, &mut object, None, options)?;
        if !applied {
            Self::record_update(resource, &json!({}), &mut object, false, options);
        }
        let storage_key = resource.storage_key();
        if storage_key == "/namespaces" {
            object["status"] = json!({"phase": "Active"});
            if object.pointer("/spec/finalizers").is_none() {
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        if storage_key == format!("{CRD_GROUP}/{CRD_PLURAL}") {
            self.register_crd(&mut object, options.dry_run)?;
            let mut kept = finalizers(&object);
            if !kept.iter().any(|name| name == CRD_CLEANUP) {
                kept.push(CRD_CLEANUP.to_string());
                set_metadata(&mut object, "finalizers", json!(kept));
            }
        }
        if options.dry_run {
            return Ok(object);
        }
        let object = self.commit(&storage_key, key, object, None);
        Ok(Self::presented(resource, &object))
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
        let object = conversion::to_storage(resource, object);
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
        self.commit_update(resource, old, object, status_only, false, options)
    }

    pub(super) fn stored(
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
        let new = conversion::to_storage(resource, patcher(&presented)?);
        let requested = text_at(&new, "/metadata/resourceVersion");
        if !requested.is_empty() && requested != text_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                Self::subject(resource, name),
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.commit_update(resource, old, new, status_only, false, options)
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
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut config = config;
        set_metadata(&mut config, "name", Value::String(name.to_string()));
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
                return self.create_object(resource, namespace, object, true, options);
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
        let new = conversion::to_storage(resource, new);
        self.commit_update(resource, old, new, status_only, true, options)
    }

    /// The common end of every update: server-owned fields kept, status handling, finalizer
    /// rules, admission, generation, and the write itself.
    fn commit_update(
        &mut self,
        resource: &ResourceType,
        old: Value,
        mut new: Value,
        status_only: bool,
        applied: bool,
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
        if !applied {
            Self::record_update(resource, &old, &mut new, status_only, options);
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
            self.admit(resource, &mut new, Some(&old), options)?;
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
            self.register_crd(&mut new, options.dry_run)?;
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
        let key = (text_at(&new, "/metadata/namespace").to_string(), name);
        let new = self.commit(&storage_key, key, new, Some(old));
        Ok(Self::presented(resource, &new))
    }
}
