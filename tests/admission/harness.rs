//! Loading the committed CRDs and manifests, and admitting objects through the validator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use healthlake_operator::admission::{FieldError, Validator};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The repository root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Validators for every CRD in the committed `crds/`, by kind: what users apply, not what the
/// Rust types would generate now.
pub struct Cluster {
    validators: BTreeMap<String, Validator>,
}

impl Cluster {
    /// Loads every YAML file of `crds/`.
    pub fn from_committed_crds() -> Self {
        let mut validators = BTreeMap::new();
        let directory = repository().join("crds");
        for entry in std::fs::read_dir(&directory).expect("crds/ exists") {
            let path = entry.expect("crds/ is readable").path();
            let text = std::fs::read_to_string(&path).expect("crd file is readable");
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
                .unwrap_or_else(|error| panic!("{} is not a CRD: {error}", path.display()));
            let kind = crd.spec.names.kind.clone();
            let validator = Validator::new(&crd)
                .unwrap_or_else(|error| panic!("{} does not compile: {error}", path.display()));
            validators.insert(kind, validator);
        }
        assert_eq!(validators.len(), 3, "crds/ holds the three kinds");
        Self { validators }
    }

    /// Admits `object` (and `old` on update) as the API server would, defaulting it in place.
    pub fn admit(&self, object: &mut Value, old: Option<&Value>) -> Result<(), Vec<FieldError>> {
        let kind = object["kind"]
            .as_str()
            .expect("object has a kind")
            .to_owned();
        let api_version = object["apiVersion"]
            .as_str()
            .expect("object has an apiVersion");
        let version = api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let validator = self
            .validators
            .get(&kind)
            .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
        validator.admit(&version, object, old)
    }
}

/// Every YAML document of a file, as JSON values.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{} is unreadable: {error}", path.display()));
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// Errors as the lines `kubectl` prints.
pub fn lines(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
