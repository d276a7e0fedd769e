//! The CEL rules (`x-kubernetes-validations`) of a schema, evaluated with kube-cel the way the
//! API server evaluates them.
//!
//! Each schema node's rules are compiled once, against that node alone, and evaluated with `self`
//! bound to the node's value. The walk follows the API server's: rules do not run on `null`
//! values; `oldSelf` exists only where the old object has a value the new one can be matched
//! with (object fields, map entries, and items of `x-kubernetes-list-type: map` lists by their
//! keys), so transition rules run only on update and only there; a rule without `oldSelf` whose
//! node did not change is not enforced on update (validation ratcheting).

use std::collections::BTreeMap;

use kube_cel::{CompiledSchema, ErrorKind};
use serde_json::Value;

use super::field_error::{FieldError, FieldErrorKind, child_path, subscript_path};
use super::structural::items_schema;

/// The rules of one schema node and of everything below it.
#[derive(Debug)]
pub struct RuleTree {
    node_type: String,
    schema: Value,
    compiled: Option<CompiledSchema>,
    properties: BTreeMap<String, RuleTree>,
    additional_properties: Option<Box<RuleTree>>,
    items: Option<Box<RuleTree>>,
    list_map_keys: Option<Vec<String>>,
}

/// Compiles every rule under `schema`; `None` when there are none.
pub fn compile(schema: &Value) -> Result<Option<RuleTree>, String> {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .filter_map(|(name, child)| match compile(child) {
                    Ok(Some(tree)) => Some(Ok((name.clone(), tree))),
                    Ok(None) => None,
                    Err(error) => Some(Err(error)),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let additional_properties = match schema
        .get("additionalProperties")
        .filter(|additional| additional.is_object())
    {
        Some(additional) => compile(additional)?.map(Box::new),
        None => None,
    };
    let items = match items_schema(schema) {
        Some(items) => compile(items)?.map(Box::new),
        None => None,
    };
    let has_rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|rules| !rules.is_empty());
    if !has_rules && properties.is_empty() && additional_properties.is_none() && items.is_none() {
        return Ok(None);
    }
    let compiled = if has_rules {
        let node_schema = without_nested_rules(schema);
        let compiled = kube_cel::compile_schema(&node_schema);
        check_compiled(&compiled)?;
        Some(compiled)
    } else {
        None
    };
    let list_map_keys =
        (schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map")).then(|| {
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        });
    Ok(Some(RuleTree {
        node_type: schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        schema: schema.clone(),
        compiled,
        properties,
        additional_properties,
        items,
        list_map_keys,
    }))
}

/// The node's schema with the rules of its fields, map values and items removed: those are
/// evaluated at their own nodes, where `self` is bound to their own values.
fn without_nested_rules(schema: &Value) -> Value {
    fn strip(schema: &mut Value) {
        if let Some(node) = schema.as_object_mut() {
            node.remove("x-kubernetes-validations");
        }
        descend(schema);
    }
    fn descend(schema: &mut Value) {
        let Some(node) = schema.as_object_mut() else {
            return;
        };
        if let Some(Value::Object(properties)) = node.get_mut("properties") {
            properties.values_mut().for_each(strip);
        }
        for keyword in ["additionalProperties", "items"] {
            if let Some(child) = node.get_mut(keyword) {
                strip(child);
            }
        }
    }
    let mut node = schema.clone();
    descend(&mut node);
    node
}

fn check_compiled(compiled: &CompiledSchema) -> Result<(), String> {
    if let Some(error) = compiled.compilation_errors().first() {
        return Err(error.to_string());
    }
    for branch in compiled
        .all_of
        .iter()
        .chain(&compiled.any_of)
        .chain(&compiled.one_of)
    {
        check_compiled(branch)?;
    }
    Ok(())
}

/// Where a node stands for ratcheting: its old value when it can be matched with one, otherwise
/// whether the nearest ancestor that can be matched is unchanged.
#[derive(Clone, Copy)]
enum Old<'object> {
    Matched(Option<&'object Value>),
    Unmatched { ancestor_unchanged: bool },
}

/// Evaluates every rule under `tree` against `object` (and `old` on update).
pub fn evaluate(tree: &RuleTree, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let old = match old {
        Some(old) => Old::Matched(Some(old)),
        None => Old::Unmatched {
            ancestor_unchanged: false,
        },
    };
    walk(tree, object, old, "", &mut errors);
    errors
}

fn walk(tree: &RuleTree, value: &Value, old: Old<'_>, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        return;
    }
    let old_value = match old {
        Old::Matched(old_value) => old_value.filter(|old_value| !old_value.is_null()),
        Old::Unmatched { .. } => None,
    };
    let unchanged = match old {
        Old::Matched(old_value) => old_value == Some(value),
        Old::Unmatched { ancestor_unchanged } => ancestor_unchanged,
    };
    if let Some(compiled) = &tree.compiled {
        evaluate_node(tree, compiled, value, old_value, unchanged, path, errors);
    }
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let child = tree.properties.get(name).or_else(|| {
                    tree.additional_properties
                        .as_deref()
                        .filter(|_| !tree.properties.contains_key(name))
                });
                let Some(child) = child else {
                    continue;
                };
                let child_path = if tree.properties.contains_key(name) {
                    child_path(path, name)
                } else {
                    subscript_path(path, name)
                };
                let old_field = match old {
                    Old::Matched(_) => {
                        Old::Matched(old_value.and_then(|old_value| old_value.get(name)))
                    }
                    Old::Unmatched { .. } => Old::Unmatched {
                        ancestor_unchanged: unchanged,
                    },
                };
                walk(child, field, old_field, &child_path, errors);
            }
        }
        Value::Array(items) => {
            let Some(item_tree) = tree.items.as_deref() else {
                return;
            };
            for (index, item) in items.iter().enumerate() {
                let old_item = match (&tree.list_map_keys, old) {
                    (Some(keys), Old::Matched(_)) => Old::Matched(
                        old_value
                            .and_then(Value::as_array)
                            .and_then(|old_items| matching_item(old_items, item, keys)),
                    ),
                    _ => Old::Unmatched {
                        ancestor_unchanged: unchanged,
                    },
                };
                walk(
                    item_tree,
                    item,
                    old_item,
                    &subscript_path(path, &index.to_string()),
                    errors,
                );
            }
        }
        _ => {}
    }
}

/// The item of an `x-kubernetes-list-type: map` list with the same keys as `item`.
fn matching_item<'old>(
    old_items: &'old [Value],
    item: &Value,
    keys: &[String],
) -> Option<&'old Value> {
    old_items
        .iter()
        .find(|old_item| keys.iter().all(|key| old_item.get(key) == item.get(key)))
}

fn evaluate_node(
    tree: &RuleTree,
    compiled: &CompiledSchema,
    value: &Value,
    old_value: Option<&Value>,
    unchanged: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Err(failures) = kube_cel::validate_compiled(compiled, value, old_value) else {
        return;
    };
    for failure in failures {
        let uses_old_self = failure.rule.contains("oldSelf");
        if unchanged && !uses_old_self {
            continue;
        }
        let field = join_rule_field_path(&tree.schema, path, &failure.field_path);
        let shown_value = match tree.node_type.as_str() {
            "object" | "array" => None,
            _ => Some(value.clone()),
        };
        let error = match failure.kind {
            ErrorKind::ValidationFailure => match failure.reason.as_deref() {
                Some("FieldValueForbidden") => {
                    FieldError::new(field, FieldErrorKind::Forbidden, None, failure.message)
                }
                Some("FieldValueRequired") => {
                    FieldError::new(field, FieldErrorKind::Required, None, failure.message)
                }
                Some("FieldValueDuplicate") => {
                    FieldError::new(field, FieldErrorKind::Duplicate, shown_value, "")
                }
                _ => FieldError::new(field, FieldErrorKind::Invalid, shown_value, failure.message),
            },
            _ => {
                let cause = std::error::Error::source(&failure)
                    .map_or_else(|| failure.message.clone(), ToString::to_string);
                FieldError::new(
                    field,
                    FieldErrorKind::Invalid,
                    Some(Value::String(tree.node_type.clone())),
                    format!("{cause} evaluating rule: {}", failure.rule.trim()),
                )
            }
        };
        errors.push(error);
    }
}

/// The field path of a failed rule: the node's path, followed by the rule's `fieldPath` (a
/// JSONPath such as `.kmsKeyId` or `['a.b']`) the way the API server turns it into field-path
/// segments, `.name` for declared fields and `[key]` for map keys.
fn join_rule_field_path(schema: &Value, path: &str, rule_field_path: &str) -> String {
    let mut joined = path.to_owned();
    let mut schema = Some(schema);
    let normalized = match rule_field_path.trim() {
        relative if !relative.is_empty() && !relative.starts_with(['.', '[']) => {
            format!(".{relative}")
        }
        relative => relative.to_owned(),
    };
    let mut rest = normalized.as_str();
    while !rest.is_empty() {
        let (name, remainder) = if let Some(after_dot) = rest.strip_prefix('.') {
            let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
            (after_dot[..end].to_owned(), &after_dot[end..])
        } else if let Some(after_bracket) = rest.strip_prefix("['") {
            let end = after_bracket.find("']").unwrap_or(after_bracket.len());
            let remainder = after_bracket.get(end + 2..).unwrap_or_default();
            (after_bracket[..end].replace("\\'", "'"), remainder)
        } else {
            joined.push_str(rest);
            break;
        };
        let declared = schema
            .and_then(|node| node.get("properties"))
            .and_then(|properties| properties.get(&name));
        if let Some(declared) = declared {
            joined = child_path(&joined, &name);
            schema = Some(declared);
        } else {
            joined = subscript_path(&joined, &name);
            schema = schema.and_then(|node| node.get("additionalProperties"));
        }
        rest = remainder;
    }
    joined
}
