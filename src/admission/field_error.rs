//! Field errors as the Kubernetes API server reports them (`k8s.io/apimachinery` `field.Error`).
//!
//! The text must read exactly like a real API server's, because users search for it and tools
//! parse it: `spec.tags: Too many: 50: must have at most 49 items`. Values are quoted the way Go's
//! `%q` quotes them and numbers printed the way Go's `%v` prints them.

use std::fmt;

/// The kind of a field error, named as the API server names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value`: a required field is missing.
    Required,
    /// `Invalid value`: the value breaks a pattern, bound or CEL rule.
    Invalid,
    /// `Invalid value` for a value of the wrong JSON type (`FieldValueTypeInvalid`).
    TypeInvalid,
    /// `Unsupported value`: the value is not one of the enum's values.
    NotSupported,
    /// `Too long`: a string is longer than allowed.
    TooLong,
    /// `Too many`: a list or map has more items than allowed.
    TooMany,
    /// `Forbidden`: the field may not be set or changed.
    Forbidden,
    /// `Duplicate value`: a CEL rule with reason `FieldValueDuplicate` failed.
    Duplicate,
}

impl FieldErrorKind {
    /// The phrase the API server uses for this kind of error.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
        }
    }

    /// The `reason` of a `StatusCause` for this kind of error (`FieldValueInvalid`, ...).
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
        }
    }

    /// Whether the API server shows the offending value for this kind; it never does for
    /// required, forbidden and too-long errors.
    fn shows_value(self) -> bool {
        !matches!(self, Self::Required | Self::Forbidden | Self::TooLong)
    }

    /// Whether an error of this kind stops the API server from evaluating the CEL rules: the
    /// object is too malformed for them (wrong type, missing field, unknown enum value, too big).
    pub fn blocks_rules(self) -> bool {
        matches!(
            self,
            Self::Required | Self::TypeInvalid | Self::NotSupported | Self::TooLong | Self::TooMany
        )
    }
}

/// One reason an object was refused, at one field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Path of the field, such as `spec.tags` or `spec.sseConfiguration.kmsEncryptionConfig.kmsKeyId`.
    pub field: String,
    /// What kind of error this is.
    pub kind: FieldErrorKind,
    /// The offending value, when the API server would show it.
    pub value: Option<serde_json::Value>,
    /// The explanation: a CEL rule's message, or the schema constraint that failed.
    pub message: String,
}

/// Field path the API server prints for an error that belongs to no field.
pub const NO_FIELD: &str = "<nil>";

/// What the API server adds when schema errors kept it from evaluating the CEL rules.
pub const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

impl FieldError {
    /// An error of `kind` at `field` showing `value`.
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<serde_json::Value>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            message: message.into(),
        }
    }

    /// The message of a `StatusCause`: this error without its field path, as the API server
    /// puts it in `details.causes[].message`.
    pub fn body(&self) -> String {
        let mut body = self.kind.as_str().to_owned();
        if self.kind.shows_value()
            && let Some(value) = &self.value
        {
            body.push_str(": ");
            body.push_str(&go_value(value));
        }
        if !self.message.is_empty() {
            body.push_str(": ");
            body.push_str(&self.message);
        }
        body
    }

    /// The notice the API server appends when CEL rules were skipped because of schema errors.
    pub fn rules_not_checked() -> Self {
        Self::new(
            NO_FIELD,
            FieldErrorKind::Invalid,
            Some(serde_json::Value::Null),
            RULES_NOT_CHECKED,
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.field, self.body())
    }
}

/// A value as `field.Error` prints it: strings quoted (`%q`), numbers and booleans bare (`%v`),
/// anything else in Go syntax (`%#v`), as the API server prints the decoded JSON.
fn go_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => go_quote(text),
        serde_json::Value::Number(number) => go_number(number),
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::Bool(flag) => flag.to_string(),
        composite => go_syntax(composite),
    }
}

/// Go's `%#v` of a decoded JSON value (`map[string]interface {}{"a":1}`); map keys sorted, as
/// `fmt` sorts them.
fn go_syntax(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "interface {}(nil)".to_owned(),
        serde_json::Value::Bool(flag) => flag.to_string(),
        serde_json::Value::Number(number) => go_number(number),
        serde_json::Value::String(text) => go_quote(text),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_syntax).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        serde_json::Value::Object(fields) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = fields.iter().collect();
            entries.sort_by(|left, right| left.0.cmp(right.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", go_quote(key), go_syntax(value)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
    }
}

/// A number as Go's `%v` prints an `int64` or `float64`.
pub(crate) fn go_number(number: &serde_json::Number) -> String {
    if let Some(integer) = number.as_i64() {
        return integer.to_string();
    }
    if let Some(integer) = number.as_u64() {
        return integer.to_string();
    }
    number.as_f64().map_or_else(|| number.to_string(), go_float)
}

/// A float as Go's `%v` prints it (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits
/// that round-trip, in exponent form when the exponent is below -4 or at least 6 (`1e+06`).
pub(crate) fn go_float(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's shortest formatting does.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        return go_exponent(mantissa, exponent);
    }
    format!("{value}")
}

fn go_exponent(mantissa: &str, exponent: i32) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// A string quoted as Go's `strconv.Quote` quotes it.
pub(crate) fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            control if (control as u32) < 0x20 || control == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", control as u32));
            }
            other if is_go_printable(other) => quoted.push(other),
            other if (other as u32) < 0x10000 => {
                quoted.push_str(&format!("\\u{:04x}", other as u32));
            }
            other => quoted.push_str(&format!("\\U{:08x}", other as u32)),
        }
    }
    quoted.push('"');
    quoted
}

/// Approximates Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space; other spaces and format or private-use characters are escaped.
fn is_go_printable(character: char) -> bool {
    if character == ' ' {
        return true;
    }
    !(character.is_control()
        || character.is_whitespace()
        || matches!(character as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xe000..=0xf8ff | 0xfff9..=0xfffb))
}

/// `field.Path.Child`: `spec` + `tags` is `spec.tags`.
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// `field.Path.Index` and `field.Path.Key`: `spec.items` + `0` is `spec.items[0]`.
pub(crate) fn subscript_path(parent: &str, subscript: &str) -> String {
    format!("{parent}[{subscript}]")
}
