//! AWS's input validation, written from the HealthLake service model: required members,
//! lengths, patterns and enums, reported the way AWS reports them (one ValidationException
//! naming the member by its lower-camel-case path).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::wire::{AwsError, ErrorType};

/// The constraints on one string shape of the model.
pub struct StringRule {
    min: usize,
    max: usize,
    pattern: Option<(&'static str, Regex)>,
}

impl StringRule {
    fn new(min: usize, max: usize, pattern: Option<&'static str>) -> Self {
        // The patterns are constants of this file; a test compiles every one of them.
        let pattern = pattern.and_then(|source| {
            Regex::new(&format!("^(?:{source})$"))
                .ok()
                .map(|regex| (source, regex))
        });
        StringRule { min, max, pattern }
    }
}

macro_rules! rule {
    ($name:ident, $min:expr, $max:expr, $pattern:expr) => {
        #[doc = concat!("The `", stringify!($name), "` shape's constraints.")]
        pub static $name: LazyLock<StringRule> =
            LazyLock::new(|| StringRule::new($min, $max, $pattern));
    };
}

const NAME_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-%@]*";
const TAG_PATTERN: &str = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*";

rule!(DATASTORE_NAME, 1, 256, Some(NAME_PATTERN));
rule!(DATASTORE_ID, 1, 32, Some(NAME_PATTERN));
rule!(JOB_ID, 1, 32, Some(NAME_PATTERN));
rule!(JOB_NAME, 1, 64, Some(NAME_PATTERN));
rule!(CLIENT_TOKEN, 1, 64, Some(r"[a-zA-Z0-9-]+"));
rule!(TAG_KEY, 1, 128, Some(TAG_PATTERN));
rule!(TAG_VALUE, 0, 256, Some(TAG_PATTERN));
rule!(
    ENCRYPTION_KEY_ID,
    1,
    400,
    Some(
        r"(arn:aws((-us-gov)|(-iso)|(-iso-b)|(-cn))?:kms:)?([a-z]{2}-[a-z]+(-[a-z]+)?-\d:)?(\d{12}:)?(((key/)?[a-zA-Z0-9-_]+)|(alias/[a-zA-Z0-9:/_-]+))"
    )
);
rule!(
    LAMBDA_ARN,
    49,
    256,
    Some(
        r"arn:aws:lambda:[a-z]{2}-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9\-_\.]+(:(\$LATEST|[a-zA-Z0-9\-_]+))?"
    )
);
rule!(
    RESOURCE_ARN,
    1,
    1011,
    Some(
        r"arn:aws((-us-gov)|(-iso)|(-iso-b)|(-cn))?:healthlake:[a-z0-9-]+:\d{12}:(datastore/fhir/.{32}|dataTransformationProfile/[a-f0-9]{32})"
    )
);
rule!(
    S3_URI,
    0,
    1024,
    Some(r"s3://[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9](/.*)?")
);
rule!(
    IAM_ROLE_ARN,
    20,
    2048,
    Some(r"arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+")
);
rule!(NEXT_TOKEN, 0, 8192, Some(r"[[:ascii:]]{0,8192}"));
rule!(METADATA, 0, usize::MAX, None);

/// `FHIRVersion`.
pub const FHIR_VERSIONS: &[&str] = &["R4"];
/// `CmkType`.
pub const CMK_TYPES: &[&str] = &["CUSTOMER_MANAGED_KMS_KEY", "AWS_OWNED_KMS_KEY"];
/// `PreloadDataType`.
pub const PRELOAD_DATA_TYPES: &[&str] = &["SYNTHEA"];
/// `AuthorizationStrategy`.
pub const AUTHORIZATION_STRATEGIES: &[&str] = &["SMART_ON_FHIR_V1", "SMART_ON_FHIR", "AWS_AUTH"];
/// `DatastoreStatus`.
pub const DATASTORE_STATUSES: &[&str] = &[
    "CREATING",
    "ACTIVE",
    "DELETING",
    "DELETED",
    "CREATE_FAILED",
    "UPDATING",
    "UPDATE_FAILED",
];
/// `JobStatus`.
pub const JOB_STATUSES: &[&str] = &[
    "SUBMITTED",
    "QUEUED",
    "IN_PROGRESS",
    "COMPLETED_WITH_ERRORS",
    "COMPLETED",
    "FAILED",
    "CANCEL_SUBMITTED",
    "CANCEL_IN_PROGRESS",
    "CANCEL_COMPLETED",
    "CANCEL_FAILED",
];
/// `ValidationLevel`.
pub const VALIDATION_LEVELS: &[&str] = &["strict", "structure-only", "minimal"];
fn invalid(value: &str, path: &str, constraint: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: {constraint}"
    ))
}

fn missing(path: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
    ))
}

fn wrong_type(path: &str, expected: &str) -> AwsError {
    AwsError::new(
        ErrorType::SerializationException,
        format!("expected {expected} at '{path}'"),
    )
}

fn lower_camel(name: &str) -> String {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// Checks a string against a rule; `path` names the member in the error.
pub fn check_string(value: &str, rule: &StringRule, path: &str) -> Result<(), AwsError> {
    let length = value.chars().count();
    if length < rule.min {
        return Err(invalid(
            value,
            path,
            &format!(
                "Member must have length greater than or equal to {}",
                rule.min
            ),
        ));
    }
    if length > rule.max {
        return Err(invalid(
            value,
            path,
            &format!("Member must have length less than or equal to {}", rule.max),
        ));
    }
    if let Some((source, regex)) = &rule.pattern
        && !regex.is_match(value)
    {
        return Err(invalid(
            value,
            path,
            &format!("Member must satisfy regular expression pattern: {source}"),
        ));
    }
    Ok(())
}

/// The members of one JSON object of a request, read with the model's constraints.
pub struct Members<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Members<'a> {
    /// The top-level request object; anything but an object is a SerializationException.
    pub fn of_request(body: &'a Value) -> Result<Self, AwsError> {
        match body {
            Value::Object(object) => Ok(Members {
                object,
                prefix: String::new(),
            }),
            _ => Err(wrong_type("", "a JSON object")),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, lower_camel(name))
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    fn present<T>(
        &self,
        name: &str,
        value: Option<T>,
        required: bool,
    ) -> Result<Option<T>, AwsError> {
        match value {
            None if required => Err(missing(&self.path(name))),
            other => Ok(other),
        }
    }

    /// A string member checked against a rule.
    pub fn string(
        &self,
        name: &str,
        rule: &StringRule,
        required: bool,
    ) -> Result<Option<String>, AwsError> {
        let value = match self.get(name) {
            None => None,
            Some(Value::String(text)) => {
                check_string(text, rule, &self.path(name))?;
                Some(text.clone())
            }
            Some(_) => return Err(wrong_type(&self.path(name), "a string")),
        };
        self.present(name, value, required)
    }

    /// A string member that must be one of an enum's values.
    pub fn enumeration(
        &self,
        name: &str,
        allowed: &[&str],
        required: bool,
    ) -> Result<Option<String>, AwsError> {
        let value = match self.get(name) {
            None => None,
            Some(Value::String(text)) => {
                if !allowed.contains(&text.as_str()) {
                    return Err(invalid(
                        text,
                        &self.path(name),
                        &format!(
                            "Member must satisfy enum value set: [{}]",
                            allowed.join(", ")
                        ),
                    ));
                }
                Some(text.clone())
            }
            Some(_) => return Err(wrong_type(&self.path(name), "a string")),
        };
        self.present(name, value, required)
    }

    /// A boolean member.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(wrong_type(&self.path(name), "a boolean")),
        }
    }

    /// An integer member within bounds.
    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => {
                let Some(value) = number.as_i64() else {
                    return Err(wrong_type(&self.path(name), "an integer"));
                };
                if value < min {
                    Err(invalid(
                        &value.to_string(),
                        &self.path(name),
                        &format!("Member must have value greater than or equal to {min}"),
                    ))
                } else if value > max {
                    Err(invalid(
                        &value.to_string(),
                        &self.path(name),
                        &format!("Member must have value less than or equal to {max}"),
                    ))
                } else {
                    Ok(Some(value))
                }
            }
            Some(_) => Err(wrong_type(&self.path(name), "an integer")),
        }
    }

    /// A timestamp member in epoch seconds, returned as epoch milliseconds.
    pub fn timestamp(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(seconds) if seconds.is_finite() && seconds.abs() < 1e15 => {
                    Ok(Some((seconds * 1000.0).round() as i64))
                }
                _ => Err(wrong_type(&self.path(name), "epoch seconds")),
            },
            Some(_) => Err(wrong_type(&self.path(name), "epoch seconds")),
        }
    }

    /// A nested structure member.
    pub fn structure(&self, name: &str, required: bool) -> Result<Option<Members<'a>>, AwsError> {
        let value = match self.get(name) {
            None => None,
            Some(Value::Object(object)) => Some(Members {
                object,
                prefix: format!("{}.", self.path(name)),
            }),
            Some(_) => return Err(wrong_type(&self.path(name), "a structure")),
        };
        self.present(name, value, required)
    }

    /// A list member with length bounds.
    pub fn list(
        &self,
        name: &str,
        min: usize,
        max: usize,
        required: bool,
    ) -> Result<Option<Vec<&'a Value>>, AwsError> {
        let value = match self.get(name) {
            None => None,
            Some(Value::Array(items)) => {
                let path = self.path(name);
                if items.len() < min {
                    return Err(invalid(
                        "[]",
                        &path,
                        &format!("Member must have length greater than or equal to {min}"),
                    ));
                }
                if items.len() > max {
                    return Err(invalid(
                        &format!("[{} items]", items.len()),
                        &path,
                        &format!("Member must have length less than or equal to {max}"),
                    ));
                }
                Some(items.iter().collect())
            }
            Some(_) => return Err(wrong_type(&self.path(name), "a list")),
        };
        self.present(name, value, required)
    }

    /// The members of a structure that is an element of list `name` at `index`.
    pub fn element(
        &self,
        name: &str,
        index: usize,
        value: &'a Value,
    ) -> Result<Members<'a>, AwsError> {
        let path = format!("{}.{}.member", self.path(name), index + 1);
        match value {
            Value::Object(object) => Ok(Members {
                object,
                prefix: format!("{path}."),
            }),
            _ => Err(wrong_type(&path, "a structure")),
        }
    }

    /// A string element of list `name` at `index`, checked against a rule.
    pub fn string_element(
        &self,
        name: &str,
        index: usize,
        value: &Value,
        rule: &StringRule,
    ) -> Result<String, AwsError> {
        let path = format!("{}.{}.member", self.path(name), index + 1);
        match value {
            Value::String(text) => {
                check_string(text, rule, &path)?;
                Ok(text.clone())
            }
            _ => Err(wrong_type(&path, "a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_pattern_compiles() {
        for rule in [
            &DATASTORE_NAME,
            &DATASTORE_ID,
            &JOB_ID,
            &JOB_NAME,
            &CLIENT_TOKEN,
            &TAG_KEY,
            &TAG_VALUE,
            &ENCRYPTION_KEY_ID,
            &LAMBDA_ARN,
            &RESOURCE_ARN,
            &S3_URI,
            &IAM_ROLE_ARN,
            &NEXT_TOKEN,
        ] {
            assert!(rule.pattern.is_some());
        }
    }

    #[test]
    fn errors_name_the_member_path() {
        let body = json!({"SseConfiguration": {"KmsEncryptionConfig": {"CmkType": "BAD"}}});
        let members = Members::of_request(&body).unwrap_or_else(|_| unreachable!());
        let error = members
            .structure("SseConfiguration", false)
            .and_then(|sse| {
                sse.and_then(|sse| sse.structure("KmsEncryptionConfig", true).transpose())
                    .transpose()
            })
            .and_then(|kms| match kms {
                Some(kms) => kms.enumeration("CmkType", CMK_TYPES, true).map(|_| ()),
                None => Ok(()),
            });
        let message = error.err().map(|error| error.message).unwrap_or_default();
        assert!(
            message.contains("'sseConfiguration.kmsEncryptionConfig.cmkType'"),
            "{message}"
        );
    }

    #[test]
    fn patterns_match_whole_values() {
        assert!(check_string("s3://bucket/key", &S3_URI, "s3Uri").is_ok());
        assert!(check_string("https://bucket/key", &S3_URI, "s3Uri").is_err());
        assert!(check_string("a b", &CLIENT_TOKEN, "clientToken").is_err());
        assert!(check_string("", &DATASTORE_NAME, "datastoreName").is_err());
    }
}
