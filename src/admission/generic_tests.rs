//! The validator on a CRD that has nothing to do with HealthLake: Kubernetes semantics that the
//! operator's own CRDs do not exercise (lists, nullable and int-or-string fields, ratcheting).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::{FieldError, Validator};

fn widget_crd() -> CustomResourceDefinition {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true, "maxLength": 5},
                    "colour": {"type": "string", "enum": ["red", "blue"]},
                    "ports": {
                        "type": "array",
                        "maxItems": 3,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "number": {
                                    "type": "integer",
                                    "x-kubernetes-validations": [
                                        {"rule": "self == oldSelf", "message": "number is immutable"}
                                    ]
                                }
                            }
                        }
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "pattern": "^[a-z]+$"},
                        "x-kubernetes-validations": [{
                            "rule": "!has(self.owner) || self.owner != 'root'",
                            "messageExpression": "'owner ' + self.owner + ' is not allowed'",
                            "fieldPath": "['owner']",
                            "reason": "FieldValueForbidden"
                        }]
                    }
                },
                "x-kubernetes-validations": [
                    {"rule": "self.size <= 100 || has(self.colour)", "message": "big widgets need a colour"}
                ]
            }
        }
    });
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]
        }
    }))
    .expect("the widget crd deserializes")
}

fn widget(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
}

fn admit(spec: Value, old_spec: Option<Value>) -> Result<Value, Vec<String>> {
    let validator = Validator::new(&widget_crd()).expect("the widget crd compiles");
    let mut object = widget(spec);
    let old = old_spec.map(widget);
    validator
        .admit("v1", &mut object, old.as_ref())
        .map(|()| object)
        .map_err(|errors| errors.iter().map(FieldError::to_string).collect())
}

#[test]
fn defaults_fill_missing_fields() {
    let object = admit(json!({}), None).expect("accepted");
    assert_eq!(object["spec"]["size"], 1);
}

#[test]
fn bounds_are_printed_as_go_prints_them() {
    let errors = admit(json!({"size": 2000000, "colour": "red"}), None).unwrap_err();
    assert_eq!(
        errors,
        [
            "spec.size: Invalid value: 2000000: spec.size in body should be less than or equal to 1e+06"
        ]
    );
}

#[test]
fn int_or_string_accepts_both_and_nothing_else() {
    assert!(admit(json!({"port": 80}), None).is_ok());
    assert!(admit(json!({"port": "http"}), None).is_ok());
    let errors = admit(json!({"port": true}), None).unwrap_err();
    assert_eq!(
        errors[0],
        "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
    );
}

#[test]
fn nullable_fields_keep_null_and_others_drop_it() {
    let object = admit(json!({"note": null, "colour": null}), None).expect("accepted");
    assert_eq!(object["spec"]["note"], Value::Null);
    assert!(object["spec"].get("colour").is_none());
}

#[test]
fn too_long_and_too_many_block_the_rules() {
    let errors = admit(
        json!({"note": "far too long", "size": 500, "ports": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "spec.note: Too long: may not be more than 5 bytes",
            "spec.ports: Too many: 4: must have at most 3 items",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
}

#[test]
fn map_values_are_checked_and_rule_field_paths_name_map_keys() {
    let errors = admit(json!({"labels": {"owner": "root", "team": "Blue"}}), None).unwrap_err();
    assert_eq!(
        errors,
        [
            "spec.labels.team: Invalid value: \"Blue\": spec.labels.team in body should match '^[a-z]+$'",
            "spec.labels[owner]: Forbidden: owner root is not allowed",
        ]
    );
}

#[test]
fn list_map_items_are_matched_with_their_old_selves_by_key() {
    let old = json!({"ports": [{"name": "a", "number": 1}, {"name": "b", "number": 2}]});
    let reordered = json!({"ports": [{"name": "b", "number": 2}, {"name": "a", "number": 1}]});
    assert!(admit(reordered, Some(old.clone())).is_ok());
    let changed = json!({"ports": [{"name": "a", "number": 1}, {"name": "b", "number": 3}]});
    assert_eq!(
        admit(changed, Some(old)).unwrap_err(),
        ["spec.ports[1].number: Invalid value: 3: number is immutable"]
    );
}

#[test]
fn unchanged_invalid_values_are_ratcheted_on_update() {
    let old = json!({"size": 500, "labels": {"team": "Blue"}});
    assert!(admit(old.clone(), Some(old.clone())).is_ok());
    let errors = admit(json!({"size": 501, "labels": {"team": "Blue"}}), Some(old)).unwrap_err();
    assert_eq!(errors, ["spec: Invalid value: big widgets need a colour"]);
}

#[test]
fn a_version_the_crd_does_not_serve_is_refused() {
    let validator = Validator::new(&widget_crd()).expect("the widget crd compiles");
    let mut object = widget(json!({}));
    let errors = validator.admit("v2", &mut object, None).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "apiVersion: Unsupported value: \"example.com/v2\": supported values: \"example.com/v1\""
    );
}

#[test]
fn values_are_quoted_as_go_quotes_them() {
    assert_eq!(
        super::field_error::go_quote("a\"b\\c\u{7}\u{a0}é"),
        "\"a\\\"b\\\\c\\a\\u00a0é\""
    );
    assert_eq!(super::field_error::go_float(0.000_01), "1e-05");
    assert_eq!(super::field_error::go_float(123_456.5), "123456.5");
    assert_eq!(super::field_error::go_float(1_234_567.0), "1.234567e+06");
}

#[test]
fn list_map_items_with_the_same_keys_are_duplicates() {
    let errors = admit(
        json!({"ports": [{"name": "a"}, {"name": "b"}, {"name": "a", "number": 2}]}),
        None,
    )
    .unwrap_err();
    assert_eq!(
        errors,
        ["spec.ports[2]: Duplicate value: map[string]interface {}{\"name\":\"a\"}"]
    );
}

#[test]
fn unknown_fields_are_reported_with_their_paths() {
    let validator = Validator::new(&widget_crd()).expect("the widget crd compiles");
    let object =
        widget(json!({"size": 2, "colur": "red", "ports": [{"name": "a", "protocol": "TCP"}]}));
    assert_eq!(
        validator.unknown_fields("v1", &object),
        ["spec.colur", "spec.ports[0].protocol"]
    );
}
