//! Watches: newline-delimited JSON events streamed from a resourceVersion, with bookmarks,
//! streaming lists, timeouts, and 410 Gone for history that is no longer kept.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::conversion;
use super::resources::ResourceType;
use super::status::ApiError;
use super::store::{Change, EventKind, Selection, Subscription};
use super::table;

/// How long a watch with bookmarks allowed goes without one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// What a watch was asked for, beyond the selection.
pub struct WatchRequest {
    /// The resource watched, for the apiVersion of the objects sent.
    pub resource: ResourceType,
    /// Which objects.
    pub selection: Selection,
    /// Whether BOOKMARK events may be sent.
    pub bookmarks: bool,
    /// Whether this is a streaming list, ended by the initial-events-end bookmark.
    pub initial_events_end: bool,
    /// When the server ends the watch.
    pub timeout: Option<Duration>,
    /// `Some(includeObject)` when the client asked for Tables (`kubectl get --watch`).
    pub table: Option<String>,
    /// Whether the client asked for `PartialObjectMetadata` (kube-runtime's metadata watcher).
    pub metadata_only: bool,
}

/// A sender that hands each line on to `sender` `lag` after it was sent (a fault hook: a watch
/// that falls behind). Lines keep their order; a zero lag is `sender` itself.
pub fn lagging(sender: mpsc::Sender<Bytes>, lag: Duration) -> mpsc::Sender<Bytes> {
    if lag.is_zero() {
        return sender;
    }
    let (input, mut lines) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        let mut due = std::collections::VecDeque::new();
        loop {
            let next = due.front().map(|(at, _)| *at);
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => due.push_back((tokio::time::Instant::now() + lag, line)),
                    None if due.is_empty() => return,
                    // The watch ended: what it sent still arrives, late.
                    None => {
                        for (at, line) in due.drain(..) {
                            tokio::time::sleep_until(at).await;
                            if sender.send(line).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                },
                () = async { tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)).await }, if next.is_some() => {
                    if let Some((_, line)) = due.pop_front()
                        && sender.send(line).await.is_err()
                    {
                        return;
                    }
                }
                () = sender.closed() => return,
            }
        }
    });
    input
}

/// The watch event for a change as this watcher sees it, or `None` when it does not concern it.
fn event_for(request: &WatchRequest, change: &Change) -> Option<Value> {
    if change.storage_key != request.resource.storage_key() {
        return None;
    }
    let now_matches = request.selection.matches(&change.object);
    let before_matches = change
        .previous
        .as_ref()
        .is_some_and(|previous| request.selection.matches(previous));
    let kind = match change.kind {
        EventKind::Added if now_matches => "ADDED",
        EventKind::Deleted if now_matches || before_matches => "DELETED",
        EventKind::Modified if change.previous.is_none() && now_matches => "MODIFIED",
        EventKind::Modified if before_matches && now_matches => "MODIFIED",
        EventKind::Modified if before_matches => "DELETED",
        EventKind::Modified if now_matches => "ADDED",
        _ => return None,
    };
    let mut object = conversion::present(&request.resource, &change.object);
    if request.metadata_only {
        object = conversion::partial(&object);
    } else if let Some(include) = &request.table {
        let metadata = json!({"resourceVersion": change.revision.to_string()});
        object = table::to_table(&request.resource, &[object], include, metadata);
    }
    Some(json!({"type": kind, "object": object}))
}

fn bookmark(resource: &ResourceType, revision: u64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({
        "type": "BOOKMARK",
        "object": {"apiVersion": resource.api_version(), "kind": resource.kind, "metadata": metadata},
    })
}

/// The ERROR event a real API server streams when the requested history is gone.
pub fn error_event(error: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": error.to_status()}))
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Streams the watch into `sender` until the client goes, the timeout passes, the watch is
/// dropped by a fault hook, or the watcher falls too far behind.
pub async fn run(
    request: WatchRequest,
    subscription: Subscription,
    sender: mpsc::Sender<Bytes>,
    mut drops: tokio::sync::watch::Receiver<u64>,
) {
    let Subscription {
        initial,
        mut receiver,
        revision,
    } = subscription;
    let mut last_revision = revision;
    for change in &initial {
        if let Some(event) = event_for(&request, change)
            && sender.send(line(&event)).await.is_err()
        {
            return;
        }
    }
    if request.initial_events_end {
        let event = bookmark(&request.resource, revision, true);
        if sender.send(line(&event)).await.is_err() {
            return;
        }
    }
    let deadline = request
        .timeout
        .map(|timeout| tokio::time::Instant::now() + timeout);
    let timeout = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut bookmarks = tokio::time::interval(BOOKMARK_INTERVAL);
    bookmarks.tick().await;
    drops.borrow_and_update();
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(change) => {
                    last_revision = last_revision.max(change.revision);
                    if let Some(event) = event_for(&request, &change)
                        && sender.send(line(&event)).await.is_err() {
                            return;
                        }
                }
                // Too slow to keep up, or the server is gone: end the watch, the client re-watches
                // from its last resourceVersion.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            },
            _ = bookmarks.tick(), if request.bookmarks => {
                let event = bookmark(&request.resource, last_revision, false);
                if sender.send(line(&event)).await.is_err() {
                    return;
                }
            }
            () = &mut timeout => return,
            _ = drops.changed() => return,
            () = sender.closed() => return,
        }
    }
}
