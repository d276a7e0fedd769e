//! kube-runtime, unmodified: watcher, reflector, and a Controller using the finalizer helper.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::support::{Cluster, PATIENCE, Widget, eventually, real_cluster, widget};

const FINALIZER: &str = "conformance.example.com/cleanup";

/// What the test controller saw being cleaned up.
struct Context {
    client: kube::Client,
    cleaned_up: Mutex<Vec<String>>,
}

async fn reconcile(
    object: Arc<Widget>,
    context: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
    let namespace = object.namespace().unwrap_or_default();
    let widgets: Api<Widget> = Api::namespaced(context.client.clone(), &namespace);
    finalizer(&widgets, FINALIZER, object, |event| async {
        match event {
            FinalizerEvent::Apply(object) => {
                let status = json!({
                    "apiVersion": "conformance.example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": object.name_any()},
                    "status": {
                        "phase": "Ready",
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                    },
                });
                widgets
                    .patch_status(&object.name_any(), &PatchParams::apply("conformance-controller").force(), &Patch::Apply(&status))
                    .await?;
                Ok(Action::await_change())
            }
            FinalizerEvent::Cleanup(object) => {
                context.cleaned_up.lock().unwrap().push(object.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn retry_soon(
    _: Arc<Widget>,
    _: &kube::runtime::finalizer::Error<kube::Error>,
    _: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn a_controller_with_the_finalizer_helper_reconciles_and_cleans_up() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let context = Arc::new(Context {
        client: cluster.client.clone(),
        cleaned_up: Mutex::new(Vec::new()),
    });
    let controller = tokio::spawn(
        Controller::new(widgets.clone(), watcher::Config::default())
            .run(reconcile, retry_soon, Arc::clone(&context))
            .for_each(|_| async {}),
    );
    widgets
        .create(&PostParams::default(), &widget("managed", 1))
        .await
        .unwrap();
    eventually(
        "the controller to add its finalizer and report Ready",
        PATIENCE,
        || {
            let widgets = widgets.clone();
            async move {
                let object = widgets.get("managed").await.ok()?;
                let ready = object.status.as_ref()?.phase.as_deref() == Some("Ready");
                (ready && object.finalizers().iter().any(|f| f == FINALIZER)).then_some(())
            }
        },
    )
    .await;

    widgets
        .delete("managed", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the controller to clean up and let the object go",
        PATIENCE,
        || {
            let widgets = widgets.clone();
            async move {
                widgets
                    .get_opt("managed")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        *context.cleaned_up.lock().unwrap(),
        vec!["managed".to_string()]
    );
    controller.abort();
    cluster.finish().await;
}

#[tokio::test]
async fn a_reflector_over_a_streaming_list_mirrors_the_objects() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("existing", 1))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<Widget>();
    let stream = reflector::reflector(
        writer,
        watcher(
            widgets.clone(),
            watcher::Config::default().streaming_lists(),
        ),
    );
    let driver = tokio::spawn(stream.for_each(|_| async {}));
    tokio::time::timeout(PATIENCE, reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    let names = |reader: &reflector::Store<Widget>| {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|object| object.name_any())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&reader), vec!["existing"]);
    widgets
        .create(&PostParams::default(), &widget("added", 1))
        .await
        .unwrap();
    widgets
        .delete("existing", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the store to follow", PATIENCE, || {
        let current = names(&reader);
        async move { (current == vec!["added".to_string()]).then_some(()) }
    })
    .await;
    driver.abort();
    cluster.finish().await;
}

#[tokio::test]
async fn a_watcher_recovers_from_dropped_watches_and_expired_history() {
    if real_cluster() {
        // Dropping watches and compacting history are hooks of the in-memory server.
        return;
    }
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = Arc::clone(&seen);
    let driver = tokio::spawn(
        watcher(widgets.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .for_each(move |object| {
                if let Ok(object) = object {
                    recorder.lock().unwrap().push(object.name_any());
                }
                async {}
            }),
    );
    let wait_for = |name: &'static str| {
        let seen = Arc::clone(&seen);
        async move {
            eventually(name, PATIENCE, || {
                let found = seen.lock().unwrap().iter().any(|seen| seen == name);
                async move { found.then_some(()) }
            })
            .await
        }
    };
    widgets
        .create(&PostParams::default(), &widget("first", 1))
        .await
        .unwrap();
    wait_for("first").await;
    cluster.server().drop_watches();
    widgets
        .create(&PostParams::default(), &widget("after-drop", 1))
        .await
        .unwrap();
    wait_for("after-drop").await;
    cluster.server().compact_history();
    cluster.server().drop_watches();
    widgets
        .create(&PostParams::default(), &widget("after-compaction", 1))
        .await
        .unwrap();
    wait_for("after-compaction").await;
    driver.abort();
    cluster.finish().await;
}

#[tokio::test]
async fn a_metadata_watcher_and_get_metadata_see_only_metadata() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut labelled = widget("labelled", 7);
    labelled.metadata.labels = Some([("tier".to_string(), "front".to_string())].into());
    widgets
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    let metadata = widgets.get_metadata("labelled").await.unwrap();
    assert_eq!(
        metadata.labels().get("tier").map(String::as_str),
        Some("front")
    );
    let listed = widgets.list_metadata(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorder = Arc::clone(&seen);
    let driver = tokio::spawn(
        watcher(
            Api::<kube::core::PartialObjectMeta<Widget>>::namespaced(
                cluster.client.clone(),
                &cluster.namespace,
            ),
            watcher::Config::default(),
        )
        .applied_objects()
        .for_each(move |object| {
            if let Ok(object) = object {
                recorder.lock().unwrap().push(object.name_any());
            }
            async {}
        }),
    );
    widgets
        .create(&PostParams::default(), &widget("later", 1))
        .await
        .unwrap();
    eventually("the metadata watcher to see both objects", PATIENCE, || {
        let mut names = seen.lock().unwrap().clone();
        names.sort();
        names.dedup();
        async move { (names == vec!["labelled".to_string(), "later".to_string()]).then_some(()) }
    })
    .await;
    driver.abort();
    cluster.finish().await;
}
