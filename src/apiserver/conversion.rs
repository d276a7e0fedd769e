//! The versions of one stored object: every resource presents its objects with its own
//! apiVersion, and `events.k8s.io/v1` Events are the core v1 Events under other field names, as
//! in a real cluster (one storage, two views); and the metadata-only view.

use serde_json::{Map, Value};

use super::resources::ResourceType;

/// `events.k8s.io/v1` field names and the core v1 names they are stored under.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn is_events_view(resource: &ResourceType) -> bool {
    resource.group == "events.k8s.io" && resource.plural == "events"
}

fn rename(object: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let mut renamed = Map::new();
    for (from, to) in pairs {
        if let Some(value) = map.remove(from) {
            renamed.insert(to.to_string(), value);
        }
    }
    map.extend(renamed);
}

/// The object as this resource's clients see it.
pub fn present(resource: &ResourceType, stored: &Value) -> Value {
    let mut object = stored.clone();
    if is_events_view(resource) {
        rename(
            &mut object,
            EVENT_FIELDS.iter().map(|(view, core)| (*core, *view)),
        );
    }
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(resource.api_version()));
        map.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    object
}

/// The object as it is stored, from what a client of this resource sent.
pub fn to_storage(resource: &ResourceType, received: Value) -> Value {
    let mut object = received;
    if is_events_view(resource) {
        rename(&mut object, EVENT_FIELDS.iter().copied());
    }
    object
}

/// An object reduced to its metadata, as `PartialObjectMetadata`.
pub fn partial(object: &Value) -> Value {
    serde_json::json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;
    use serde_json::json;

    #[test]
    fn events_v1_fields_are_the_core_fields_under_other_names() {
        let registry = Registry::with_builtins();
        let events = registry.get("events.k8s.io", "v1", "events").unwrap();
        let core = registry.get("", "v1", "events").unwrap();
        let sent = json!({"note": "created", "regarding": {"name": "w"}, "reason": "Created"});
        let stored = to_storage(events, sent);
        assert_eq!(stored["message"], "created");
        assert_eq!(stored["involvedObject"]["name"], "w");
        let as_core = present(core, &stored);
        assert_eq!(as_core["apiVersion"], "v1");
        assert_eq!(as_core["message"], "created");
        let as_events = present(events, &stored);
        assert_eq!(as_events["apiVersion"], "events.k8s.io/v1");
        assert_eq!(as_events["note"], "created");
        assert_eq!(as_events["reason"], "Created");
    }
}
