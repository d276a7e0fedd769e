//! `meta.k8s.io/v1 Table` answers for kubectl's `get`, with a CRD's printer columns.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// One step of a printer column's JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse_json_path(path: &str) -> Vec<Step> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                steps.push(Step::Field(after[..end].to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            let inside = &after[..end];
            if inside == "*" {
                steps.push(Step::All);
            } else if let Ok(index) = inside.parse() {
                steps.push(Step::Index(index));
            } else if let Some(filter) = inside
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                if let Some((field, value)) = filter.split_once("==") {
                    let value = value.trim().trim_matches(['"', '\'']);
                    steps.push(Step::Filter(field.trim().to_string(), value.to_string()));
                }
            } else {
                let field = inside.trim_matches(['"', '\'']);
                steps.push(Step::Field(field.to_string()));
            }
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    steps
}

/// Evaluates a simple JSONPath (fields, indexes, `[*]`, `[?(@.field=="value")]`).
pub fn evaluate(object: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![object.clone()];
    for step in parse_json_path(path) {
        current = current
            .into_iter()
            .flat_map(|value| match &step {
                Step::Field(name) => value.get(name).cloned().into_iter().collect::<Vec<_>>(),
                Step::Index(index) => value.get(index).cloned().into_iter().collect(),
                Step::All => value.as_array().cloned().unwrap_or_default(),
                Step::Filter(field, expected) => value
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter(|item| {
                                item.get(field).is_some_and(|v| match v {
                                    Value::String(text) => text == expected,
                                    other => expected.as_str() == other.to_string().as_str(),
                                })
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
    }
    current
}

/// A duration as kubectl shows ages: `45s`, `3m2s`, `5h`, `12d`.
pub fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        if seconds % 60 == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{}s", seconds % 60)
        }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        if minutes % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", minutes % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        if hours % 24 == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{}h", hours % 24)
        }
    } else {
        format!("{days}d")
    }
}

fn age(timestamp: &str) -> Option<String> {
    let then: jiff::Timestamp = timestamp.parse().ok()?;
    let seconds = jiff::Timestamp::now().as_second() - then.as_second();
    Some(human_duration(seconds))
}

struct Column {
    name: String,
    kind: String,
    format: String,
    description: String,
    priority: i32,
    json_path: String,
}

fn columns(resource: &ResourceType) -> Vec<Column> {
    let mut columns = vec![Column {
        name: "Name".into(),
        kind: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    }];
    if resource.printer_columns.is_empty() {
        if resource.plural == "namespaces" {
            columns.push(Column {
                name: "Status".into(),
                kind: "string".into(),
                format: String::new(),
                description: "The phase of the namespace.".into(),
                priority: 0,
                json_path: ".status.phase".into(),
            });
        }
        if resource.plural == "events" {
            let (object, message) = if resource.group.is_empty() {
                (".involvedObject.name", ".message")
            } else {
                (".regarding.name", ".note")
            };
            for (name, json_path) in [
                ("Type", ".type"),
                ("Reason", ".reason"),
                ("Object", object),
                ("Message", message),
            ] {
                columns.push(Column {
                    name: name.into(),
                    kind: "string".into(),
                    format: String::new(),
                    description: format!("The event's {}.", name.to_lowercase()),
                    priority: 0,
                    json_path: json_path.into(),
                });
            }
        }
        if resource.plural == "leases" {
            columns.push(Column {
                name: "Holder".into(),
                kind: "string".into(),
                format: String::new(),
                description: "The current holder of the lease.".into(),
                priority: 0,
                json_path: ".spec.holderIdentity".into(),
            });
        }
        columns.push(Column {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "The time since the object was created.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    } else {
        columns.extend(resource.printer_columns.iter().map(|column| Column {
            name: column.name.clone(),
            kind: column.type_.clone(),
            format: column.format.clone().unwrap_or_default(),
            description: column.description.clone().unwrap_or_default(),
            priority: column.priority.unwrap_or(0),
            json_path: column.json_path.clone(),
        }));
    }
    columns
}

fn cell(column: &Column, object: &Value) -> Value {
    let values = evaluate(object, &column.json_path);
    if values.is_empty() {
        return Value::Null;
    }
    if column.kind == "date"
        && let Some(text) = values.first().and_then(Value::as_str)
    {
        return age(text).map(Value::String).unwrap_or(Value::Null);
    }
    if values.len() == 1 {
        return match &values[0] {
            Value::Object(_) | Value::Array(_) => Value::String(values[0].to_string()),
            other => other.clone(),
        };
    }
    let joined: Vec<String> = values
        .iter()
        .map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect();
    Value::String(joined.join(","))
}

/// The Table for `objects`; `include_object` is `None`, `Metadata` (the default) or `Object`.
pub fn to_table(
    resource: &ResourceType,
    objects: &[Value],
    include_object: &str,
    list_metadata: Value,
) -> Value {
    let columns = columns(resource);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|column| {
            json!({
                "name": column.name,
                "type": column.kind,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|column| cell(column, object)).collect();
            let embedded = match include_object {
                "None" => Value::Null,
                "Object" => object.clone(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({"cells": cells, "object": embedded})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_follow_fields_indexes_and_filters() {
        let object = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True"}
        ], "id": 7}});
        assert_eq!(evaluate(&object, ".status.id"), vec![json!(7)]);
        assert_eq!(
            evaluate(&object, ".status.conditions[1].type"),
            vec![json!("Ready")]
        );
        assert_eq!(
            evaluate(&object, r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![json!("True")]
        );
        assert!(evaluate(&object, ".spec.missing").is_empty());
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86_400 * 20), "20d");
    }

    proptest::proptest! {
        #[test]
        fn any_json_path_evaluates_without_panicking(path in ".{0,40}") {
            let object = json!({"status": {"conditions": [{"type": "Ready"}]}});
            let _ = evaluate(&object, &path);
        }
    }
}
