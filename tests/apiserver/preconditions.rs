//! Status writes that carry the resourceVersion they were computed from, as a controller sends
//! them so that a stale copy cannot overwrite a newer status. What a real API server answers:
//! a merge or apply patch whose result carries a `metadata.resourceVersion` other than the stored
//! one fails the update's optimistic-concurrency check (409 Conflict, "the object has been
//! modified"); a JSON Patch `test` operation that fails is 422 before any update is tried; a JSON
//! Patch that replaces `metadata.resourceVersion` with a stale value is a 409 like a merge patch.

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::support::Cluster;
use super::support::{Widget, api_error, widget};

/// A widget whose resourceVersion has moved on since `stale` was read: (stale, current).
async fn moved_on(widgets: &Api<Widget>, name: &str) -> (String, String) {
    let created = widgets
        .create(&PostParams::default(), &widget(name, 1))
        .await
        .unwrap();
    let stale = created.metadata.resource_version.clone().unwrap();
    let newer = widgets
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Creating"}})),
        )
        .await
        .unwrap();
    let current = newer.metadata.resource_version.unwrap();
    assert_ne!(stale, current);
    (stale, current)
}

async fn phase(widgets: &Api<Widget>, name: &str) -> Option<String> {
    widgets.get_status(name).await.unwrap().status?.phase
}

#[tokio::test]
async fn a_merge_patch_of_status_with_a_stale_resource_version_conflicts() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let (stale, current) = moved_on(&widgets, "merged").await;
    let status = |version: &str| {
        Patch::Merge(json!({
            "metadata": {"resourceVersion": version},
            "status": {"phase": "Ready"},
        }))
    };

    let conflict = api_error(
        widgets
            .patch_status("merged", &PatchParams::default(), &status(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );
    assert_eq!(phase(&widgets, "merged").await.as_deref(), Some("Creating"));

    let written = widgets
        .patch_status("merged", &PatchParams::default(), &status(&current))
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_ne!(written.metadata.resource_version, Some(current));
    cluster.finish().await;
}

#[tokio::test]
async fn a_json_patch_of_status_tests_or_replaces_the_resource_version() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let (stale, current) = moved_on(&widgets, "tested").await;
    let json_patch = |operations: serde_json::Value| {
        let operations: json_patch::Patch = serde_json::from_value(operations).unwrap();
        Patch::<()>::Json(operations)
    };
    let guarded = |op: &str, version: &str| {
        json_patch(json!([
            {"op": op, "path": "/metadata/resourceVersion", "value": version},
            {"op": "replace", "path": "/status/phase", "value": "Ready"},
        ]))
    };

    // A failed `test` is the patch failing to apply: 422, nothing written.
    let failed_test = api_error(
        widgets
            .patch_status("tested", &PatchParams::default(), &guarded("test", &stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (failed_test.code, failed_test.reason.as_str()),
        (422, "Invalid"),
        "{}",
        failed_test.message
    );
    assert_eq!(phase(&widgets, "tested").await.as_deref(), Some("Creating"));

    // Replacing the resourceVersion with a stale one makes it a precondition: 409.
    let conflict = api_error(
        widgets
            .patch_status(
                "tested",
                &PatchParams::default(),
                &guarded("replace", &stale),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(phase(&widgets, "tested").await.as_deref(), Some("Creating"));

    let written = widgets
        .patch_status(
            "tested",
            &PatchParams::default(),
            &guarded("test", &current),
        )
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Ready"));
    cluster.finish().await;
}

#[tokio::test]
async fn an_apply_of_status_with_a_stale_resource_version_conflicts_even_when_forced() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let (stale, current) = moved_on(&widgets, "applied").await;
    let status = |version: &str| {
        Patch::Apply(json!({
            "apiVersion": "conformance.example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "applied", "resourceVersion": version},
            "status": {"phase": "Ready"},
        }))
    };
    // `force` settles field-ownership conflicts only; the resourceVersion still guards the write.
    let params = PatchParams::apply("status-writer").force();

    let conflict = api_error(
        widgets
            .patch_status("applied", &params, &status(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );
    assert_eq!(
        phase(&widgets, "applied").await.as_deref(),
        Some("Creating")
    );

    let written = widgets
        .patch_status("applied", &params, &status(&current))
        .await
        .unwrap();
    assert_eq!(written.status.unwrap().phase.as_deref(), Some("Ready"));
    cluster.finish().await;
}
