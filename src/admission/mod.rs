//! Admission validation of custom resources against their CRD, as the API server does it.
//!
//! Given a CustomResourceDefinition and an object (plus the old object on update), the
//! validator prunes fields the schema does not declare, applies the schema's defaults, checks
//! the structural OpenAPI schema and evaluates the CEL rules, transition rules with `oldSelf`
//! included. Errors are Kubernetes-style field errors such as
//! `spec.datastoreName: Invalid value: "a b!": ...`, worded as a Kubernetes 1.35+ API server
//! words them. It knows nothing of any particular CRD.
//!
//! The order is the API server's: prune and default, check the schema and the uniqueness of
//! `set` and `map` list items, and evaluate the CEL
//! rules only when the schema errors leave the object well-formed enough for them (no wrong
//! types, missing required fields, unknown enum values or oversized values); otherwise a notice
//! says the rules were not checked. On update, errors in parts that did not change are dropped
//! (validation ratcheting), except those of transition rules.

mod field_error;
mod list_types;
mod openapi;
mod re2;
mod rules;
mod structural;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

pub use field_error::{FieldError, FieldErrorKind, NO_FIELD, RULES_NOT_CHECKED};

/// Why a CRD could not be turned into a validator.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The CRD has no schema for the version.
    #[error("crd {crd} has no schema for version {version}")]
    MissingSchema {
        /// The CRD's name.
        crd: String,
        /// The version without a schema.
        version: String,
    },
    /// A pattern or CEL rule in the CRD does not compile.
    #[error("crd {crd} has an invalid schema: {reason}")]
    InvalidSchema {
        /// The CRD's name.
        crd: String,
        /// What does not compile.
        reason: String,
    },
}

/// The compiled schema of one served version.
struct VersionSchema {
    openapi: Value,
    structural: jsonschema::Validator,
    rules: Option<rules::RuleTree>,
}

/// Validates objects of one CRD, for every version it serves.
pub struct Validator {
    crd_name: String,
    group: String,
    versions: BTreeMap<String, VersionSchema>,
}

impl Validator {
    /// Compiles the CRD's schemas and rules.
    pub fn new(crd: &CustomResourceDefinition) -> Result<Self, ValidatorError> {
        let crd_name = crd.metadata.name.clone().unwrap_or_default();
        let invalid = |reason: String| ValidatorError::InvalidSchema {
            crd: crd_name.clone(),
            reason,
        };
        let mut versions = BTreeMap::new();
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|validation| validation.open_api_v3_schema.as_ref())
                .ok_or_else(|| ValidatorError::MissingSchema {
                    crd: crd_name.clone(),
                    version: version.name.clone(),
                })?;
            let openapi = serde_json::to_value(schema)
                .map_err(|error| invalid(format!("version {}: {error}", version.name)))?;
            let structural = openapi::compile(&openapi)
                .map_err(|reason| invalid(format!("version {}: {reason}", version.name)))?;
            let rules = rules::compile(&openapi)
                .map_err(|reason| invalid(format!("version {}: {reason}", version.name)))?;
            versions.insert(
                version.name.clone(),
                VersionSchema {
                    openapi,
                    structural,
                    rules,
                },
            );
        }
        Ok(Self {
            crd_name,
            group: crd.spec.group.clone(),
            versions,
        })
    }

    /// The name of the CRD this validator checks.
    pub fn crd_name(&self) -> &str {
        &self.crd_name
    }

    /// Prunes and defaults `object` in place, as the API server does when it decodes a request
    /// or reads an object from storage, without checking it.
    pub fn default_object(&self, version: &str, object: &mut Value) {
        if let Some(schema) = self.versions.get(version) {
            structural::prune_and_default(&schema.openapi, object);
        }
    }

    /// The fields of `object` the schema does not declare, which admission prunes, as paths such
    /// as `spec.datastoreNmae`. The API server reports them as `unknown field "spec.datastoreNmae"`:
    /// a warning with `fieldValidation=Warn`, a refusal with `Strict` (kubectl's default).
    pub fn unknown_fields(&self, version: &str, object: &Value) -> Vec<String> {
        let Some(schema) = self.versions.get(version) else {
            return Vec::new();
        };
        let mut copy = object.clone();
        structural::prune_and_default(&schema.openapi, &mut copy)
    }

    /// Applies defaults to `object` in place, then checks it (and, on update, the transition
    /// rules against `old`). Returns every field error found, as the API server does.
    pub fn admit(
        &self,
        version: &str,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), Vec<FieldError>> {
        let Some(schema) = self.versions.get(version) else {
            let supported: Vec<String> = self
                .versions
                .keys()
                .map(|served| field_error::go_quote(&format!("{}/{served}", self.group)))
                .collect();
            return Err(vec![FieldError::new(
                "apiVersion",
                FieldErrorKind::NotSupported,
                Some(Value::String(format!("{}/{version}", self.group))),
                format!("supported values: {}", supported.join(", ")),
            )]);
        };
        if !object.is_object() {
            return Err(vec![FieldError::new(
                NO_FIELD,
                FieldErrorKind::Invalid,
                None,
                "the object must be a JSON object",
            )]);
        }
        structural::prune_and_default(&schema.openapi, object);
        let old = old.map(|old| {
            let mut old = old.clone();
            structural::prune_and_default(&schema.openapi, &mut old);
            old
        });
        let mut errors =
            openapi::validate(&schema.structural, &schema.openapi, object, old.as_ref());
        errors.extend(list_types::validate(&schema.openapi, object));
        if errors.iter().any(|error| error.kind.blocks_rules()) {
            errors.push(FieldError::rules_not_checked());
        } else if let Some(rules) = &schema.rules {
            errors.extend(rules::evaluate(rules, object, old.as_ref()));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Validator;

    #[test]
    fn a_validator_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Validator>();
    }
}

#[cfg(test)]
mod generic_tests;
