//! Admission through the CRD's schema and CEL rules: 422 Invalid with the field errors a real
//! API server gives.

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::support::{Cluster, api_error, widget};

#[tokio::test]
async fn invalid_objects_are_refused_with_422_and_field_causes() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();

    let too_small = api_error(
        widgets
            .create(&PostParams::default(), &widget("small", 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (too_small.code, too_small.reason.as_str()),
        (422, "Invalid")
    );
    assert!(
        too_small
            .message
            .starts_with("Widget.conformance.example.com \"small\" is invalid: "),
        "{}",
        too_small.message
    );
    let causes = too_small.details.unwrap().causes;
    assert!(
        causes.iter().any(|cause| cause.field == "spec.size"),
        "{causes:?}"
    );

    let too_big = api_error(
        widgets
            .create(&PostParams::default(), &widget("big", 101))
            .await
            .unwrap_err(),
    );
    assert_eq!(too_big.code, 422);
    assert!(
        too_big.message.contains("size must be at most 100"),
        "{}",
        too_big.message
    );

    let mut shouting = widget("shouting", 1);
    shouting.spec.color = Some("RED".into());
    let pattern = api_error(
        widgets
            .create(&PostParams::default(), &shouting)
            .await
            .unwrap_err(),
    );
    assert_eq!(pattern.code, 422);
    assert!(
        pattern.message.contains("spec.color"),
        "{}",
        pattern.message
    );

    let raw = json!({"apiVersion": "conformance.example.com/v1", "kind": "Widget", "metadata": {"name": "sizeless"}, "spec": {}});
    let missing = api_error(
        widgets
            .patch(
                "sizeless",
                &PatchParams::apply("conformance").force(),
                &Patch::Apply(&raw),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(missing.code, 422);
    assert!(
        missing.message.contains("spec.size: Required value"),
        "{}",
        missing.message
    );
    cluster.finish().await;
}

#[tokio::test]
async fn transition_rules_see_the_old_object_on_update() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut object = widget("painted", 1);
    object.spec.color = Some("red".into());
    widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let repaint = api_error(
        widgets
            .patch(
                "painted",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"color": "blue"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(repaint.code, 422);
    assert!(
        repaint.message.contains("color is immutable"),
        "{}",
        repaint.message
    );
    let resized = widgets
        .patch(
            "painted",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(resized.spec.color.as_deref(), Some("red"));
    cluster.finish().await;
}

#[tokio::test]
async fn unknown_fields_are_refused_when_strict_and_pruned_otherwise() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let typo = |name: &str| {
        json!({
            "apiVersion": "conformance.example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"size": 1, "colour": "red"},
        })
    };
    let strict = api_error(
        widgets
            .patch(
                "strict",
                &PatchParams::apply("conformance").validation_strict(),
                &Patch::Apply(typo("strict")),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((strict.code, strict.reason.as_str()), (400, "BadRequest"));
    assert!(
        strict
            .message
            .contains(r#"strict decoding error: unknown field "spec.colour""#),
        "{}",
        strict.message
    );
    assert!(widgets.get_opt("strict").await.unwrap().is_none());

    let pruned = widgets
        .patch(
            "lenient",
            &PatchParams::apply("conformance").validation_warn(),
            &Patch::Apply(typo("lenient")),
        )
        .await
        .unwrap();
    assert_eq!(pruned.spec.size, 1);
    let stored = kube::Api::<kube::api::DynamicObject>::namespaced_with(
        cluster.client.clone(),
        &cluster.namespace,
        &kube::api::ApiResource::erase::<super::support::Widget>(&()),
    )
    .get("lenient")
    .await
    .unwrap();
    assert_eq!(
        stored.data["spec"],
        json!({"size": 1}),
        "the unknown field is pruned"
    );
    cluster.finish().await;
}
