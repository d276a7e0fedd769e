//! `meta.k8s.io/v1 Table` answers for kubectl's `get`, with a CRD's printer columns.

use serde_json::{Value, json};

use super::conversion;
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

/// The time since a timestamp field of `object`, or `None` when it is absent, null or unreadable
/// (a zero time to a real server).
fn age_of(object: &Value, pointer: &str) -> Option<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(age)
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

/// Whether the resource is one of the two views of the built-in Events.
fn is_event(resource: &ResourceType) -> bool {
    resource.plural == "events"
        && resource.crd_name.is_none()
        && (resource.group.is_empty() || resource.group == "events.k8s.io")
}

/// The columns a real API server's Event printer declares (priority 1 shows with `-o wide`).
const EVENT_COLUMNS: [(&str, &str, i32, &str); 10] = [
    (
        "Last Seen",
        "",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    ("Type", "", 0, "Type of this event (Normal, Warning)."),
    (
        "Reason",
        "",
        0,
        "The reason for the transition into the object's current status.",
    ),
    ("Object", "", 0, "The object that this event is about."),
    (
        "Subobject",
        "",
        1,
        "The part of the object this event is about (fieldPath).",
    ),
    ("Source", "", 1, "The component reporting this event."),
    (
        "Message",
        "",
        0,
        "A human-readable description of the status of this operation.",
    ),
    (
        "First Seen",
        "",
        1,
        "The time at which the event was first recorded.",
    ),
    (
        "Count",
        "",
        1,
        "The number of times this event has occurred.",
    ),
    ("Name", "name", 1, "Name must be unique within a namespace."),
];

/// One Event's cells, as a real API server's Event printer computes them from the core v1
/// fields: times fall back from firstTimestamp to eventTime and from lastTimestamp to the
/// first time, a series gives the last time and the count, and the object reads `kind/name`.
fn event_cells(resource: &ResourceType, object: &Value) -> Vec<Value> {
    let event = conversion::to_storage(resource, object.clone());
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let unknown = || "<unknown>".to_string();
    let first_seen = age_of(&event, "/firstTimestamp")
        .or_else(|| age_of(&event, "/eventTime"))
        .unwrap_or_else(unknown);
    let mut last_seen = age_of(&event, "/lastTimestamp").unwrap_or_else(|| first_seen.clone());
    let mut count = event.get("count").and_then(Value::as_i64).unwrap_or(0);
    if event.get("series").is_some_and(Value::is_object) {
        last_seen = age_of(&event, "/series/lastObservedTime").unwrap_or_else(unknown);
        count = event
            .pointer("/series/count")
            .and_then(Value::as_i64)
            .unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = text("/involvedObject/kind").to_lowercase();
    let target_name = text("/involvedObject/name");
    let target = if target_name.is_empty() {
        kind
    } else {
        format!("{kind}/{target_name}")
    };
    let component = Some(text("/source/component"))
        .filter(|component| !component.is_empty())
        .unwrap_or_else(|| text("/reportingComponent"));
    let instance = Some(text("/source/host"))
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| text("/reportingInstance"));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last_seen),
        json!(text("/type")),
        json!(text("/reason")),
        json!(target),
        json!(text("/involvedObject/fieldPath")),
        json!(source),
        json!(text("/message").trim()),
        json!(first_seen),
        json!(count),
        json!(text("/metadata/name")),
    ]
}

/// The Table for `objects`; `include_object` is `None`, `Metadata` (the default) or `Object`.
pub fn to_table(
    resource: &ResourceType,
    objects: &[Value],
    include_object: &str,
    list_metadata: Value,
) -> Value {
    let columns = if is_event(resource) {
        EVENT_COLUMNS
            .iter()
            .map(|(name, format, priority, description)| Column {
                name: (*name).into(),
                kind: "string".into(),
                format: (*format).into(),
                description: (*description).into(),
                priority: *priority,
                json_path: String::new(),
            })
            .collect()
    } else {
        columns(resource)
    };
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
            let cells: Vec<Value> = if is_event(resource) {
                event_cells(resource, object)
            } else {
                columns.iter().map(|column| cell(column, object)).collect()
            };
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
