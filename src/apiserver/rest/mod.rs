//! The HTTP face of the store: one function from a request to a response.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::conversion;
use super::discovery;
use super::faults::{Faults, Verb};
use super::protobuf;
use super::routing::{ResourcePath, Route, parse_query, route};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, success_status};
use super::store::{
    DeleteOptions, FieldValidation, Propagation, Selection, Store, WatchStart, WriteOptions,
};
use super::table;
use super::watch::{self, WatchRequest};

mod patch;

use patch::patch;

/// The body of every response: a whole JSON document, or a watch stream.
pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub struct Shared {
    /// The objects.
    pub store: Mutex<Store>,
    /// The fault hooks.
    pub faults: Mutex<Faults>,
    /// Bumped to end every open watch.
    pub watch_drops: tokio::sync::watch::Sender<u64>,
}

/// Locks a mutex, carrying on after a panic elsewhere (the state stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Query = BTreeMap<String, String>;

enum Reply {
    Json(u16, Value),
    Warned(u16, Value, Vec<String>),
    Text(&'static str),
    Stream(mpsc::Receiver<Bytes>),
}

fn full(code: u16, content_type: &str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn streamed(receiver: mpsc::Receiver<Bytes>) -> Response<ResponseBody> {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), receiver))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Answers one request.
pub async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResponseBody> {
    let latency = lock(&shared.faults).latency();
    if latency > Duration::ZERO {
        tokio::time::sleep(latency).await;
    }
    match dispatch(&shared, &method, &uri, &headers, &body) {
        Ok(Reply::Json(code, value)) => {
            full(code, "application/json", Bytes::from(value.to_string()))
        }
        Ok(Reply::Warned(code, value, warnings)) => {
            let mut response = full(code, "application/json", Bytes::from(value.to_string()));
            for warning in warnings {
                if let Ok(header) = format!("299 - {warning:?}").parse() {
                    response.headers_mut().append(http::header::WARNING, header);
                }
            }
            response
        }
        Ok(Reply::Text(text)) => full(200, "text/plain", Bytes::from_static(text.as_bytes())),
        Ok(Reply::Stream(receiver)) => streamed(receiver),
        Err(error) => full(
            error.code,
            "application/json",
            Bytes::from(error.to_status().to_string()),
        ),
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let query = parse_query(uri.query());
    let route = route(uri.path(), lock(&shared.store).registry())?;
    let read_only = |value: Value| {
        if method == Method::GET {
            Ok(Reply::Json(200, value))
        } else {
            Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on {}",
                uri.path()
            )))
        }
    };
    match route {
        Route::Version => read_only(discovery::version()),
        Route::Health => Ok(Reply::Text("ok")),
        Route::CoreVersions => read_only(discovery::core_versions()),
        Route::Groups => read_only(discovery::group_list(lock(&shared.store).registry())),
        Route::Group(group) => read_only(discovery::group(lock(&shared.store).registry(), &group)?),
        Route::GroupVersion(group, version) => read_only(discovery::resource_list(
            lock(&shared.store).registry(),
            &group,
            &version,
        )?),
        Route::OpenApiV2 => Err(ApiError::no_route(uri.path())),
        Route::OpenApiV3Root => read_only(discovery::openapi_root(lock(&shared.store).registry())),
        Route::OpenApiV3(group, version) => read_only(discovery::openapi_group_version(
            lock(&shared.store).registry(),
            &group,
            &version,
        )?),
        Route::Resource(path) => resource(shared, method, *path, &query, headers, body),
    }
}

fn flag(query: &Query, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

fn verb_of(method: &Method, path: &ResourcePath, query: &Query) -> Result<Verb, ApiError> {
    let item = path.name.is_some();
    Ok(match *method {
        Method::GET if item => Verb::Get,
        Method::GET if flag(query, "watch") => Verb::Watch,
        Method::GET => Verb::List,
        Method::POST if !item => Verb::Create,
        Method::PUT if item => Verb::Update,
        Method::PATCH if item => Verb::Patch,
        Method::DELETE if item => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on this path"
            )));
        }
    })
}

/// 415 for a body this server cannot read.
fn unreadable(content_type: &str) -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!(
            "the in-memory api server reads json and yaml only (and a protobuf Namespace), not {content_type}: send the object as json (kubectl create -f or apply -f)"
        ),
        details: None,
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).or_else(|json_error| {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_saphyr::from_str::<Value>(text).map_err(|yaml_error| {
            ApiError::bad_request(format!(
                "the request body is neither JSON ({json_error}) nor YAML ({yaml_error})"
            ))
        })
    })
}

fn selection(path: &ResourcePath, query: &Query) -> Result<Selection, ApiError> {
    Ok(Selection {
        namespace: path.namespace.clone(),
        labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("as=Table"))
}

/// Whether the client asked for metadata only (kube-runtime's metadata watcher, `get_metadata`).
fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("as=PartialObjectMetadata"))
}

fn dry_run(query: &Query, body: &Value) -> bool {
    query.get("dryRun").is_some_and(|value| value == "All")
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| v == "All"))
}

fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    path: ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let verb = verb_of(method, &path, query)?;
    let fault_resource = match &path.subresource {
        Some(subresource) => format!("{}/{subresource}", path.resource.plural),
        None => path.resource.plural.clone(),
    };
    if let Some(status) = lock(&shared.faults).take_failure(verb, &fault_resource) {
        return Err(ApiError::injected(status));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let body = if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        let namespace = protobuf::decode_namespace(body).ok_or_else(|| unreadable(content_type))?;
        Bytes::from(namespace.to_string())
    } else if content_type.starts_with("application/cbor") {
        return Err(unreadable(content_type));
    } else {
        body.clone()
    };
    let body = parse_body(&body)?;
    let options = WriteOptions {
        dry_run: dry_run(query, &body),
        field_validation: match query.get("fieldValidation").map(String::as_str) {
            None | Some("" | "Warn") => FieldValidation::Warn,
            Some("Ignore") => FieldValidation::Ignore,
            Some("Strict") => FieldValidation::Strict,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid fieldValidation {other:?}: expected Ignore, Warn or Strict"
                )));
            }
        },
        warnings: Default::default(),
        field_manager: query
            .get("fieldManager")
            .filter(|manager| !manager.is_empty())
            .cloned()
            .unwrap_or_else(|| {
                headers
                    .get(http::header::USER_AGENT)
                    .and_then(|agent| agent.to_str().ok())
                    .and_then(|agent| agent.split('/').next())
                    .filter(|manager| !manager.is_empty())
                    .unwrap_or("unknown")
                    .to_string()
            }),
    };
    let reply = answer_resource(shared, &path, query, headers, body, verb, &options)?;
    let warnings = options.warnings.take();
    Ok(match reply {
        Reply::Json(code, value) if !warnings.is_empty() => Reply::Warned(code, value, warnings),
        other => other,
    })
}

fn answer_resource(
    shared: &Arc<Shared>,
    path: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: Value,
    verb: Verb,
    options: &WriteOptions,
) -> Result<Reply, ApiError> {
    let resource = &path.resource;
    let namespace = path.namespace.as_deref();
    let name = path.name.clone().unwrap_or_default();
    let status_only = path.subresource.is_some();
    match verb {
        Verb::Get => {
            let object = lock(&shared.store).get(resource, namespace, &name)?;
            if wants_table(headers) {
                let include = query
                    .get("includeObject")
                    .map(String::as_str)
                    .unwrap_or("Metadata");
                let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                return Ok(Reply::Json(
                    200,
                    table::to_table(resource, &[object], include, metadata),
                ));
            }
            if wants_metadata(headers) {
                return Ok(Reply::Json(200, conversion::partial(&object)));
            }
            Ok(Reply::Json(200, object))
        }
        Verb::List => {
            let selection = selection(path, query)?;
            let limit = query.get("limit").and_then(|limit| limit.parse().ok());
            let page = lock(&shared.store).list(
                resource,
                &selection,
                limit,
                query.get("continue").map(String::as_str),
            )?;
            let mut metadata = json!({"resourceVersion": page.revision.to_string()});
            if let Some(token) = &page.continue_token {
                metadata["continue"] = json!(token);
            }
            if let Some(remaining) = page.remaining {
                metadata["remainingItemCount"] = json!(remaining);
            }
            if wants_table(headers) {
                let include = query
                    .get("includeObject")
                    .map(String::as_str)
                    .unwrap_or("Metadata");
                return Ok(Reply::Json(
                    200,
                    table::to_table(resource, &page.items, include, metadata),
                ));
            }
            if wants_metadata(headers) {
                let items: Vec<Value> = page.items.iter().map(conversion::partial).collect();
                return Ok(Reply::Json(
                    200,
                    json!({
                        "apiVersion": "meta.k8s.io/v1",
                        "kind": "PartialObjectMetadataList",
                        "metadata": metadata,
                        "items": items,
                    }),
                ));
            }
            Ok(Reply::Json(
                200,
                json!({
                    "apiVersion": resource.api_version(),
                    "kind": format!("{}List", resource.kind),
                    "metadata": metadata,
                    "items": page.items,
                }),
            ))
        }
        Verb::Watch => watch(shared, path, query, headers),
        Verb::Create => {
            if status_only {
                return Err(ApiError::method_not_allowed(
                    "create is not allowed on a subresource",
                ));
            }
            let created = lock(&shared.store).create(resource, namespace, body, options)?;
            Ok(Reply::Json(201, created))
        }
        Verb::Update => {
            let updated = lock(&shared.store).replace(
                resource,
                namespace,
                &name,
                body,
                status_only,
                options,
            )?;
            Ok(Reply::Json(200, updated))
        }
        Verb::Patch => patch(shared, path, query, headers, body, options),
        Verb::Delete => {
            let delete_options = delete_options(query, &body)?;
            let deleted =
                lock(&shared.store).delete(resource, namespace, &name, &delete_options)?;
            Ok(Reply::Json(
                if deleted.removed { 200 } else { 202 },
                deleted.object,
            ))
        }
        Verb::DeleteCollection => {
            let selection = selection(path, query)?;
            let delete_options = delete_options(query, &body)?;
            let deleted =
                lock(&shared.store).delete_collection(resource, &selection, &delete_options)?;
            if deleted.is_empty() {
                return Ok(Reply::Json(
                    200,
                    success_status(json!({"kind": resource.plural, "group": resource.group})),
                ));
            }
            Ok(Reply::Json(
                200,
                json!({
                    "apiVersion": resource.api_version(),
                    "kind": format!("{}List", resource.kind),
                    "metadata": {},
                    "items": deleted,
                }),
            ))
        }
        Verb::Any => Err(ApiError::internal("no verb")),
    }
}

fn delete_options(query: &Query, body: &Value) -> Result<DeleteOptions, ApiError> {
    let policy = query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            body.get("orphanDependents")
                .and_then(Value::as_bool)
                .map(|orphan| if orphan { "Orphan" } else { "Background" }.to_string())
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}: expected Orphan, Background or Foreground"
            )));
        }
    };
    let precondition = |key: &str| {
        body.pointer(&format!("/preconditions/{key}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOptions {
        propagation,
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
        dry_run: dry_run(query, body),
    })
}

fn watch(
    shared: &Arc<Shared>,
    path: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
) -> Result<Reply, ApiError> {
    let selection = selection(path, query)?;
    let send_initial = flag(query, "sendInitialEvents");
    let version = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    if send_initial && query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            super::status::Subject {
                plural: "listoptions",
                group: "meta.k8s.io",
                kind: "ListOptions",
                name: "",
            },
            &[crate::admission::FieldError {
                field: "resourceVersionMatch".into(),
                kind: crate::admission::FieldErrorKind::Forbidden,
                value: None,
                message: "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                    .into(),
            }],
        ));
    }
    let start = if send_initial || version.is_empty() || version == "0" {
        WatchStart::CurrentState
    } else {
        WatchStart::After(version.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {version:?}: not a number"))
        })?)
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs);
    let request = WatchRequest {
        resource: path.resource.clone(),
        selection: selection.clone(),
        bookmarks: flag(query, "allowWatchBookmarks"),
        initial_events_end: send_initial,
        timeout,
        metadata_only: wants_metadata(headers),
        table: wants_table(headers).then(|| {
            query
                .get("includeObject")
                .cloned()
                .unwrap_or_else(|| "Metadata".to_string())
        }),
    };
    let (sender, receiver) = mpsc::channel(256);
    let subscription = lock(&shared.store).subscribe(&path.resource, &selection, start);
    match subscription {
        Ok(subscription) => {
            let drops = shared.watch_drops.subscribe();
            let lag = lock(&shared.faults).watch_lag();
            tokio::spawn(watch::run(
                request,
                subscription,
                watch::lagging(sender, lag),
                drops,
            ));
        }
        // A real API server answers a watch from a compacted resourceVersion with an ERROR event,
        // which is what makes kube-runtime's watcher relist.
        Err(error) => {
            let _ = sender.try_send(watch::error_event(&error));
        }
    }
    Ok(Reply::Stream(receiver))
}
