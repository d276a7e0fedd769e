//! One watch shared by two controllers, through kube-runtime's shared reflector (kube feature
//! `unstable-runtime-subscribe`, part of `unstable-runtime`): `reflector::store_shared` gives a
//! store whose writer hands out subscriptions, `reflect_shared` feeds it from one watcher, and
//! `Controller::for_shared_stream` / `watches_shared_stream` consume the subscriptions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::support::{Cluster, Gizmo, GizmoSpec, PATIENCE, Widget, eventually, widget};

/// The tag naming the gizmo a widget belongs to (as a job names its datastore).
const GIZMO_TAG: &str = "gizmo";

/// What each controller saw: widget name → sizes reconciled, gizmo name → widget sizes it read
/// from the shared store.
#[derive(Default)]
struct Seen {
    widgets: Mutex<BTreeMap<String, Vec<i64>>>,
    gizmos: Mutex<BTreeMap<String, Vec<i64>>>,
}

struct Context {
    seen: Seen,
    widgets: Store<Widget>,
}

#[derive(Debug, thiserror::Error)]
#[error("never fails")]
struct Never;

async fn reconcile_widget(object: Arc<Widget>, context: Arc<Context>) -> Result<Action, Never> {
    let mut seen = context.seen.widgets.lock().unwrap();
    seen.entry(object.name_any())
        .or_default()
        .push(object.spec.size);
    Ok(Action::await_change())
}

async fn reconcile_gizmo(object: Arc<Gizmo>, context: Arc<Context>) -> Result<Action, Never> {
    let sizes: Vec<i64> = context
        .widgets
        .state()
        .iter()
        .filter(|widget| {
            widget
                .spec
                .tags
                .as_ref()
                .and_then(|tags| tags.get(GIZMO_TAG))
                == Some(&object.name_any())
        })
        .map(|widget| widget.spec.size)
        .collect();
    let mut seen = context.seen.gizmos.lock().unwrap();
    seen.entry(object.name_any()).or_default().extend(sizes);
    Ok(Action::await_change())
}

fn retry<K>(_: Arc<K>, _: &Never, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn one_shared_widget_watch_feeds_two_controllers() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let gizmos: Api<Gizmo> = Api::all(cluster.client.clone());
    let gizmo_name = format!("{}-owner", cluster.namespace);
    gizmos
        .create(
            &PostParams::default(),
            &Gizmo::new(&gizmo_name, GizmoSpec { value: "a".into() }),
        )
        .await
        .unwrap();

    let (reader, writer) = reflector::store_shared::<Widget>(64);
    let for_widgets = writer
        .subscribe()
        .expect("a shared writer hands out subscriptions");
    let for_gizmos = writer
        .subscribe()
        .expect("a shared writer hands out subscriptions");
    // The one watch: it must be polled for either controller to hear anything, and a
    // subscriber that stops reading holds it back once the buffer is full.
    let shared_watch = tokio::spawn(
        watcher(widgets.clone(), watcher::Config::default())
            .default_backoff()
            .reflect_shared(writer)
            .for_each(|_| async {}),
    );
    let context = Arc::new(Context {
        seen: Seen::default(),
        widgets: reader.clone(),
    });
    let widget_controller = tokio::spawn(
        Controller::for_shared_stream(for_widgets, reader)
            .run(reconcile_widget, retry, Arc::clone(&context))
            .for_each(|_| async {}),
    );
    let only_ours = watcher::Config::default().fields(&format!("metadata.name={gizmo_name}"));
    let gizmo_controller = tokio::spawn(
        Controller::new(gizmos.clone(), only_ours)
            .watches_shared_stream(for_gizmos, |widget: Arc<Widget>| {
                widget
                    .spec
                    .tags
                    .as_ref()
                    .and_then(|tags| tags.get(GIZMO_TAG).cloned())
                    .map(|name| ObjectRef::<Gizmo>::new(&name))
            })
            .run(reconcile_gizmo, retry, Arc::clone(&context))
            .for_each(|_| async {}),
    );

    let mut tagged = widget("tagged", 1);
    tagged.spec.tags = Some(BTreeMap::from([(GIZMO_TAG.into(), gizmo_name.clone())]));
    widgets
        .create(&PostParams::default(), &tagged)
        .await
        .unwrap();
    let saw = |size: i64| {
        let context = Arc::clone(&context);
        let gizmo_name = gizmo_name.clone();
        move || {
            let context = Arc::clone(&context);
            let gizmo_name = gizmo_name.clone();
            async move {
                let widget_seen = context
                    .seen
                    .widgets
                    .lock()
                    .unwrap()
                    .get("tagged")
                    .is_some_and(|sizes| sizes.contains(&size));
                let gizmo_seen = context
                    .seen
                    .gizmos
                    .lock()
                    .unwrap()
                    .get(&gizmo_name)
                    .is_some_and(|sizes| sizes.contains(&size));
                (widget_seen && gizmo_seen).then_some(())
            }
        }
    };
    eventually("both controllers to see the new widget", PATIENCE, saw(1)).await;

    widgets
        .patch(
            "tagged",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    eventually("both controllers to see the resize", PATIENCE, saw(2)).await;

    for task in [shared_watch, widget_controller, gizmo_controller] {
        task.abort();
    }
    let _ = gizmos.delete(&gizmo_name, &DeleteParams::default()).await;
    cluster.finish().await;
}
