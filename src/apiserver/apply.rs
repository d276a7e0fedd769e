//! Server-side apply with simplified field ownership.
//!
//! Each manager owns leaf fields (lists are atomic leaves): an applier those of the configuration
//! it last applied, an updater those its writes changed. Applying merges the configuration into
//! the live object; a leaf another manager owns with a different value is a conflict unless
//! `force` is set (then ownership moves); fields the applier applied before but no longer
//! mentions are removed when nobody else owns them. Ownership is kept in
//! `metadata.managedFields` in the `FieldsV1` encoding.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A leaf field path such as `["spec", "tags", "team"]`.
pub type FieldPath = Vec<String>;

/// The metadata fields an applier may own; the rest of metadata belongs to the server.
const OWNABLE_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf paths a configuration sets.
pub fn leaf_paths(config: &Value) -> BTreeSet<FieldPath> {
    let mut paths = BTreeSet::new();
    let Some(map) = config.as_object() else {
        return paths;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(metadata) = value.as_object() {
                    for field in OWNABLE_METADATA {
                        if let Some(inner) = metadata.get(field) {
                            collect(inner, vec!["metadata".into(), field.into()], &mut paths);
                        }
                    }
                }
            }
            _ => collect(value, vec![key.clone()], &mut paths),
        }
    }
    paths
}

fn collect(value: &Value, path: FieldPath, paths: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let mut next = path.clone();
                next.push(key.clone());
                collect(inner, next, paths);
            }
        }
        _ => {
            paths.insert(path);
        }
    }
}

/// Encodes leaf paths as a `FieldsV1` object (`{"f:spec": {"f:x": {}}}`).
pub fn encode_fields(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut cursor = &mut root;
        for segment in path {
            let entry = cursor
                .entry(format!("f:{segment}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else {
                break;
            };
            cursor = next;
        }
    }
    Value::Object(root)
}

/// Decodes a `FieldsV1` object into leaf paths; entries other than `f:` ones end the path.
pub fn decode_fields(fields: &Value) -> BTreeSet<FieldPath> {
    let mut paths = BTreeSet::new();
    decode_into(fields, Vec::new(), &mut paths);
    paths
}

fn decode_into(fields: &Value, path: FieldPath, paths: &mut BTreeSet<FieldPath>) {
    let children: Vec<(&String, &Value)> = fields
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(key, _)| key.starts_with("f:"))
                .collect()
        })
        .unwrap_or_default();
    if children.is_empty() {
        if !path.is_empty() {
            paths.insert(path);
        }
        return;
    }
    for (key, inner) in children {
        let mut next = path.clone();
        next.push(key.trim_start_matches("f:").to_string());
        decode_into(inner, next, paths);
    }
}

/// Whether applying `path` from `config` would change a field someone owns at `owned`: the same
/// field with another value, or one inside the other where the outer one is atomic (not a map).
fn conflicts_with(path: &FieldPath, owned: &FieldPath, live: &Value, config: &Value) -> bool {
    let atomic =
        |object: &Value, at: &FieldPath| !value_at(object, at).is_some_and(Value::is_object);
    if path == owned {
        value_at(live, path) != value_at(config, path)
    } else if owned.starts_with(path) {
        atomic(config, path) && value_at(live, owned) != value_at(config, owned)
    } else if path.starts_with(owned) {
        atomic(live, owned) && value_at(live, path) != value_at(config, path)
    } else {
        false
    }
}

/// Whether owning `owner` keeps `path` alive: the same field, a field inside it, or an atomic
/// (non-map) value containing it.
fn covers(owner: &FieldPath, path: &FieldPath, object: &Value) -> bool {
    owner == path
        || owner.starts_with(path)
        || (path.starts_with(owner) && !value_at(object, owner).is_some_and(Value::is_object))
}

fn value_at<'a>(object: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |value, segment| value.get(segment))
}

fn remove_at(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = object;
    for segment in parents {
        match cursor.get_mut(segment) {
            Some(next) => cursor = next,
            None => return,
        }
    }
    if let Some(map) = cursor.as_object_mut() {
        map.remove(last);
    }
}

/// Merges `config` into `target`: maps key by key, everything else replaced.
pub fn merge_config(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(target_map), Value::Object(config_map)) => {
            for (key, value) in config_map {
                match target_map.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_config(existing, value)
                    }
                    _ => {
                        target_map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, config) => *target = config.clone(),
    }
}

/// One entry of `metadata.managedFields`.
struct ManagedEntry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    paths: BTreeSet<FieldPath>,
}

fn read_entries(object: &Value) -> Vec<ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    let text = |key: &str| {
                        entry
                            .get(key)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    ManagedEntry {
                        manager: text("manager"),
                        operation: text("operation"),
                        subresource: text("subresource"),
                        api_version: text("apiVersion"),
                        time: text("time"),
                        paths: entry.get("fieldsV1").map(decode_fields).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(object: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|entry| !entry.paths.is_empty())
        .map(|entry| {
            let mut value = json!({
                "manager": entry.manager,
                "operation": entry.operation,
                "apiVersion": entry.api_version,
                "time": entry.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode_fields(&entry.paths),
            });
            if !entry.subresource.is_empty() {
                value["subresource"] = Value::String(entry.subresource.clone());
            }
            value
        })
        .collect();
    let metadata = object.as_object_mut().and_then(|root| {
        root.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
    });
    if let Some(metadata) = metadata {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// Records a write that is not an apply (an Update operation): every manager loses the fields
/// whose value the write changed or removed, and the writer owns those it set.
pub fn record_update(old: &Value, new: &mut Value, request: &ApplyRequest<'_>) {
    let mut entries = read_entries(new);
    let changed: BTreeSet<FieldPath> = leaf_paths(new)
        .into_iter()
        .filter(|path| value_at(old, path) != value_at(new, path))
        .collect();
    for entry in &mut entries {
        entry
            .paths
            .retain(|path| value_at(old, path) == value_at(new, path));
    }
    if !changed.is_empty() && !request.manager.is_empty() {
        let position = entries.iter().position(|entry| {
            entry.manager == request.manager
                && entry.operation == "Update"
                && entry.subresource == request.subresource
        });
        let entry = match position {
            Some(index) => &mut entries[index],
            None => {
                entries.push(ManagedEntry {
                    manager: request.manager.to_string(),
                    operation: "Update".to_string(),
                    subresource: request.subresource.to_string(),
                    api_version: String::new(),
                    time: String::new(),
                    paths: BTreeSet::new(),
                });
                let last = entries.len() - 1;
                &mut entries[last]
            }
        };
        entry.paths.extend(changed);
        entry.api_version = request.api_version.to_string();
        entry.time = request.now.to_string();
    }
    write_entries(new, &entries);
}

/// Who applies, and how.
pub struct ApplyRequest<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// Whether to take over conflicting fields.
    pub force: bool,
    /// `status` when applying to the status subresource, empty otherwise.
    pub subresource: &'a str,
    /// The apiVersion recorded in the managed fields entry.
    pub api_version: &'a str,
    /// The time recorded in the managed fields entry.
    pub now: &'a str,
}

/// A field another manager owns with a different value: (manager, `.dotted.path`).
pub type Conflict = (String, String);

/// Applies `config` to `live` (an empty object when creating) and returns the new object, or the
/// conflicts with other managers.
pub fn apply(
    live: &Value,
    config: &Value,
    request: &ApplyRequest<'_>,
) -> Result<Value, Vec<Conflict>> {
    let applied = leaf_paths(config);
    let mut entries = read_entries(live);
    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|entry| {
        !(entry.operation == "Apply"
            && entry.manager == request.manager
            && entry.subresource == request.subresource)
    }) {
        let taken: Vec<FieldPath> = entry
            .paths
            .iter()
            .filter(|owned| {
                applied
                    .iter()
                    .any(|path| conflicts_with(path, owned, live, config))
            })
            .cloned()
            .collect();
        if request.force {
            for path in &taken {
                entry.paths.remove(path);
            }
        } else {
            conflicts.extend(
                taken
                    .into_iter()
                    .map(|path| (entry.manager.clone(), format!(".{}", path.join(".")))),
            );
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    merge_config(&mut merged, config);
    let previous = entries
        .iter()
        .position(|entry| {
            entry.manager == request.manager
                && entry.subresource == request.subresource
                && entry.operation == "Apply"
        })
        .map(|index| entries.remove(index));
    if let Some(previous) = previous {
        for dropped in previous.paths.difference(&applied) {
            let still_owned = applied.iter().any(|path| covers(path, dropped, &merged))
                || entries.iter().any(|entry| {
                    entry
                        .paths
                        .iter()
                        .any(|owned| covers(owned, dropped, &merged))
                });
            if !still_owned {
                remove_at(&mut merged, dropped);
            }
        }
    }
    entries.push(ManagedEntry {
        manager: request.manager.to_string(),
        operation: "Apply".to_string(),
        subresource: request.subresource.to_string(),
        api_version: request.api_version.to_string(),
        time: request.now.to_string(),
        paths: applied,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            subresource: "",
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn fields_round_trip_through_the_fields_v1_encoding() {
        let paths = leaf_paths(
            &json!({"spec": {"a": 1, "b": {"c": [1]}}, "metadata": {"name": "x", "labels": {"l": "v"}}}),
        );
        assert_eq!(decode_fields(&encode_fields(&paths)), paths);
        assert!(paths.contains(&vec!["metadata".to_string(), "labels".into(), "l".into()]));
        assert!(!paths.iter().any(|p| p.last().is_some_and(|s| s == "name")));
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced() {
        let first = apply(
            &json!({}),
            &json!({"spec": {"a": 1}}),
            &request("one", false),
        )
        .unwrap();
        let conflicts =
            apply(&first, &json!({"spec": {"a": 2}}), &request("two", false)).unwrap_err();
        assert_eq!(conflicts, vec![("one".to_string(), ".spec.a".to_string())]);
        let forced = apply(&first, &json!({"spec": {"a": 2}}), &request("two", true)).unwrap();
        assert_eq!(forced["spec"]["a"], 2);
        // The same value is shared ownership, not a conflict.
        assert!(apply(&first, &json!({"spec": {"a": 1}}), &request("two", false)).is_ok());
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_someone_else_owns_them() {
        let first = apply(
            &json!({}),
            &json!({"spec": {"a": 1, "b": 2}}),
            &request("one", false),
        )
        .unwrap();
        let shared = apply(&first, &json!({"spec": {"b": 2}}), &request("two", false)).unwrap();
        let dropped = apply(&shared, &json!({"spec": {}}), &request("one", false)).unwrap();
        assert_eq!(dropped["spec"], json!({"b": 2}));
    }
}
