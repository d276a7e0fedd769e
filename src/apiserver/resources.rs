//! The kinds of objects the server serves: a few built-in resources, plus one per version of each
//! CustomResourceDefinition it has been given.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};

use crate::admission::{Validator, ValidatorError};

/// One served resource at one group/version.
#[derive(Clone)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, such as `v1`.
    pub version: String,
    /// Plural name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get all`-style groupings).
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (and the main endpoint ignores `.status`).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is kept for this resource.
    pub has_generation: bool,
    /// kubectl's printer columns.
    pub printer_columns: Vec<CustomResourceColumnDefinition>,
    /// The CRD's schema for this version, when the resource comes from a CRD.
    pub schema: Option<serde_json::Value>,
    /// The admission validator, when the resource comes from a CRD.
    pub validator: Option<Arc<Validator>>,
    /// The CRD this resource comes from (`<plural>.<group>`).
    pub crd_name: Option<String>,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The key under which objects of this resource are stored, shared by all versions.
    pub fn storage_key(&self) -> String {
        // events.k8s.io/v1 Events are another view of the core v1 Events.
        if self.group == "events.k8s.io" && self.plural == "events" {
            return "/events".to_string();
        }
        format!("{}/{}", self.group, self.plural)
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            has_generation: false,
            printer_columns: Vec::new(),
            schema: None,
            validator: None,
            crd_name: None,
        }
    }
}

/// Every resource the server serves, by group, version and plural.
#[derive(Clone, Default)]
pub struct Registry {
    resources: BTreeMap<(String, String, String), ResourceType>,
}

/// The plural of the CustomResourceDefinition resource.
pub const CRD_PLURAL: &str = "customresourcedefinitions";
/// The group of the CustomResourceDefinition resource.
pub const CRD_GROUP: &str = "apiextensions.k8s.io";

impl Registry {
    /// The built-in resources: Namespaces, Events, Leases and CustomResourceDefinitions.
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        let mut namespaces = ResourceType::builtin("", "v1", "namespaces", "Namespace", false);
        namespaces.short_names = vec!["ns".to_string()];
        namespaces.status_subresource = true;
        let mut core_events = ResourceType::builtin("", "v1", "events", "Event", true);
        core_events.short_names = vec!["ev".to_string()];
        let mut events = ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true);
        events.short_names = vec!["ev".to_string()];
        let leases = ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true);
        let mut crds = ResourceType::builtin(
            CRD_GROUP,
            "v1",
            CRD_PLURAL,
            "CustomResourceDefinition",
            false,
        );
        crds.short_names = vec!["crd".to_string(), "crds".to_string()];
        crds.status_subresource = true;
        crds.has_generation = true;
        for resource in [namespaces, core_events, events, leases, crds] {
            registry.insert(resource);
        }
        registry
    }

    fn insert(&mut self, resource: ResourceType) {
        self.resources.insert(
            (
                resource.group.clone(),
                resource.version.clone(),
                resource.plural.clone(),
            ),
            resource,
        );
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.resources
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Every served resource, ordered by group, version and plural.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.resources.values()
    }

    /// Whether a group/version is served at all.
    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.all().any(|r| r.group == group && r.version == version)
    }

    /// Registers (or replaces) the resources of a CRD, one per served version.
    pub fn register_crd(&mut self, crd: &CustomResourceDefinition) -> Result<(), ValidatorError> {
        let crd_name = crd.metadata.name.clone().unwrap_or_default();
        self.unregister_crd(&crd_name);
        let validator = Arc::new(Validator::new(crd)?);
        let spec = &crd.spec;
        for version in spec.versions.iter().filter(|v| v.served) {
            let resource = ResourceType {
                group: spec.group.clone(),
                version: version.name.clone(),
                plural: spec.names.plural.clone(),
                singular: spec
                    .names
                    .singular
                    .clone()
                    .unwrap_or_else(|| spec.names.kind.to_lowercase()),
                kind: spec.names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                short_names: spec.names.short_names.clone().unwrap_or_default(),
                categories: spec.names.categories.clone().unwrap_or_default(),
                status_subresource: version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                has_generation: true,
                printer_columns: version
                    .additional_printer_columns
                    .clone()
                    .unwrap_or_default(),
                schema: version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .and_then(|s| serde_json::to_value(s).ok()),
                validator: Some(Arc::clone(&validator)),
                crd_name: Some(crd_name.clone()),
            };
            self.insert(resource);
        }
        Ok(())
    }

    /// Removes the resources of a CRD.
    pub fn unregister_crd(&mut self, crd_name: &str) {
        self.resources
            .retain(|_, r| r.crd_name.as_deref() != Some(crd_name));
    }
}
