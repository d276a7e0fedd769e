//! What a write must pass before it is stored: the namespace exists and is not terminating, the
//! name is valid, admission (unknown fields, schema, CEL) accepts the object, and a CRD compiles
//! into served resources.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::{FieldValidation, Store, WriteOptions, now_timestamp, text_at};
use crate::admission::{FieldError, FieldErrorKind};
use crate::apiserver::resources::{CRD_GROUP, CRD_PLURAL, ResourceType};
use crate::apiserver::status::{ApiError, Subject};

pub(super) fn is_dns_subdomain(name: &str) -> bool {
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

pub(super) fn field_error(
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

impl Store {
    /// Refuses new objects of a CRD that is being deleted, as the API server does.
    pub(super) fn check_crd_not_terminating(
        &self,
        resource: &ResourceType,
    ) -> Result<(), ApiError> {
        let Some(crd_name) = &resource.crd_name else {
            return Ok(());
        };
        let terminating = self
            .objects
            .get(&format!("{CRD_GROUP}/{CRD_PLURAL}"))
            .and_then(|bucket| bucket.get(&(String::new(), crd_name.clone())))
            .is_some_and(|crd| crd.pointer("/metadata/deletionTimestamp").is_some());
        if terminating {
            return Err(ApiError::method_not_allowed(format!(
                "create not allowed while custom resource definition {crd_name} is terminating"
            )));
        }
        Ok(())
    }

    pub(super) fn check_namespace(
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

    pub(super) fn admit(
        &self,
        resource: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
        options: &WriteOptions,
    ) -> Result<(), ApiError> {
        let name = text_at(object, "/metadata/name").to_string();
        if let Some(validator) = &resource.validator
            && options.field_validation != FieldValidation::Ignore
        {
            let unknown: Vec<String> = validator
                .unknown_fields(&resource.version, object)
                .iter()
                .map(|field| format!("unknown field {field:?}"))
                .collect();
            if !unknown.is_empty() && options.field_validation == FieldValidation::Strict {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
                    unknown.join(", "),
                    kind = resource.kind,
                    version = resource.version,
                )));
            }
            options.warnings.borrow_mut().extend(unknown);
        }
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

    /// Compiles a CRD object into served resources and fills in its status; under dry run the
    /// resources are compiled (so errors show) but not served.
    pub(super) fn register_crd(
        &mut self,
        object: &mut Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
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
        let mut scratch;
        let registry = if dry_run {
            scratch = self.registry.clone();
            &mut scratch
        } else {
            &mut self.registry
        };
        registry.register_crd(&crd).map_err(|error| {
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
}
