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

/// Fields a real API server always writes for a core v1 Event, with the value it writes when
/// the event has none: Go serialises a zero `metav1.Time` as `null` (omitempty does not omit
/// structs) and `reportingComponent`/`reportingInstance` have no omitempty. kubectl relies on
/// it: `--sort-by=.lastTimestamp` fails (and prints "No resources found") when no listed event
/// has the field at all, which is the case for every event written through events.k8s.io/v1.
const CORE_EVENT_DEFAULTS: [(&str, Defaulted); 7] = [
    ("involvedObject", Defaulted::EmptyObject),
    ("source", Defaulted::EmptyObject),
    ("firstTimestamp", Defaulted::Null),
    ("lastTimestamp", Defaulted::Null),
    ("eventTime", Defaulted::Null),
    ("reportingComponent", Defaulted::EmptyString),
    ("reportingInstance", Defaulted::EmptyString),
];

/// The same for an `events.k8s.io/v1` Event.
const EVENTS_V1_DEFAULTS: [(&str, Defaulted); 5] = [
    ("regarding", Defaulted::EmptyObject),
    ("deprecatedSource", Defaulted::EmptyObject),
    ("deprecatedFirstTimestamp", Defaulted::Null),
    ("deprecatedLastTimestamp", Defaulted::Null),
    ("eventTime", Defaulted::Null),
];

#[derive(Clone, Copy)]
enum Defaulted {
    Null,
    EmptyObject,
    EmptyString,
}

impl Defaulted {
    fn value(self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::EmptyObject => Value::Object(Map::new()),
            Self::EmptyString => Value::String(String::new()),
        }
    }
}

fn is_events_view(resource: &ResourceType) -> bool {
    resource.group == "events.k8s.io" && resource.plural == "events"
}

fn is_core_event(resource: &ResourceType) -> bool {
    resource.group.is_empty() && resource.plural == "events"
}

fn fill_defaults(object: &mut Value, defaults: &[(&str, Defaulted)]) {
    if let Some(map) = object.as_object_mut() {
        for (field, default) in defaults {
            map.entry(*field).or_insert_with(|| default.value());
        }
    }
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
        fill_defaults(&mut object, &EVENTS_V1_DEFAULTS);
    } else if is_core_event(resource) {
        fill_defaults(&mut object, &CORE_EVENT_DEFAULTS);
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

    #[test]
    fn events_show_the_fields_a_real_server_always_writes() {
        let registry = Registry::with_builtins();
        let events = registry.get("events.k8s.io", "v1", "events").unwrap();
        let core = registry.get("", "v1", "events").unwrap();
        let stored = to_storage(
            events,
            json!({"note": "created", "eventTime": "2026-01-01T00:00:00.000000Z"}),
        );
        let as_core = present(core, &stored);
        assert_eq!(as_core["lastTimestamp"], Value::Null);
        assert!(as_core.as_object().unwrap().contains_key("lastTimestamp"));
        assert_eq!(as_core["source"], json!({}));
        assert_eq!(as_core["reportingComponent"], "");
        assert_eq!(as_core["eventTime"], "2026-01-01T00:00:00.000000Z");
        let as_events = present(events, &stored);
        assert!(
            as_events
                .as_object()
                .unwrap()
                .contains_key("deprecatedLastTimestamp")
        );
        assert_eq!(as_events["deprecatedSource"], json!({}));
        assert!(
            !as_events
                .as_object()
                .unwrap()
                .contains_key("reportingComponent")
        );
    }
}
