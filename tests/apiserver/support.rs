//! The cluster a test runs against (in-memory unless a real one is asked for), the test CRDs,
//! and a polling helper.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use healthlake_operator::apiserver::ApiServer;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The namespaced test resource: spec rules of our own (required `size`, `minimum`, a pattern,
/// a CEL rule and an immutable field), a status subresource and printer columns.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.conformance.example.com
spec:
  group: conformance.example.com
  names:
    kind: Widget
    plural: widgets
    singular: widget
    shortNames: [wdg]
    categories: [conformance]
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Ready
      type: string
      jsonPath: .status.conditions[?(@.type=="Ready")].status
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: self.size <= 100
              message: size must be at most 100
            properties:
              size:
                type: integer
                minimum: 1
              color:
                type: string
                pattern: '^[a-z]+$'
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: color is immutable
              tags:
                type: object
                additionalProperties:
                  type: string
          status:
            type: object
            properties:
              phase:
                type: string
              cleanedUp:
                type: boolean
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
                    reason: {type: string}
                    message: {type: string}
                    lastTransitionTime: {type: string}
"#;

/// The cluster-scoped test resource, without a status subresource.
pub const GIZMO_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.conformance.example.com
spec:
  group: conformance.example.com
  names:
    kind: Gizmo
    plural: gizmos
    singular: gizmo
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

/// A Widget's spec.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "conformance.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A Widget's status.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned_up: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<serde_json::Value>,
}

/// A Gizmo's spec (cluster-scoped, no status subresource).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(group = "conformance.example.com", version = "v1", kind = "Gizmo")]
pub struct GizmoSpec {
    #[serde(default)]
    pub value: String,
}

/// A widget object with this name and size.
pub fn widget(name: &str, size: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            ..WidgetSpec::default()
        },
    )
}

/// Where a test runs: a fresh namespace on the in-memory server or on a real cluster.
pub struct Cluster {
    pub client: Client,
    /// The in-memory server, `None` on a real cluster.
    pub server: Option<ApiServer>,
    pub namespace: String,
}

/// Whether the suite runs against the cluster `KUBECONFIG` names.
pub fn real_cluster() -> bool {
    std::env::var("HEALTHLAKE_OPERATOR_REAL_CLUSTER").is_ok_and(|value| value == "1")
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long to wait for something the API server does on its own.
pub const PATIENCE: Duration = Duration::from_secs(20);

async fn install_crd(client: &Client, yaml: &str) {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("test crd parses");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("test crd has a name");
    api.patch(
        &name,
        &PatchParams::apply("conformance-suite").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("test crd is applied");
    eventually("the test crd to be established", PATIENCE, || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let crd = api.get(&name).await.ok()?;
            let established =
                crd.status?.conditions?.iter().any(|condition| {
                    condition.type_ == "Established" && condition.status == "True"
                });
            established.then_some(())
        }
    })
    .await;
}

impl Cluster {
    /// A fresh namespace with the test CRDs installed.
    pub async fn start() -> Self {
        let (client, server) = if real_cluster() {
            let client = Client::try_default()
                .await
                .expect("KUBECONFIG names a reachable cluster");
            (client, None)
        } else {
            let server = ApiServer::new();
            (server.client(), Some(server))
        };
        install_crd(&client, WIDGET_CRD).await;
        install_crd(&client, GIZMO_CRD).await;
        let suffix: u32 = rand::random();
        let namespace = format!("conformance-{suffix:08x}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut object = Namespace::default();
        object.metadata.name = Some(namespace.clone());
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .expect("the test namespace is created");
        Self {
            client,
            server,
            namespace,
        }
    }

    /// The Widgets of the test namespace.
    pub fn widgets(&self) -> Api<Widget> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The in-memory server; panics on a real cluster (callers skip those tests there).
    pub fn server(&self) -> &ApiServer {
        self.server
            .as_ref()
            .expect("this test needs the in-memory server")
    }

    /// Deletes the test namespace (and so everything in it).
    pub async fn finish(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}

/// The `kube::Error::Api` status of a failed call: (code, reason, message).
pub fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error status, got {other:?}"),
    }
}
