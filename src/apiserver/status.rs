//! Kubernetes `Status` bodies: the errors the API server answers with, shaped as a real one shapes them.

use serde_json::{Value, json};

use crate::admission::FieldError;

/// A failed request: an HTTP status code with a `meta.k8s.io/v1 Status` body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status code.
    pub code: u16,
    /// The `reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// The `details` object, when there is one.
    pub details: Option<Value>,
}

/// What an error is about: the resource (plural, group), the kind and the object's name.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The resource's plural name.
    pub plural: &'a str,
    /// The API group, empty for the core group.
    pub group: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// The object's name.
    pub name: &'a str,
}

impl Subject<'_> {
    /// `plural.group`, or just `plural` for the core group, as messages name a resource.
    fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({"name": self.name, "group": self.group, "kind": self.plural})
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 for a path that names no known resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 404 NotFound for an object.
    pub fn not_found(subject: Subject<'_>) -> Self {
        Self {
            details: Some(subject.details()),
            ..Self::new(
                404,
                "NotFound",
                format!(
                    "{} \"{}\" not found",
                    subject.qualified_resource(),
                    subject.name
                ),
            )
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(subject: Subject<'_>) -> Self {
        Self {
            details: Some(subject.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!(
                    "{} \"{}\" already exists",
                    subject.qualified_resource(),
                    subject.name
                ),
            )
        }
    }

    /// 409 Conflict because the request's resourceVersion (or another precondition) is stale.
    pub fn conflict(subject: Subject<'_>, why: &str) -> Self {
        Self {
            details: Some(subject.details()),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {why}",
                    subject.qualified_resource(),
                    subject.name
                ),
            )
        }
    }

    /// 409 Conflict from server-side apply: fields owned by other managers.
    pub fn apply_conflict(subject: Subject<'_>, conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let listing: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("- {manager}: {field}"))
            .collect();
        let mut details = subject.details();
        details["causes"] = Value::Array(causes);
        Self {
            details: Some(details),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflict{}: conflicts with other managers:\n{}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    listing.join("\n")
                ),
            )
        }
    }

    /// 422 Invalid, one cause per field error.
    pub fn invalid(subject: Subject<'_>, errors: &[FieldError]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|error| {
                let full = error.to_string();
                let body = full
                    .strip_prefix(&format!("{}: ", error.field))
                    .unwrap_or(&full)
                    .to_string();
                json!({"reason": error.kind.cause_reason(), "message": body, "field": error.field})
            })
            .collect();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let summary = if rendered.len() == 1 {
            rendered.join("")
        } else {
            format!("[{}]", rendered.join(", "))
        };
        Self {
            details: Some(json!({
                "name": subject.name,
                "group": subject.group,
                "kind": subject.kind,
                "causes": causes,
            })),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {summary}",
                    subject.qualified_kind(),
                    subject.name
                ),
            )
        }
    }

    /// 410 Gone (`Expired`) for a resourceVersion older than the history kept.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType for a PATCH whose content type the resource does not accept,
    /// worded as a real API server words it (`accepted` in the order the server lists them).
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// An error with any code, used by fault injection.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(
            code,
            reason,
            format!("injected fault: the server answers {code} for this request"),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// A `Status` reporting success, as answered by a collection delete that keeps no object.
pub fn success_status(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
