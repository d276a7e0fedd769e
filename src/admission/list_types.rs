//! The invariants of `x-kubernetes-list-type: set` and `map` lists, which the API server checks
//! after the schema: no item of a set twice, no two items of a map list with the same keys.

use serde_json::{Map, Value};

use super::field_error::{FieldError, FieldErrorKind, child_path, subscript_path};
use super::structural::{child_schema, items_schema};

/// Every duplicate item in the `set` and `map` lists of `value`.
pub fn validate(schema: &Value, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    visit(schema, value, "", &mut errors);
    errors
}

fn visit(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                if let Some(field_schema) = child_schema(schema, name) {
                    visit(field_schema, field, &child_path(path, name), errors);
                }
            }
        }
        Value::Array(items) => {
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => duplicates(items, path, Clone::clone, errors),
                Some("map") => {
                    let keys: Vec<&str> = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of = |item: &Value| {
                        let key: Map<String, Value> = keys
                            .iter()
                            .filter_map(|key| {
                                item.get(*key)
                                    .map(|value| ((*key).to_owned(), value.clone()))
                            })
                            .collect();
                        Value::Object(key)
                    };
                    duplicates(items, path, key_of, errors);
                }
                _ => {}
            }
            if let Some(item_schema) = items_schema(schema) {
                for (index, item) in items.iter().enumerate() {
                    visit(
                        item_schema,
                        item,
                        &subscript_path(path, &index.to_string()),
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

fn duplicates(
    items: &[Value],
    path: &str,
    identity: impl Fn(&Value) -> Value,
    errors: &mut Vec<FieldError>,
) {
    let identities: Vec<Value> = items.iter().map(identity).collect();
    for (index, current) in identities.iter().enumerate() {
        if identities[..index].contains(current) {
            errors.push(FieldError::new(
                subscript_path(path, &index.to_string()),
                FieldErrorKind::Duplicate,
                Some(current.clone()),
                "",
            ));
        }
    }
}
