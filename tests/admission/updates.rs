//! Updates users make every day must stay possible: tags and deletionPolicy change, the operator
//! writes status, and an object stored under older, looser rules can still be edited elsewhere.

use serde_json::{Value, json};

use super::harness::{Cluster, documents, lines, repository};

fn example(file: &str) -> Value {
    documents(&repository().join("deploy/examples").join(file))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("deploy/examples/{file} is empty"))
}

/// Stores `object` as the API server would (defaults applied), then admits `change(object)` as
/// an update.
fn update(
    cluster: &Cluster,
    object: Value,
    change: impl FnOnce(&mut Value),
) -> Result<(), Vec<String>> {
    let mut stored = object;
    cluster
        .admit(&mut stored, None)
        .unwrap_or_else(|errors| panic!("the stored object is invalid: {:?}", lines(&errors)));
    let mut updated = stored.clone();
    change(&mut updated);
    cluster
        .admit(&mut updated, Some(&stored))
        .map_err(|errors| lines(&errors))
}

#[test]
fn tags_can_be_added_changed_and_removed() {
    let cluster = Cluster::from_committed_crds();
    let smart = example("datastore-smart-on-fhir.yaml");
    let result = update(&cluster, smart, |object| {
        let tags = object["spec"]["tags"]
            .as_object_mut()
            .expect("the example has tags");
        tags.remove("environment");
        tags.insert("team".to_owned(), json!("clinical-platform"));
        tags.insert("données".to_owned(), json!("patients synthétiques"));
    });
    assert_eq!(result, Ok(()));
}

#[test]
fn all_tags_can_be_removed_and_added_back() {
    let cluster = Cluster::from_committed_crds();
    let adopted = example("datastore-adopted.yaml");
    assert_eq!(
        update(&cluster, adopted.clone(), |object| {
            object["spec"].as_object_mut().expect("spec").remove("tags");
        }),
        Ok(())
    );
    let minimal = example("datastore-minimal.yaml");
    assert_eq!(
        update(&cluster, minimal, |object| object["spec"]["tags"] =
            json!({"team": "research"})),
        Ok(())
    );
}

#[test]
fn deletion_policy_can_change_both_ways() {
    let cluster = Cluster::from_committed_crds();
    let smart = example("datastore-smart-on-fhir.yaml");
    assert_eq!(
        update(&cluster, smart, |object| object["spec"]["deletionPolicy"] =
            json!("Retain")),
        Ok(())
    );
    let adopted = example("datastore-adopted.yaml");
    assert_eq!(
        update(
            &cluster,
            adopted,
            |object| object["spec"]["deletionPolicy"] = json!("Delete")
        ),
        Ok(())
    );
}

#[test]
fn status_and_metadata_changes_leave_an_immutable_job_spec_alone() {
    let cluster = Cluster::from_committed_crds();
    let import = example("import-job.yaml");
    let result = update(&cluster, import, |object| {
        object["metadata"]["labels"] = json!({"batch": "2026-11-24"});
        object["status"] =
            json!({"jobId": "4a7c2e9b1d8f4e3a9c6b5d2e1f0a8b7c", "jobStatus": "IN_PROGRESS"});
    });
    assert_eq!(result, Ok(()));
    let export = example("export-job.yaml");
    assert_eq!(update(&cluster, export, |_| {}), Ok(()));
}

#[test]
fn an_invalid_value_stored_under_older_rules_does_not_block_other_edits() {
    let cluster = Cluster::from_committed_crds();
    // As if stored before the aws: prefix rule existed: the API server ratchets unchanged parts.
    let mut stored = example("datastore-adopted.yaml");
    stored["spec"]["tags"] = json!({"aws:legacy": "yes"});
    cluster
        .admit(&mut stored, None)
        .expect_err("a new object with that tag is refused");
    let mut updated = stored.clone();
    updated["spec"]["deletionPolicy"] = json!("Delete");
    assert_eq!(
        cluster
            .admit(&mut updated, Some(&stored))
            .map_err(|errors| lines(&errors)),
        Ok(())
    );
    updated["spec"]["tags"] = json!({"aws:legacy": "yes", "aws:other": "no"});
    assert_eq!(
        cluster.admit(&mut updated, Some(&stored)).map_err(|errors| lines(&errors)),
        Err(vec![
            "spec.tags: Invalid value: tags keys may not start with aws:, which AWS reserves for its own tags: choose another key"
                .to_owned()
        ])
    );
}
