//! Watches: events from a resourceVersion, selectors, streaming lists, timeouts and 410 Gone.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

use super::support::{Cluster, PATIENCE, Widget, real_cluster, widget};

/// The next event, failing the test if none comes in time.
async fn next_event<S>(stream: &mut S) -> WatchEvent<Widget>
where
    S: Stream<Item = kube::Result<WatchEvent<Widget>>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("a watch event within the patience")
            .expect("the watch is still open")
            .expect("the watch event decodes");
        // Periodic bookmarks are allowed between the events a test looks for.
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

fn describe(event: &WatchEvent<Widget>) -> String {
    match event {
        WatchEvent::Added(object) => format!("ADDED {}", object.name_any()),
        WatchEvent::Modified(object) => format!("MODIFIED {}", object.name_any()),
        WatchEvent::Deleted(object) => format!("DELETED {}", object.name_any()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(status) => format!("ERROR {}", status.code),
    }
}

#[tokio::test]
async fn a_watch_from_a_resource_version_streams_every_later_change() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let before = widgets
        .create(&PostParams::default(), &widget("before", 1))
        .await
        .unwrap();
    let from = before.resource_version().unwrap();
    widgets
        .create(&PostParams::default(), &widget("later", 1))
        .await
        .unwrap();
    widgets
        .patch(
            "later",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    widgets
        .delete("later", &DeleteParams::default())
        .await
        .unwrap();

    let mut stream = widgets
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(seen, vec!["ADDED later", "MODIFIED later", "DELETED later"]);

    // And it keeps following.
    widgets
        .create(&PostParams::default(), &widget("live", 1))
        .await
        .unwrap();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED live");
    cluster.finish().await;
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let start = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default().labels("tier=front");
    let mut stream = widgets.watch(&params, &start).await.unwrap().boxed();
    widgets
        .create(&PostParams::default(), &widget("unlabelled", 1))
        .await
        .unwrap();
    let mut labelled = widget("labelled", 1);
    labelled.metadata.labels = Some(BTreeMap::from([("tier".to_string(), "front".to_string())]));
    widgets
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED labelled");
    widgets
        .patch(
            "labelled",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "back"}}})),
        )
        .await
        .unwrap();
    assert_eq!(describe(&next_event(&mut stream).await), "DELETED labelled");
    widgets
        .patch(
            "unlabelled",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED unlabelled");
    cluster.finish().await;
}

#[tokio::test]
async fn a_streaming_list_ends_its_initial_events_with_a_bookmark() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    for name in ["one", "two"] {
        widgets
            .create(&PostParams::default(), &widget(name, 1))
            .await
            .unwrap();
    }
    let mut stream = widgets
        .watch(&WatchParams::streaming_lists(), "")
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    let bookmark = loop {
        let event = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            WatchEvent::Added(object) => names.push(object.name_any()),
            WatchEvent::Bookmark(bookmark) => break bookmark,
            other => panic!("unexpected event {}", describe(&other)),
        }
    };
    names.sort();
    assert_eq!(names, vec!["one", "two"]);
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    assert!(!bookmark.metadata.resource_version.is_empty());
    cluster.finish().await;
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let start = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = widgets
        .watch(&WatchParams::default().timeout(1), &start)
        .await
        .unwrap()
        .boxed();
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = stream.next().await {
            assert!(
                matches!(event, Ok(WatchEvent::Bookmark(_))),
                "no changes were made"
            );
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server ends the watch once timeoutSeconds pass"
    );
    cluster.finish().await;
}

#[tokio::test]
async fn a_watch_from_compacted_history_gets_410_gone() {
    if real_cluster() {
        // A real cluster's compaction cannot be triggered from a test.
        return;
    }
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let old = widgets
        .create(&PostParams::default(), &widget("old", 1))
        .await
        .unwrap();
    widgets
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    cluster.server().compact_history();
    let mut stream = widgets
        .watch(&WatchParams::default(), &old.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected 410 Gone, got {}", describe(&other)),
    }
    cluster.finish().await;
}
