//! The structural OpenAPI checks (type, required, enum, pattern, lengths, bounds), run by the
//! `jsonschema` crate and reported as the API server's kube-openapi validator reports them.
//!
//! The CRD's `openAPIV3Schema` is OpenAPI 3.0, whose numeric keywords are JSON Schema draft 4's
//! (`exclusiveMinimum` is a boolean), so it is checked as draft 4 after the Kubernetes extensions
//! are turned into plain JSON Schema: `nullable` adds `null` to the type, and
//! `x-kubernetes-int-or-string` allows integers and strings. `pattern` is checked by a keyword of
//! our own with RE2 semantics (see [`super::re2`]); formats are not checked.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Keyword, ValidationError};
use serde_json::{Map, Value, json};

use super::field_error::{
    FieldError, FieldErrorKind, child_path, go_float, go_number, go_quote, subscript_path,
};
use super::re2;
use super::structural::{child_schema, flag, items_schema};

/// The keyword the translated schema uses for an RE2 `pattern`.
const RE2_PATTERN: &str = "x-kubernetes-re2-pattern";

/// Keywords that carry over from OpenAPI 3.0 to draft 4 unchanged.
const PLAIN_KEYWORDS: [&str; 16] = [
    "type",
    "enum",
    "required",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "format",
];

/// Compiles a CRD version's `openAPIV3Schema` into a JSON-schema validator.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    let translated = translate(schema);
    jsonschema::draft4::options()
        .should_validate_formats(false)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .with_keyword(RE2_PATTERN, re2_pattern_keyword)
        .build(&translated)
        .map_err(|error| error.to_string())
}

/// Every structural error in `object`, as field errors. On update, errors in parts of the object
/// that did not change are dropped, as the API server's validation ratcheting does.
pub fn validate(
    validator: &jsonschema::Validator,
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    validator
        .iter_errors(object)
        .filter(|error| !unchanged_since(object, old, error.instance_path().as_str()))
        .map(|error| field_error(schema, object, error.instance_path().as_str(), error.kind()))
        .collect()
}

fn translate(schema: &Value) -> Value {
    let Some(node) = schema.as_object() else {
        return schema.clone();
    };
    let mut translated = Map::new();
    for (keyword, value) in node {
        match keyword.as_str() {
            "properties" | "patternProperties" | "definitions" => {
                let children = value
                    .as_object()
                    .map(|children| {
                        children
                            .iter()
                            .map(|(name, child)| (name.clone(), translate(child)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                translated.insert(keyword.clone(), Value::Object(children));
            }
            "additionalProperties" | "additionalItems" | "items" | "not" => {
                let child = match value {
                    Value::Array(schemas) => Value::Array(schemas.iter().map(translate).collect()),
                    other => translate(other),
                };
                translated.insert(keyword.clone(), child);
            }
            "allOf" | "anyOf" | "oneOf" => {
                let branches = value
                    .as_array()
                    .map(|branches| branches.iter().map(translate).collect());
                translated.insert(keyword.clone(), Value::Array(branches.unwrap_or_default()));
            }
            "pattern" => {
                translated.insert(RE2_PATTERN.to_owned(), value.clone());
            }
            plain if PLAIN_KEYWORDS.contains(&plain) => {
                translated.insert(keyword.clone(), value.clone());
            }
            _ => {}
        }
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        translated.insert("type".to_owned(), json!(["integer", "string"]));
    }
    if flag(schema, "nullable") {
        if let Some(Value::String(single)) = translated.get("type") {
            let types = json!([single.clone(), "null"]);
            translated.insert("type".to_owned(), types);
        } else if let Some(Value::Array(types)) = translated.get_mut("type") {
            types.push(json!("null"));
        }
        if let Some(Value::Array(values)) = translated.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    Value::Object(translated)
}

/// Checks one `pattern` with RE2 semantics.
struct Re2Pattern {
    pattern: String,
    regex: regex::Regex,
}

impl<'instance> Keyword<'instance> for Re2Pattern {
    fn validate(&self, instance: &'instance Value) -> Result<(), ValidationError<'instance>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(ValidationError::custom(self.pattern.clone()))
        }
    }

    fn is_valid(&self, instance: &'instance Value) -> bool {
        instance
            .as_str()
            .is_none_or(|text| self.regex.is_match(text))
    }
}

fn re2_pattern_keyword<'schema>(
    _parent: &'schema Map<String, Value>,
    value: &'schema Value,
    _location: jsonschema::paths::Location,
) -> Result<Box<dyn for<'instance> Keyword<'instance>>, ValidationError<'schema>> {
    let pattern = value
        .as_str()
        .ok_or_else(|| ValidationError::schema("pattern must be a string"))?;
    let regex = re2::compile(pattern).map_err(|error| {
        ValidationError::schema(format!("pattern {pattern} does not compile: {error}"))
    })?;
    Ok(Box::new(Re2Pattern {
        pattern: pattern.to_owned(),
        regex,
    }))
}

/// The segments of a JSON pointer, unescaped.
fn pointer_segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
}

/// The value, schema node and field path at a JSON pointer into `object`.
struct Located<'object> {
    value: Option<&'object Value>,
    schema: Option<&'object Value>,
    path: String,
}

fn locate<'object>(
    schema: &'object Value,
    object: &'object Value,
    pointer: &str,
) -> Located<'object> {
    let mut located = Located {
        value: Some(object),
        schema: Some(schema),
        path: String::new(),
    };
    for segment in pointer_segments(pointer) {
        match located.value {
            Some(Value::Array(items)) => {
                located.path = subscript_path(&located.path, &segment);
                located.value = segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| items.get(index));
                located.schema = located.schema.and_then(items_schema);
            }
            other => {
                located.path = child_path(&located.path, &segment);
                located.value = other.and_then(|value| value.get(&segment));
                located.schema = located
                    .schema
                    .and_then(|schema| child_schema(schema, &segment));
            }
        }
    }
    located
}

/// Whether the part of the object an error is about is the same as before the update, so the
/// API server ratchets the error away. Array items cannot be matched with their old selves, so
/// inside an array the array itself is compared.
fn unchanged_since(object: &Value, old: Option<&Value>, pointer: &str) -> bool {
    let Some(old) = old else {
        return false;
    };
    let (mut new_node, mut old_node) = (object, old);
    for segment in pointer_segments(pointer) {
        if new_node.is_array() {
            break;
        }
        match (new_node.get(&segment), old_node.get(&segment)) {
            (Some(new_child), Some(old_child)) => {
                new_node = new_child;
                old_node = old_child;
            }
            _ => return false,
        }
    }
    new_node == old_node
}

/// The JSON type name kube-openapi gives a value in a type error.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn declared_type(schema: Option<&Value>) -> String {
    let Some(schema) = schema else {
        return String::new();
    };
    if flag(schema, "x-kubernetes-int-or-string") {
        return "integer,string".to_owned();
    }
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn count(value: Option<&Value>) -> Option<Value> {
    match value {
        Some(Value::Array(items)) => Some(json!(items.len())),
        Some(Value::Object(fields)) => Some(json!(fields.len())),
        _ => None,
    }
}

fn limit_text(limit: &Value) -> String {
    match limit {
        Value::Number(number) => go_number(number),
        other => other.to_string(),
    }
}

fn field_error(
    schema: &Value,
    object: &Value,
    pointer: &str,
    kind: &ValidationErrorKind,
) -> FieldError {
    let located = locate(schema, object, pointer);
    let path = located.path.clone();
    let value = located.value.cloned();
    let invalid =
        |message: String| FieldError::new(&path, FieldErrorKind::Invalid, value.clone(), message);
    match kind {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            FieldError::new(child_path(&path, &name), FieldErrorKind::Required, None, "")
        }
        ValidationErrorKind::Type { .. } => {
            let actual = located.value.map_or("null", type_name);
            FieldError::new(
                &path,
                FieldErrorKind::TypeInvalid,
                Some(json!(actual)),
                format!(
                    "{path} in body must be of type {}: {}",
                    declared_type(located.schema),
                    go_quote(actual)
                ),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .map(|options| {
                    options
                        .iter()
                        .filter(|option| !option.is_null())
                        .map(|option| {
                            go_quote(option.as_str().map_or(&option.to_string(), |text| text))
                        })
                        .collect()
                })
                .unwrap_or_default();
            FieldError::new(
                &path,
                FieldErrorKind::NotSupported,
                value,
                format!("supported values: {}", supported.join(", ")),
            )
        }
        ValidationErrorKind::MaxLength { limit } => {
            let unit = if *limit == 1 { "byte" } else { "bytes" };
            FieldError::new(
                &path,
                FieldErrorKind::TooLong,
                None,
                format!("may not be more than {limit} {unit}"),
            )
        }
        ValidationErrorKind::MaxItems { limit } | ValidationErrorKind::MaxProperties { limit } => {
            FieldError::new(
                &path,
                FieldErrorKind::TooMany,
                count(located.value),
                format!("must have at most {limit} items"),
            )
        }
        ValidationErrorKind::MinLength { limit } => invalid(format!(
            "{path} in body should be at least {limit} chars long"
        )),
        ValidationErrorKind::MinItems { limit } => FieldError::new(
            &path,
            FieldErrorKind::Invalid,
            count(located.value),
            format!("{path} in body should have at least {limit} items"),
        ),
        ValidationErrorKind::MinProperties { limit } => FieldError::new(
            &path,
            FieldErrorKind::Invalid,
            count(located.value),
            format!("{path} in body should have at least {limit} properties"),
        ),
        ValidationErrorKind::Minimum { limit } => invalid(format!(
            "{path} in body should be greater than or equal to {}",
            limit_text(limit)
        )),
        ValidationErrorKind::ExclusiveMinimum { limit } => invalid(format!(
            "{path} in body should be greater than {}",
            limit_text(limit)
        )),
        ValidationErrorKind::Maximum { limit } => invalid(format!(
            "{path} in body should be less than or equal to {}",
            limit_text(limit)
        )),
        ValidationErrorKind::ExclusiveMaximum { limit } => invalid(format!(
            "{path} in body should be less than {}",
            limit_text(limit)
        )),
        ValidationErrorKind::MultipleOf { multiple_of } => invalid(format!(
            "{path} in body should be a multiple of {}",
            go_float(*multiple_of)
        )),
        ValidationErrorKind::UniqueItems => {
            invalid(format!("{path} in body shouldn't contain duplicates"))
        }
        ValidationErrorKind::Custom { message, .. } => {
            invalid(format!("{path} in body should match '{message}'"))
        }
        ValidationErrorKind::AnyOf { .. } => invalid(format!(
            "{path} in body must validate at least one schema (anyOf)"
        )),
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => invalid(format!(
            "{path} in body must validate one and only one schema (oneOf)"
        )),
        ValidationErrorKind::Not { .. } => {
            invalid(format!("{path} in body must not validate the schema (not)"))
        }
        other => invalid(format!("{path} in body is invalid: {other:?}")),
    }
}
