//! Adopting a datastore made outside the operator (by CloudFormation, Terraform, the console):
//! tags the operator did not set stay, `aws:` tags are never touched, the object stays Ready while
//! its tags sync, and deleting the object never deletes the datastore unless the spec says so.
//! Re-applying a manifest whose datastore was retained adopts nothing and creates nothing behind
//! the user's back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use healthlake_operator::api::{DeletionPolicy, FHIRDatastore};
use healthlake_operator::emulator::{DatastoreSeed, Operation};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use super::datastore::{create_ready, datastore, ready};
use super::harness::{Rig, condition, eventually, wait_for, wait_gone};

/// The emulator's fast profile deletes a datastore in five seconds of its clock.
const DELETION: Duration = Duration::from_secs(5);

/// Tags CloudFormation puts on every resource of a stack: AWS refuses any change to them.
fn cloudformation_tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "aws:cloudformation:stack-name".to_owned(),
            "ehr-prod".to_owned(),
        ),
        (
            "aws:cloudformation:logical-id".to_owned(),
            "PatientDatastore".to_owned(),
        ),
    ])
}

/// Tags another tool set: Terraform's and a cost-allocation policy's.
fn foreign_tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cost-center".to_owned(), "4711".to_owned()),
        ("managed-by".to_owned(), "terraform".to_owned()),
    ])
}

/// Seeds an ACTIVE datastore named `name` carrying the CloudFormation and foreign tags, as if a
/// stack had made it, and answers its id.
fn seed_stack_datastore(rig: &Rig, name: &str) -> String {
    let seed = cloudformation_tags()
        .into_iter()
        .chain(foreign_tags())
        .fold(DatastoreSeed::new(name), |seed, (key, value)| {
            seed.tag(key, value)
        });
    rig.emulator.seed_datastore(seed).expect("datastore seeded")
}

fn aws_tags(rig: &Rig, id: &str) -> BTreeMap<String, String> {
    rig.emulator.state().datastores[id].tags.clone()
}

fn aws_status(rig: &Rig, id: &str) -> Option<String> {
    rig.emulator
        .state()
        .datastores
        .get(id)
        .map(|record| record.status.aws_name().to_owned())
}

fn id_of(object: &FHIRDatastore) -> String {
    object
        .status
        .as_ref()
        .and_then(|status| status.datastore_id.clone())
        .expect("datastore id in status")
}

fn deletion_policy(object: &FHIRDatastore) -> Option<DeletionPolicy> {
    object
        .status
        .as_ref()
        .and_then(|status| status.deletion_policy)
}

/// Asserts that the CloudFormation and foreign tags are on the datastore exactly as seeded.
fn assert_untouched(rig: &Rig, id: &str, step: &str) {
    let tags = aws_tags(rig, id);
    for (key, value) in cloudformation_tags().into_iter().chain(foreign_tags()) {
        assert_eq!(
            tags.get(&key),
            Some(&value),
            "{step}: {key} is still {value}; tags in AWS: {tags:?}"
        );
    }
}

/// One status the watch delivered: Ready's status, Reconciling's status and reason.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    ready: String,
    reconciling: String,
    reason: String,
}

/// Records every status of one object that a Kubernetes watch delivers, as a user running
/// `kubectl get -w` sees them.
struct StatusLog {
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl StatusLog {
    fn start(api: Api<FHIRDatastore>, name: &str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).applied_objects();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let Ok(object) = event else { continue };
                if object.name_any() != name {
                    continue;
                }
                let conditions = object
                    .status
                    .as_ref()
                    .map(|status| status.conditions.clone())
                    .unwrap_or_default();
                let (reconciling, reason) = condition(&conditions, "Reconciling");
                let entry = Seen {
                    ready: condition(&conditions, "Ready").0,
                    reconciling,
                    reason,
                };
                let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if log.last() != Some(&entry) {
                    log.push(entry);
                }
            }
        });
        StatusLog { seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the object is Ready for its current generation, with `tags` in status.
async fn ready_with_tags(
    api: &Api<FHIRDatastore>,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> FHIRDatastore {
    wait_for(api, name, "Ready with the tags in status", |object| {
        ready(object)
            && object
                .status
                .as_ref()
                .is_some_and(|status| status.observed_generation == object.metadata.generation)
            && object
                .status
                .as_ref()
                .and_then(|status| status.tags.as_ref())
                == Some(tags)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_cloudformation_datastore_keeps_foreign_and_aws_tags_and_stays_ready() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let id = seed_stack_datastore(&rig, "ehr-prod");
    let log = StatusLog::start(api.clone(), "ehr");

    let spec = format!("  datastoreId: {id}\n  tags:\n    team: clinical\n");
    api.create(&PostParams::default(), &datastore("ehr", &spec))
        .await
        .expect("admitted");
    let mut expected = cloudformation_tags();
    expected.extend(foreign_tags());
    expected.insert("team".to_owned(), "clinical".to_owned());
    let adopted = ready_with_tags(&api, "ehr", &expected).await;
    assert_eq!(id_of(&adopted), id);
    assert_eq!(aws_tags(&rig, &id), expected, "only team was added");
    assert_eq!(
        deletion_policy(&adopted),
        Some(DeletionPolicy::Retain),
        "an adopted datastore is retained unless the spec says Delete"
    );
    assert_eq!(
        adopted
            .status
            .as_ref()
            .and_then(|status| status.managed_tags.clone()),
        Some(vec!["team".to_owned()])
    );

    // A spec tag is added...
    let add = serde_json::json!({"spec": {"tags": {"project": "migration"}}});
    api.patch("ehr", &PatchParams::default(), &Patch::Merge(&add))
        .await
        .expect("tag added");
    expected.insert("project".to_owned(), "migration".to_owned());
    ready_with_tags(&api, "ehr", &expected).await;
    assert_eq!(aws_tags(&rig, &id), expected, "project reached AWS");
    assert_untouched(&rig, &id, "after adding a spec tag");

    // ...and removed again.
    let remove = serde_json::json!({"spec": {"tags": {"project": null}}});
    api.patch("ehr", &PatchParams::default(), &Patch::Merge(&remove))
        .await
        .expect("tag removed");
    expected.remove("project");
    let synced = ready_with_tags(&api, "ehr", &expected).await;
    assert_eq!(aws_tags(&rig, &id), expected, "project left AWS");
    assert_untouched(&rig, &id, "after removing the spec tag");
    assert_eq!(
        synced
            .status
            .as_ref()
            .and_then(|status| status.managed_tags.clone()),
        Some(vec!["team".to_owned()])
    );

    // At no step did the operator send a change to a tag it does not own.
    let ours = ["team", "project"];
    for call in rig.emulator.calls_of(Operation::TagResource) {
        let keys: Vec<&str> = call.parameters["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag["Key"].as_str())
            .collect();
        assert!(
            keys.iter().all(|key| ours.contains(key)),
            "TagResource sent only spec tags: {keys:?}"
        );
    }
    let untagged: Vec<Vec<String>> = rig
        .emulator
        .calls_of(Operation::UntagResource)
        .iter()
        .map(|call| {
            call.parameters["TagKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        })
        .collect();
    assert_eq!(
        untagged,
        vec![vec!["project".to_owned()]],
        "only the removed spec tag was untagged"
    );
    assert!(
        rig.emulator.calls().iter().all(|call| call.succeeded()),
        "AWS refused nothing the operator sent"
    );

    // The watch saw the tag syncs, and Ready never went False once it was True.
    let seen = log.seen();
    let first_ready = seen
        .iter()
        .position(|entry| entry.ready == "True")
        .expect("the watch saw Ready");
    assert!(
        seen[first_ready..]
            .iter()
            .all(|entry| entry.ready == "True"),
        "Ready stayed True after it first was: {seen:#?}"
    );
    assert!(
        seen[first_ready..]
            .iter()
            .any(|entry| entry.reconciling == "True" && entry.reason == "SyncingTags"),
        "the watch saw the tag sync as Reconciling: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_adopted_object_without_a_policy_leaves_the_datastore() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let id = seed_stack_datastore(&rig, "ehr-prod");
    api.create(
        &PostParams::default(),
        &datastore("ehr", &format!("  datastoreId: {id}\n")),
    )
    .await
    .expect("admitted");
    let adopted = wait_for(&api, "ehr", "Ready", ready).await;
    assert_eq!(deletion_policy(&adopted), Some(DeletionPolicy::Retain));

    api.delete("ehr", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&api, "ehr").await;
    // Long past any deletion the emulator could have carried out.
    rig.advance(DELETION * 10);
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("ACTIVE"));
    assert_untouched(&rig, &id, "after the object was deleted");
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_datastore_is_deleted_only_when_the_spec_says_delete() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let id = seed_stack_datastore(&rig, "ehr-scratch");
    let spec = format!("  datastoreId: {id}\n  deletionPolicy: Delete\n");
    api.create(&PostParams::default(), &datastore("scratch", &spec))
        .await
        .expect("admitted");
    let adopted = wait_for(&api, "scratch", "Ready", ready).await;
    assert_eq!(deletion_policy(&adopted), Some(DeletionPolicy::Delete));

    api.delete("scratch", &DeleteParams::default())
        .await
        .expect("delete accepted");
    eventually("AWS deletes the datastore", || async {
        aws_status(&rig, &id).as_deref() == Some("DELETING")
    })
    .await;
    let deleting = wait_for(&api, "scratch", "deleting in AWS", |object| {
        object
            .status
            .as_ref()
            .and_then(|status| status.datastore_status.as_ref())
            .is_some_and(|status| status.to_string() == "DELETING")
    })
    .await;
    assert!(
        !deleting.finalizers().is_empty(),
        "the finalizer stays while AWS deletes"
    );

    rig.advance(DELETION);
    wait_gone(&api, "scratch").await;
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("DELETED"));
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapplying_a_manifest_after_retain_stalls_instead_of_creating_a_second_datastore() {
    let rig = Rig::start().await;
    let api = rig.api::<FHIRDatastore>();
    let manifest = "  deletionPolicy: Retain\n  tags:\n    team: clinical\n";
    let first = create_ready(&rig, "ehr-main", manifest).await;
    let id = id_of(&first);
    api.delete("ehr-main", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&api, "ehr-main").await;
    assert_eq!(aws_status(&rig, &id).as_deref(), Some("ACTIVE"));

    // `kubectl apply -f ehr-main.yaml` again.
    api.create(&PostParams::default(), &datastore("ehr-main", manifest))
        .await
        .expect("admitted");
    let stalled = wait_for(&api, "ehr-main", "Stalled", |object| {
        object.status.as_ref().is_some_and(|status| {
            condition(&status.conditions, "Stalled")
                == ("True".to_owned(), "RetainedDatastoreExists".to_owned())
        })
    })
    .await;
    let stall = stalled
        .status
        .as_ref()
        .and_then(|status| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Stalled")
                .cloned()
        })
        .expect("stalled condition");
    assert!(
        stall.message.contains(&id) && stall.message.contains("spec.datastoreId"),
        "the message names the retained datastore and how to adopt it: {}",
        stall.message
    );
    assert!(
        stalled
            .status
            .as_ref()
            .is_some_and(|status| status.datastore_id.is_none()),
        "the object claims no datastore"
    );
    // However long it waits, and through its slow retries, nothing is created.
    rig.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = rig.emulator.state();
    assert_eq!(
        state.datastores.len(),
        1,
        "one datastore: {:?}",
        state.datastores.keys()
    );
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);

    // Following the advice: the id cannot be added to the object...
    let refused = api
        .patch(
            "ehr-main",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"datastoreId": id}})),
        )
        .await
        .expect_err("datastoreId cannot be added");
    let kube::Error::Api(status) = refused else {
        panic!("expected an API error, got {refused:?}")
    };
    assert_eq!(status.code, 422, "{}", status.message);
    // ...so the object is re-created with it, and adopts the retained datastore.
    api.delete("ehr-main", &DeleteParams::default())
        .await
        .expect("delete accepted");
    wait_gone(&api, "ehr-main").await;
    let adopting =
        format!("  datastoreId: {id}\n  deletionPolicy: Retain\n  tags:\n    team: clinical\n");
    api.create(&PostParams::default(), &datastore("ehr-main", &adopting))
        .await
        .expect("admitted");
    let adopted = wait_for(&api, "ehr-main", "Ready", ready).await;
    assert_eq!(id_of(&adopted), id);
    assert_eq!(deletion_policy(&adopted), Some(DeletionPolicy::Retain));
    assert_eq!(rig.emulator.state().datastores.len(), 1);
    assert_eq!(rig.calls(Operation::CreateFhirDatastore), 1);
    assert_eq!(rig.calls(Operation::DeleteFhirDatastore), 0);
}
