//! Reading a request's path and query: which endpoint it names and with which parameters.

use std::collections::BTreeMap;

use super::resources::{Registry, ResourceType};
use super::status::ApiError;

/// The endpoint a path names.
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Root,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`.
    OpenApiV3(String, String),
    /// A resource collection, object or subresource.
    Resource(Box<ResourcePath>),
}

/// A path under a resource.
pub struct ResourcePath {
    /// The resource.
    pub resource: ResourceType,
    /// The namespace from the path.
    pub namespace: Option<String>,
    /// The object's name, absent for a collection.
    pub name: Option<String>,
    /// The subresource (`status`), if any.
    pub subresource: Option<String>,
}

/// Decodes `%XX` escapes and `+`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            b'%' => {
                let hex = text.get(index + 1..index + 3).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) if hex.len() == 2 => {
                        decoded.push(byte);
                        index += 3;
                    }
                    _ => {
                        decoded.push(b'%');
                        index += 1;
                    }
                }
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The query parameters, last value wins.
pub fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// Reads the path into a route, given the resources currently served.
pub fn route(path: &str, registry: &Registry) -> Result<Route, ApiError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["apis", group] => Ok(Route::Group((*group).to_string())),
        ["api", "v1"] => Ok(Route::GroupVersion(String::new(), "v1".into())),
        ["apis", group, version] => Ok(Route::GroupVersion((*group).into(), (*version).into())),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["openapi", "v3"] => Ok(Route::OpenApiV3Root),
        ["openapi", "v3", "api", "v1"] => Ok(Route::OpenApiV3(String::new(), "v1".into())),
        ["openapi", "v3", "apis", group, version] => {
            Ok(Route::OpenApiV3((*group).into(), (*version).into()))
        }
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest, registry, path),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest, registry, path),
        _ => Err(ApiError::no_route(path)),
    }
}

fn resource_route(
    group: &str,
    version: &str,
    rest: &[&str],
    registry: &Registry,
    path: &str,
) -> Result<Route, ApiError> {
    let lookup = |plural: &str| registry.get(group, version, plural).cloned();
    // `namespaces/<ns>/<plural>...` addresses a namespaced resource, unless `<plural>` is not a
    // resource of this group, in which case it is a subresource of the namespace itself.
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, tail @ ..]
            if lookup(plural).is_some_and(|resource| resource.namespaced) =>
        {
            (Some((*namespace).to_string()), {
                let mut list = vec![*plural];
                list.extend_from_slice(tail);
                list
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_string()), None),
        [plural, name, subresource] => (
            *plural,
            Some((*name).to_string()),
            Some((*subresource).to_string()),
        ),
        _ => return Err(ApiError::no_route(path)),
    };
    let resource = lookup(plural).ok_or_else(|| ApiError::no_route(path))?;
    if let Some(subresource) = &subresource
        && (subresource != "status" || !resource.status_subresource)
    {
        return Err(ApiError::no_route(path));
    }
    Ok(Route::Resource(Box::new(ResourcePath {
        resource,
        namespace,
        name,
        subresource,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let query = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1"));
        assert_eq!(query["labelSelector"], "app=web,tier in (a)");
        assert_eq!(query["watch"], "1");
    }

    #[test]
    fn namespaced_and_cluster_paths_resolve() {
        let registry = Registry::with_builtins();
        let Ok(Route::Resource(path)) = route("/api/v1/namespaces/default/events/x", &registry)
        else {
            panic!("expected a resource route");
        };
        assert_eq!(path.namespace.as_deref(), Some("default"));
        assert_eq!(path.name.as_deref(), Some("x"));
        let Ok(Route::Resource(path)) = route("/api/v1/namespaces/default/status", &registry)
        else {
            panic!("expected the namespace status route");
        };
        assert_eq!(path.resource.plural, "namespaces");
        assert_eq!(path.subresource.as_deref(), Some("status"));
        assert!(route("/apis/nothing.example/v1/things", &registry).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_path_and_query_is_routed_or_refused_without_panicking(path in ".{0,60}", query in ".{0,60}") {
            let registry = Registry::with_builtins();
            let _ = route(&path, &registry);
            let _ = parse_query(Some(&query));
        }
    }
}
