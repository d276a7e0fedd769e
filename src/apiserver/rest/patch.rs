//! PATCH: JSON Patch, JSON merge patch, strategic merge (read as merge, built-in kinds only) and
//! server-side apply.

use std::sync::Arc;

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde_json::Value;

use super::{Query, Reply, Shared, flag, lock};
use crate::apiserver::resources::ResourceType;
use crate::apiserver::routing::ResourcePath;
use crate::apiserver::status::ApiError;
use crate::apiserver::store::WriteOptions;

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The patch content types a resource accepts, in the order a real API server lists them: custom
/// resources have no Go types to carry merge strategies, so the apiextensions server offers them
/// JSON, merge and apply patches only; built-in kinds accept strategic merge too.
fn accepted_patch_types(resource: &ResourceType) -> &'static [&'static str] {
    if resource.crd_name.is_some() {
        &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    } else {
        &[JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
    }
}

pub(super) fn patch(
    shared: &Arc<Shared>,
    path: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: Value,
    options: &WriteOptions,
) -> Result<Reply, ApiError> {
    let resource = &path.resource;
    let namespace = path.namespace.as_deref();
    let name = path.name.clone().unwrap_or_default();
    let status_only = path.subresource.is_some();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let accepted = accepted_patch_types(resource);
    if !accepted.contains(&media_type) {
        return Err(ApiError::unsupported_media_type(accepted));
    }
    let mut store = lock(&shared.store);
    match media_type {
        JSON_PATCH => {
            let operations: json_patch::Patch = serde_json::from_value(body)
                .map_err(|error| ApiError::bad_request(format!("invalid json patch: {error}")))?;
            let patched = store.patch_with(resource, namespace, &name, status_only, options, |old| {
                let mut document = old.clone();
                for operation in &operations.0 {
                    // Kubernetes' JSON Patch library lets `test` with a null value pass on a
                    // missing path; kube-runtime's finalizer helper relies on it.
                    if let json_patch::PatchOperation::Test(test) = operation
                        && test.value.is_null() && document.pointer(&test.path.to_string()).is_none() {
                            continue;
                        }
                    json_patch::patch(&mut document, std::slice::from_ref(operation)).map_err(|error| ApiError {
                        code: 422,
                        reason: "Invalid",
                        message: format!("the server rejected our request due to an error in our request: {error}"),
                        details: None,
                    })?;
                }
                Ok(document)
            })?;
            Ok(Reply::Json(200, patched))
        }
        MERGE_PATCH | STRATEGIC_MERGE_PATCH => {
            let patched =
                store.patch_with(resource, namespace, &name, status_only, options, |old| {
                    let mut document = old.clone();
                    json_patch::merge(&mut document, &body);
                    Ok(document)
                })?;
            Ok(Reply::Json(200, patched))
        }
        APPLY_PATCH => {
            let existed = store.get(resource, namespace, &name).is_ok();
            let manager = query.get("fieldManager").map(String::as_str).unwrap_or("");
            let applied = store.apply(
                resource,
                namespace,
                &name,
                body,
                manager,
                flag(query, "force"),
                status_only,
                options,
            )?;
            Ok(Reply::Json(if existed { 200 } else { 201 }, applied))
        }
        _ => Err(ApiError::unsupported_media_type(accepted)),
    }
}
