//! JSON merge patch, JSON Patch, strategic merge (refused on custom resources), and server-side
//! apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::support::{Cluster, Widget, WidgetSpec, api_error, widget};

#[tokio::test]
async fn merge_and_json_patches_edit_the_object() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut object = widget("patched", 1);
    object.spec.tags = Some(BTreeMap::from([
        ("keep".into(), "1".into()),
        ("drop".into(), "2".into()),
    ]));
    widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();

    let merged = widgets
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2, "tags": {"drop": null}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.size, 2);
    assert_eq!(
        merged.spec.tags,
        Some(BTreeMap::from([("keep".into(), "1".into())]))
    );

    let operations: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/size", "value": 2},
        {"op": "replace", "path": "/spec/size", "value": 3},
        {"op": "add", "path": "/spec/tags/added", "value": "yes"},
    ]))
    .unwrap();
    let json_patched = widgets
        .patch(
            "patched",
            &PatchParams::default(),
            &Patch::<()>::Json(operations),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.spec.size, 3);
    assert_eq!(
        json_patched
            .spec
            .tags
            .unwrap()
            .get("added")
            .map(String::as_str),
        Some("yes")
    );

    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/size", "value": 99},
        {"op": "replace", "path": "/spec/size", "value": 4},
    ]))
    .unwrap();
    let refused = api_error(
        widgets
            .patch(
                "patched",
                &PatchParams::default(),
                &Patch::<()>::Json(failing),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 422);
    assert_eq!(
        widgets.get("patched").await.unwrap().spec.size,
        3,
        "a failed test operation changes nothing"
    );

    cluster.finish().await;
}

#[tokio::test]
async fn strategic_merge_is_refused_on_custom_resources_and_accepted_on_built_in_kinds() {
    // A real API server offers custom resources JSON, merge and apply patches only (they have no
    // Go types to carry merge strategies): 415 UnsupportedMediaType, before the object is read.
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("strategic", 1))
        .await
        .unwrap();
    for name in ["strategic", "absent"] {
        let refused = api_error(
            widgets
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"spec": {"size": 4}})),
                )
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (refused.code, refused.reason.as_str()),
            (415, "UnsupportedMediaType"),
            "{name}: {}",
            refused.message
        );
        assert!(
            refused.message.contains("application/merge-patch+json")
                && !refused
                    .message
                    .contains("application/strategic-merge-patch+json"),
            "{}",
            refused.message
        );
    }
    let on_status = api_error(
        widgets
            .patch_status(
                "strategic",
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": {"phase": "Ready"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(on_status.code, 415, "{}", on_status.message);
    assert_eq!(widgets.get("strategic").await.unwrap().spec.size, 1);

    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let labelled = namespaces
        .patch(
            &cluster.namespace,
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"team": "clinical-data"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("clinical-data")
    );
    cluster.finish().await;
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_guards_other_managers_fields() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let apply = |manager: &str| PatchParams::apply(manager);
    let config = |size: i64, tags: &[(&str, &str)]| {
        let mut object = Widget::new(
            "applied",
            WidgetSpec {
                size,
                ..WidgetSpec::default()
            },
        );
        if !tags.is_empty() {
            object.spec.tags = Some(
                tags.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        object
    };
    let created = widgets
        .patch(
            "applied",
            &apply("alice"),
            &Patch::Apply(config(1, &[("owner", "alice")])),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.size, 1);
    assert_eq!(created.metadata.generation, Some(1));
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert_eq!(managers, vec!["alice".to_string()]);

    // Bob sets a field of his own: merged, alice's fields stay.
    let bob = json!({"apiVersion": "conformance.example.com/v1", "kind": "Widget", "metadata": {"name": "applied"}, "spec": {"size": 1, "tags": {"team": "bob"}}});
    let merged = widgets
        .patch("applied", &apply("bob"), &Patch::Apply(&bob))
        .await
        .unwrap();
    let tags = merged.spec.tags.clone().unwrap();
    assert_eq!(tags.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(tags.get("team").map(String::as_str), Some("bob"));

    // Bob changing alice's size conflicts, unless he forces it.
    let takeover = json!({"apiVersion": "conformance.example.com/v1", "kind": "Widget", "metadata": {"name": "applied"}, "spec": {"size": 9}});
    let conflict = api_error(
        widgets
            .patch("applied", &apply("bob"), &Patch::Apply(&takeover))
            .await
            .unwrap_err(),
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains("alice"), "{}", conflict.message);
    let forced = widgets
        .patch("applied", &apply("bob").force(), &Patch::Apply(&takeover))
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 9);
    assert_eq!(forced.metadata.generation, Some(3));

    // Alice stops mentioning her tag: it goes; bob's tag, which he no longer applies either, goes too.
    let trimmed = widgets
        .patch(
            "applied",
            &apply("alice").force(),
            &Patch::Apply(config(9, &[])),
        )
        .await
        .unwrap();
    assert_eq!(trimmed.spec.tags.unwrap_or_default().get("owner"), None);

    // A manager is required.
    let nameless = api_error(
        widgets
            .patch(
                "applied",
                &PatchParams::default(),
                &Patch::Apply(config(9, &[])),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(nameless.code, 422);
    cluster.finish().await;
}

#[tokio::test]
async fn apply_to_the_status_subresource_sets_status_only() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("reported", 1))
        .await
        .unwrap();
    let status = json!({
        "apiVersion": "conformance.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "reported"},
        "spec": {"size": 80},
        "status": {"phase": "Ready"},
    });
    let applied = widgets
        .patch_status(
            "reported",
            &PatchParams::apply("controller").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(applied.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(applied.spec.size, 1);
    cluster.finish().await;
}

#[tokio::test]
async fn a_field_removed_by_an_update_is_free_for_another_applier() {
    // kube-lease-manager releases a Lease with a patch and the next replica takes it by apply.
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let holder = |manager: &str| {
        json!({
            "apiVersion": "conformance.example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "lock"},
            "spec": {"size": 1, "tags": {"holder": manager}},
        })
    };
    widgets
        .patch(
            "lock",
            &PatchParams::apply("replica-a"),
            &Patch::Apply(holder("replica-a")),
        )
        .await
        .unwrap();
    let taken = api_error(
        widgets
            .patch(
                "lock",
                &PatchParams::apply("replica-b"),
                &Patch::Apply(holder("replica-b")),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(taken.code, 409, "the holder field belongs to replica-a");
    let release = json!({"spec": {"tags": {"holder": null}}});
    widgets
        .patch("lock", &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
    let acquired = widgets
        .patch(
            "lock",
            &PatchParams::apply("replica-b"),
            &Patch::Apply(holder("replica-b")),
        )
        .await
        .unwrap();
    assert_eq!(
        acquired
            .spec
            .tags
            .unwrap()
            .get("holder")
            .map(String::as_str),
        Some("replica-b")
    );
    cluster.finish().await;
}

#[tokio::test]
async fn fields_set_by_an_update_conflict_with_a_later_apply() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let params = PostParams {
        field_manager: Some("creator".into()),
        ..PostParams::default()
    };
    let created = widgets.create(&params, &widget("owned", 1)).await.unwrap();
    let entries = created.metadata.managed_fields.unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|entry| entry.manager.as_deref() == Some("creator")
                && entry.operation.as_deref() == Some("Update")),
        "{entries:?}"
    );
    let resize = json!({
        "apiVersion": "conformance.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "owned"},
        "spec": {"size": 2},
    });
    let conflict = api_error(
        widgets
            .patch(
                "owned",
                &PatchParams::apply("applier"),
                &Patch::Apply(&resize),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(conflict.code, 409);
    assert!(conflict.message.contains("creator"), "{}", conflict.message);
    let forced = widgets
        .patch(
            "owned",
            &PatchParams::apply("applier").force(),
            &Patch::Apply(&resize),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 2);
    cluster.finish().await;
}
