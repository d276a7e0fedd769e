//! The handle tests hold: an in-process `tower::Service` for `kube::Client`, a loopback HTTP
//! listener with its kubeconfig for other processes, CRD loading, and the fault hooks.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::faults::{Faults, Verb};
use super::resources::{CRD_GROUP, CRD_PLURAL};
use super::rest::{self, ResponseBody, Shared, lock};
use super::store::{Store, WriteOptions};

/// Why the API server could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// A file or socket operation failed.
    #[error("failed to {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A YAML document could not be read.
    #[error("failed to parse {origin} as yaml: {reason}")]
    Yaml {
        /// Where the YAML came from.
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// The server refused a CRD.
    #[error("failed to load crd {name}: {message}")]
    Crd {
        /// The CRD's name.
        name: String,
        /// The server's message.
        message: String,
    },
    /// Only loopback addresses may be served.
    #[error("refusing to listen on {0}: only loopback addresses are allowed")]
    NotLoopback(SocketAddr),
    /// The kubeconfig could not be turned into a client.
    #[error("failed to build a client from the kubeconfig: {0}")]
    Client(String),
}

/// An in-memory Kubernetes API server. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ApiServer")
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// A server holding the namespaces `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease`, serving Namespaces, Events, Leases and CustomResourceDefinitions.
    pub fn new() -> Self {
        let (watch_drops, _) = tokio::sync::watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                store: Mutex::new(Store::new()),
                faults: Mutex::new(Faults::default()),
                watch_drops,
            }),
        }
    }

    /// Creates (or replaces) the CRDs in a multi-document YAML text; returns their names.
    pub fn load_crds_yaml(&self, yaml: &str, origin: &str) -> Result<Vec<String>, ApiServerError> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|error| ApiServerError::Yaml {
                origin: origin.to_string(),
                reason: error.to_string(),
            })?;
        let mut names = Vec::new();
        let mut store = lock(&self.shared.store);
        let Some(crds) = store.registry().get(CRD_GROUP, "v1", CRD_PLURAL).cloned() else {
            return Ok(names);
        };
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            let name = document
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let refused = |error: super::status::ApiError| ApiServerError::Crd {
                name: name.clone(),
                message: error.message,
            };
            if let Ok(existing) = store.get(&crds, None, &name) {
                let mut document = document;
                // A replace keeps the server's cleanup finalizer, as an apply would.
                if let (Some(kept), Some(metadata)) = (
                    existing.pointer("/metadata/finalizers").cloned(),
                    document.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    metadata.insert("finalizers".into(), kept);
                }
                store
                    .replace(
                        &crds,
                        None,
                        &name,
                        document,
                        false,
                        &WriteOptions::default(),
                    )
                    .map_err(refused)?;
            } else {
                store
                    .create(&crds, None, document, &WriteOptions::default())
                    .map_err(refused)?;
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Loads every `*.yaml` / `*.yml` file of a directory (such as the repository's `crds/`).
    pub fn load_crds_from_dir(
        &self,
        directory: impl AsRef<Path>,
    ) -> Result<Vec<String>, ApiServerError> {
        let directory = directory.as_ref();
        let io = |action: String| move |source| ApiServerError::Io { action, source };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
            .map_err(io(format!("read directory {}", directory.display())))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        paths.sort();
        let mut names = Vec::new();
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
            names.extend(self.load_crds_yaml(&text, &path.display().to_string())?);
        }
        Ok(names)
    }

    /// A `kube::Client` talking to this server in-process, with `default` as its namespace.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Serves the API over plain HTTP on a loopback address (`127.0.0.1:0` picks a free port)
    /// and writes a kubeconfig for it.
    pub async fn serve(&self, address: &str) -> Result<ServedApi, ApiServerError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host(address)
            .await
            .map_err(|source| ApiServerError::Io {
                action: format!("resolve {address}"),
                source,
            })?
            .collect();
        // Checked before binding: nothing but loopback is ever bound, not even for a moment.
        if let Some(outside) = resolved
            .iter()
            .find(|candidate| !candidate.ip().is_loopback())
        {
            return Err(ApiServerError::NotLoopback(*outside));
        }
        let listener = tokio::net::TcpListener::bind(resolved.as_slice())
            .await
            .map_err(|source| ApiServerError::Io {
                action: format!("listen on {address}"),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ApiServerError::Io {
            action: "read the listening address".into(),
            source,
        })?;
        if !local.ip().is_loopback() {
            return Err(ApiServerError::NotLoopback(local));
        }
        let kubeconfig = std::env::temp_dir().join(format!(
            "in-memory-apiserver-{}-{}.kubeconfig",
            std::process::id(),
            local.port()
        ));
        std::fs::write(&kubeconfig, kubeconfig_text(local)).map_err(|source| {
            ApiServerError::Io {
                action: format!("write {}", kubeconfig.display()),
                source,
            }
        })?;
        let (shutdown, shutdown_signal) = tokio::sync::watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(accept_loop(listener, shared, shutdown_signal));
        Ok(ServedApi {
            address: local,
            kubeconfig,
            shutdown,
            task,
        })
    }

    /// Fails the next `count` requests with this verb on this resource (a plural such as
    /// `widgets`, `widgets/status`, or `*` for any) with `status` and a `Status` body.
    pub fn fail_next(&self, verb: Verb, resource: &str, status: u16, count: u32) {
        lock(&self.shared.faults).fail_next(verb, resource, status, count);
    }

    /// Ends every open watch, as an API server restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.shared
            .watch_drops
            .send_modify(|generation| *generation += 1);
    }

    /// Delays every request by `latency` (zero removes it).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.faults).set_latency(latency);
    }

    /// Delivers every event of the watches started from now on `lag` after it happened (zero
    /// removes it), as a busy API server or a slow network would: a client's own write then
    /// reaches its cache that much later.
    pub fn set_watch_lag(&self, lag: Duration) {
        lock(&self.shared.faults).set_watch_lag(lag);
    }

    /// Removes every fault rule, the latency and the watch lag.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Forgets the watch history, so that watches from an older resourceVersion get 410 Gone.
    pub fn compact_history(&self) {
        lock(&self.shared.store).compact();
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).revision()
    }
}

fn kubeconfig_text(address: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: in-memory\n  cluster:\n    server: http://{address}\ncontexts:\n- name: in-memory\n  context:\n    cluster: in-memory\n    user: in-memory\n    namespace: default\ncurrent-context: in-memory\nusers:\n- name: in-memory\n  user: {{}}\n"
    )
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let mut connection_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(answer(shared, request).await) }
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = connection_shutdown.changed() => {}
            }
        });
    }
}

async fn answer<B>(shared: Arc<Shared>, request: Request<B>) -> Response<ResponseBody>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let (parts, body) = request.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let error = super::status::ApiError::bad_request(format!(
                "failed to read the request body: {error}"
            ));
            let mut response = Response::new(
                http_body_util::Full::new(Bytes::from(error.to_status().to_string()))
                    .boxed_unsync(),
            );
            *response.status_mut() = http::StatusCode::BAD_REQUEST;
            return response;
        }
    };
    rest::handle(shared, parts.method, parts.uri, parts.headers, bytes).await
}

impl tower::Service<Request<kube::client::Body>> for ApiServer {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(answer(shared, request).await) })
    }
}

/// The API served on a loopback port; stops serving when dropped.
pub struct ServedApi {
    address: SocketAddr,
    kubeconfig: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServedApi {
    /// The listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL, such as `http://127.0.0.1:43121`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The kubeconfig file pointing at this server (for `KUBECONFIG=` or `--kubeconfig`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kube::Client` that reaches the server over HTTP through the kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, ApiServerError> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|error| ApiServerError::Client(error.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|error| ApiServerError::Client(error.to_string()))?;
        kube::Client::try_from(config).map_err(|error| ApiServerError::Client(error.to_string()))
    }
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}
