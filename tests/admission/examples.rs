//! The manifests in `deploy/examples/` are what users copy first: every one must be accepted,
//! and the defaults the documentation promises must be applied.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::harness::{Cluster, documents, lines, repository};

fn examples() -> Vec<(String, Value)> {
    let directory = repository().join("deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("deploy/examples exists")
        .map(|entry| entry.expect("example is readable").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|path| {
            let file = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // The examples' Namespace is a built-in kind that admission does not validate.
            documents(&path)
                .into_iter()
                .filter(|document| {
                    document["apiVersion"]
                        .as_str()
                        .is_some_and(|version| version.starts_with("healthlake.fhir-operator.io/"))
                })
                .map(move |document| (file.clone(), document))
        })
        .collect()
}

fn example(file: &str) -> Value {
    examples()
        .into_iter()
        .find(|(name, _)| name == file)
        .map(|(_, document)| document)
        .unwrap_or_else(|| panic!("deploy/examples/{file} is missing"))
}

#[test]
fn every_example_is_accepted() {
    let cluster = Cluster::from_committed_crds();
    let examples = examples();
    for kind in ["FHIRDatastore", "FHIRImportJob", "FHIRExportJob"] {
        assert!(
            examples
                .iter()
                .any(|(_, document)| document["kind"] == kind),
            "no example of {kind}"
        );
    }
    for (file, mut document) in examples {
        if let Err(errors) = cluster.admit(&mut document, None) {
            panic!("deploy/examples/{file} is refused: {:#?}", lines(&errors));
        }
    }
}

#[test]
fn the_examples_cover_what_the_documentation_promises() {
    let smart = example("datastore-smart-on-fhir.yaml");
    let spec = &smart["spec"];
    assert_eq!(
        spec["sseConfiguration"]["kmsEncryptionConfig"]["cmkType"],
        "CUSTOMER_MANAGED_KMS_KEY"
    );
    assert_eq!(spec["preloadDataConfig"]["preloadDataType"], "SYNTHEA");
    assert_eq!(
        spec["identityProviderConfiguration"]["authorizationStrategy"],
        "SMART_ON_FHIR"
    );
    assert!(
        spec["tags"]
            .as_object()
            .is_some_and(|tags| !tags.is_empty())
    );
    let adopted = example("datastore-adopted.yaml");
    assert!(adopted["spec"]["datastoreId"].is_string());
    assert_eq!(adopted["spec"]["deletionPolicy"], "Retain");
}

#[test]
fn a_minimal_datastore_gets_fhir_r4_and_leaves_the_deletion_policy_to_the_operator() {
    let cluster = Cluster::from_committed_crds();
    let mut minimal = example("datastore-minimal.yaml");
    cluster
        .admit(&mut minimal, None)
        .expect("the minimal datastore is accepted");
    assert_eq!(minimal["spec"]["datastoreTypeVersion"], "R4");
    assert!(
        minimal["spec"].get("deletionPolicy").is_none(),
        "no schema default: the operator deletes what it created and retains what it adopted"
    );
}

#[test]
fn explicit_values_win_over_defaults() {
    let cluster = Cluster::from_committed_crds();
    let mut adopted = example("datastore-adopted.yaml");
    cluster
        .admit(&mut adopted, None)
        .expect("the adopted datastore is accepted");
    assert_eq!(adopted["spec"]["deletionPolicy"], "Retain");
    assert_eq!(adopted["spec"]["datastoreTypeVersion"], "R4");
}

#[test]
fn fields_the_schema_does_not_declare_are_pruned_but_smart_metadata_is_kept_whole() {
    let cluster = Cluster::from_committed_crds();
    let mut smart = example("datastore-smart-on-fhir.yaml");
    smart["spec"]["datastoreNmae"] = json!("typo");
    smart["status"] = json!({"datastoreStatus": "ACTIVE", "invented": true});
    cluster
        .admit(&mut smart, None)
        .expect("accepted once pruned");
    assert!(smart["spec"].get("datastoreNmae").is_none());
    assert!(smart["status"].get("invented").is_none());
    assert_eq!(smart["status"]["datastoreStatus"], "ACTIVE");
    let metadata = &smart["spec"]["identityProviderConfiguration"]["metadata"];
    assert_eq!(
        metadata["issuer"],
        "https://auth.example.org/realms/clinical"
    );
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .is_some_and(|scopes| scopes.len() > 1)
    );
}
