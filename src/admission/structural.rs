//! What the API server does to an object before validating it: structural pruning of unknown
//! fields, dropping of explicit nulls the schema does not allow, and structural defaulting.
//!
//! Pruning keeps only fields the schema declares, except under
//! `x-kubernetes-preserve-unknown-fields: true` and the root's (or an embedded resource's)
//! `apiVersion`, `kind` and `metadata`. A `null` for a field that is not `nullable` is replaced by
//! the field's `default` if it has one, and removed otherwise. Defaults fill missing fields of
//! objects that exist, recursively, so a defaulted object gets its own fields' defaults too.

use serde_json::{Map, Value};

use super::field_error::{child_path, subscript_path};

/// Fields every object keeps at the root and in embedded resources, whatever the schema says.
const TYPE_AND_OBJECT_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes, drops disallowed nulls and applies defaults to a whole custom resource. Returns the
/// paths of the fields it pruned because the schema does not declare them (`spec.foo`).
pub fn prune_and_default(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    visit(schema, object, true, "", &mut pruned);
    pruned
}

/// Whether a schema node is marked with the boolean extension `name`.
pub fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The schema of the named child of an object node: a declared property or the
/// `additionalProperties` schema of a map.
pub fn child_schema<'schema>(schema: &'schema Value, name: &str) -> Option<&'schema Value> {
    schema
        .get("properties")
        .and_then(|properties| properties.get(name))
        .or_else(|| {
            schema
                .get("additionalProperties")
                .filter(|additional| additional.is_object())
        })
}

/// The schema of the items of an array node.
pub fn items_schema(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|items| items.is_object())
}

fn visit(
    schema: &Value,
    value: &mut Value,
    keeps_object_meta: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(fields) => visit_object(schema, fields, keeps_object_meta, path, pruned),
        Value::Array(items) => {
            if let Some(item_schema) = items_schema(schema) {
                let embedded = flag(item_schema, "x-kubernetes-embedded-resource");
                for (index, item) in items.iter_mut().enumerate() {
                    let item_path = subscript_path(path, &index.to_string());
                    visit(item_schema, item, embedded, &item_path, pruned);
                }
            }
        }
        _ => {}
    }
}

fn visit_object(
    schema: &Value,
    fields: &mut Map<String, Value>,
    keeps_object_meta: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let additional_schema = additional.filter(|additional| additional.is_object());
    let keeps_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields")
        || additional.and_then(Value::as_bool) == Some(true)
        || additional_schema.is_some();
    let is_object_meta = |name: &str| keeps_object_meta && TYPE_AND_OBJECT_META.contains(&name);

    if !keeps_unknown {
        fields.retain(|name, _| {
            let known = is_object_meta(name)
                || properties.is_some_and(|declared| declared.contains_key(name));
            if !known {
                pruned.push(child_path(path, name));
            }
            known
        });
    }

    if let Some(declared) = properties {
        for (name, property) in declared {
            if keeps_object_meta && name == "metadata" {
                continue;
            }
            let default = property.get("default");
            match fields.get(name) {
                None => {
                    if let Some(default) = default {
                        fields.insert(name.clone(), default.clone());
                    }
                }
                Some(Value::Null) if !flag(property, "nullable") => match default {
                    Some(default) => {
                        fields.insert(name.clone(), default.clone());
                    }
                    None => {
                        fields.remove(name);
                    }
                },
                Some(_) => {}
            }
        }
    }
    if let Some(additional_schema) = additional_schema
        && !flag(additional_schema, "nullable")
    {
        let declared = |name: &str| properties.is_some_and(|declared| declared.contains_key(name));
        fields.retain(|name, value| declared(name) || is_object_meta(name) || !value.is_null());
    }

    for (name, child) in fields.iter_mut() {
        // The API server validates the root's metadata itself; this validator leaves it alone.
        if is_object_meta(name) && name == "metadata" {
            continue;
        }
        let declared = properties.and_then(|declared| declared.get(name));
        if let Some(child_schema) = declared.or(additional_schema) {
            let embedded = flag(child_schema, "x-kubernetes-embedded-resource");
            visit(
                child_schema,
                child,
                embedded,
                &child_path(path, name),
                pruned,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::prune_and_default;

    fn schema() -> serde_json::Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string", "default": "R4"},
                        "nested": {
                            "type": "object",
                            "default": {},
                            "properties": {"policy": {"type": "string", "default": "Delete"}}
                        },
                        "optional": {"type": "string", "nullable": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    #[test]
    fn unknown_fields_are_pruned_but_object_meta_and_preserved_fields_stay() {
        let mut object = json!({
            "apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x", "anything": 1},
            "extra": true,
            "spec": {"bogus": 1, "labels": {"a": "b"}, "free": {"any": {"thing": 1}}}
        });
        let pruned = prune_and_default(&schema(), &mut object);
        assert_eq!(pruned, ["extra", "spec.bogus"]);
        assert_eq!(object["metadata"], json!({"name": "x", "anything": 1}));
        assert!(object.get("extra").is_none());
        assert!(object["spec"].get("bogus").is_none());
        assert_eq!(object["spec"]["labels"], json!({"a": "b"}));
        assert_eq!(object["spec"]["free"], json!({"any": {"thing": 1}}));
    }

    #[test]
    fn defaults_apply_recursively_and_replace_disallowed_nulls() {
        let mut object = json!({"spec": {"version": null, "optional": null}});
        prune_and_default(&schema(), &mut object);
        assert_eq!(object["spec"]["version"], "R4");
        assert_eq!(object["spec"]["nested"], json!({"policy": "Delete"}));
        assert_eq!(object["spec"]["optional"], serde_json::Value::Null);
    }

    #[test]
    fn missing_parents_get_no_defaults() {
        let mut object = json!({"apiVersion": "a/v1"});
        prune_and_default(&schema(), &mut object);
        assert_eq!(object, json!({"apiVersion": "a/v1"}));
    }
}
