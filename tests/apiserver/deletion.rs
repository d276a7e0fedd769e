//! Deletion: finalizers, owner references (background and foreground cascades) and namespaces.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::support::{Cluster, PATIENCE, api_error, eventually, widget};

#[tokio::test]
async fn finalizers_keep_a_deleted_object_until_the_last_one_goes() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let mut object = widget("held", 1);
    object.metadata.finalizers = Some(vec!["conformance.example.com/hold".into()]);
    widgets
        .create(&PostParams::default(), &object)
        .await
        .unwrap();

    let deleting = widgets
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = deleting.left().expect("the object is still there");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let kept = widgets.get("held").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());
    assert_eq!(
        kept.metadata.generation,
        Some(2),
        "marking for deletion bumps the generation"
    );

    let added = json!({"metadata": {"finalizers": ["conformance.example.com/hold", "conformance.example.com/late"]}});
    let refused = api_error(
        widgets
            .patch("held", &PatchParams::default(), &Patch::Merge(added))
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 422);
    assert!(
        refused.message.contains("no new finalizers can be added"),
        "{}",
        refused.message
    );

    let cleared = json!({"metadata": {"finalizers": null}});
    widgets
        .patch("held", &PatchParams::default(), &Patch::Merge(cleared))
        .await
        .unwrap();
    let gone = api_error(widgets.get("held").await.unwrap_err());
    assert_eq!(gone.code, 404);
    cluster.finish().await;
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_in_the_background() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let owner = widgets
        .create(&PostParams::default(), &widget("owner", 1))
        .await
        .unwrap();
    let reference: OwnerReference = owner.controller_owner_ref(&()).unwrap();
    for name in ["child-a", "child-b"] {
        let mut child = widget(name, 1);
        child.metadata.owner_references = Some(vec![reference.clone()]);
        widgets
            .create(&PostParams::default(), &child)
            .await
            .unwrap();
    }
    widgets
        .create(&PostParams::default(), &widget("bystander", 1))
        .await
        .unwrap();
    widgets
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependents to be deleted", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            let names: Vec<String> = widgets
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            (names == vec!["bystander".to_string()]).then_some(())
        }
    })
    .await;
    cluster.finish().await;
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_it_holds() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    widgets
        .create(&PostParams::default(), &widget("inside", 1))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces
        .delete(&cluster.namespace, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace to be gone", PATIENCE * 3, || {
        let namespaces = namespaces.clone();
        let name = cluster.namespace.clone();
        async move {
            namespaces
                .get_opt(&name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        api_error(widgets.get("inside").await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn a_foreground_delete_keeps_the_owner_until_its_dependents_are_gone() {
    let cluster = Cluster::start().await;
    let widgets = cluster.widgets();
    let owner = widgets
        .create(&PostParams::default(), &widget("parent", 1))
        .await
        .unwrap();
    let reference: OwnerReference = owner.controller_owner_ref(&()).unwrap();
    let mut held = widget("held-child", 1);
    held.metadata.owner_references = Some(vec![OwnerReference {
        block_owner_deletion: Some(true),
        ..reference.clone()
    }]);
    held.metadata.finalizers = Some(vec!["conformance.example.com/hold".into()]);
    widgets.create(&PostParams::default(), &held).await.unwrap();

    widgets
        .delete("parent", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the dependent to be marked for deletion", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            let child = widgets.get("held-child").await.ok()?;
            child.metadata.deletion_timestamp.map(|_| ())
        }
    })
    .await;
    let parent = widgets.get("parent").await.unwrap();
    assert!(parent.metadata.deletion_timestamp.is_some());
    assert!(
        parent
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{:?}",
        parent.finalizers()
    );

    let release = json!({"metadata": {"finalizers": null}});
    widgets
        .patch(
            "held-child",
            &PatchParams::default(),
            &Patch::Merge(release),
        )
        .await
        .unwrap();
    eventually("the owner to go after its dependent", PATIENCE, || {
        let widgets = widgets.clone();
        async move {
            widgets
                .get_opt("parent")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    cluster.finish().await;
}

const SPROCKET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: sprockets.conformance.example.com
spec:
  group: conformance.example.com
  names: {kind: Sprocket, plural: sprockets, singular: sprocket}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_waits_for_their_finalizers() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let cluster = Cluster::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let crd: CustomResourceDefinition = serde_saphyr::from_str(SPROCKET_CRD).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("conformance.example.com", "v1", "Sprocket"),
        "sprockets",
    );
    let sprockets: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &resource);
    let held: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "conformance.example.com/v1",
        "kind": "Sprocket",
        "metadata": {"name": "held", "finalizers": ["conformance.example.com/hold"]},
    }))
    .unwrap();
    // The CRD may take a moment to be served on a real cluster.
    eventually("the sprocket to be created", PATIENCE, || {
        let sprockets = sprockets.clone();
        let held = held.clone();
        async move {
            sprockets
                .create(&PostParams::default(), &held)
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;

    crds.delete(
        "sprockets.conformance.example.com",
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    eventually("the sprocket to be marked for deletion", PATIENCE, || {
        let sprockets = sprockets.clone();
        async move {
            let object = sprockets.get("held").await.ok()?;
            object.metadata.deletion_timestamp.map(|_| ())
        }
    })
    .await;
    let terminating = crds.get("sprockets.conformance.example.com").await.unwrap();
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "the crd waits for its objects"
    );

    let release = json!({"metadata": {"finalizers": null}});
    sprockets
        .patch("held", &PatchParams::default(), &Patch::Merge(release))
        .await
        .unwrap();
    eventually("the crd to be gone", PATIENCE, || {
        let crds = crds.clone();
        async move {
            crds.get_opt("sprockets.conformance.example.com")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    cluster.finish().await;
}
