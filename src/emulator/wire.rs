//! HealthLake's wire protocol (awsJson1_0): error types, status codes and response framing.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The content type of every awsJson1_0 request and response.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The prefix of `X-Amz-Target` for HealthLake.
pub const TARGET_PREFIX: &str = "HealthLake.";

/// An error AWS answers with, by its `__type` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorType {
    /// A member is missing or malformed, or the request breaks a business rule.
    ValidationException,
    /// The caller exceeded a request-rate quota.
    ThrottlingException,
    /// The datastore is in a transition that forbids the call.
    ConflictException,
    /// The datastore, job or ARN does not exist.
    ResourceNotFoundException,
    /// The caller may not call the operation.
    AccessDeniedException,
    /// Something failed inside the service.
    InternalServerException,
    /// The request carried no SigV4 `Authorization` header.
    MissingAuthenticationTokenException,
    /// The `Authorization` header is not a well-formed SigV4 header.
    IncompleteSignatureException,
    /// `X-Amz-Target` names no HealthLake operation.
    UnknownOperationException,
    /// The body is not a JSON object.
    SerializationException,
}

impl ErrorType {
    /// The `__type` name.
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::ValidationException => "ValidationException",
            ErrorType::ThrottlingException => "ThrottlingException",
            ErrorType::ConflictException => "ConflictException",
            ErrorType::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorType::AccessDeniedException => "AccessDeniedException",
            ErrorType::InternalServerException => "InternalServerException",
            ErrorType::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorType::IncompleteSignatureException => "IncompleteSignatureException",
            ErrorType::UnknownOperationException => "UnknownOperationException",
            ErrorType::SerializationException => "SerializationException",
        }
    }

    /// The HTTP status AWS uses: awsJson1_0 answers client errors with 400 and faults with
    /// 500; a request without credentials is refused with 403 as AWS's front door does.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::InternalServerException => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::MissingAuthenticationTokenException => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error response: the type and AWS's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AwsError {
    /// The `__type`.
    pub kind: ErrorType,
    /// The human-readable message.
    pub message: String,
}

impl AwsError {
    /// An error of any type.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        AwsError {
            kind,
            message: message.into(),
        }
    }

    /// A ValidationException.
    pub fn validation(message: impl Into<String>) -> Self {
        AwsError::new(ErrorType::ValidationException, message)
    }

    /// A ResourceNotFoundException.
    pub fn not_found(message: impl Into<String>) -> Self {
        AwsError::new(ErrorType::ResourceNotFoundException, message)
    }

    /// A ConflictException.
    pub fn conflict(message: impl Into<String>) -> Self {
        AwsError::new(ErrorType::ConflictException, message)
    }
}

/// Builds a random request id in the UUID form AWS uses.
pub fn new_request_id() -> String {
    let bits: u128 = rand::random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A successful awsJson1_0 response.
pub fn success_response(body: &Value, request_id: &str) -> Response {
    framed(StatusCode::OK, body.to_string(), request_id, None)
}

/// An awsJson1_0 error response: `__type` in the body and `x-amzn-errortype` in the headers.
pub fn error_response(error: &AwsError, request_id: &str) -> Response {
    let body = json!({ "__type": error.kind.name(), "message": error.message });
    framed(
        error.kind.status(),
        body.to_string(),
        request_id,
        Some(error.kind.name()),
    )
}

fn framed(
    status: StatusCode,
    body: String,
    request_id: &str,
    error_type: Option<&str>,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Some(error_type) = error_type.and_then(|name| HeaderValue::from_str(name).ok()) {
        headers.insert("x-amzn-errortype", error_type);
    }
    (status, headers, body).into_response()
}

/// Refuses a request that is not signed the way AWS requires: no `Authorization` header at
/// all, or one that is not a SigV4 header with a credential, signed headers and a signature.
/// Answers the region of the credential scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`), which is the region the
/// request is for. The signature itself is not verified.
pub fn check_signature(headers: &HeaderMap) -> Result<String, AwsError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AwsError::new(
            ErrorType::MissingAuthenticationTokenException,
            "Missing Authentication Token",
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let well_formed = text.starts_with("AWS4-HMAC-SHA256 ")
        && ["Credential=", "SignedHeaders=", "Signature="]
            .iter()
            .all(|part| text.contains(part));
    if !well_formed {
        return Err(AwsError::new(
            ErrorType::IncompleteSignatureException,
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters with algorithm AWS4-HMAC-SHA256",
        ));
    }
    signing_region(text).ok_or_else(|| {
        AwsError::new(
            ErrorType::IncompleteSignatureException,
            "Credential should be scoped to a valid region: <access key>/<date>/<region>/<service>/aws4_request",
        )
    })
}

/// The region of a SigV4 `Authorization` header's credential scope, when it has one made of
/// lowercase letters, digits and dashes.
pub fn signing_region(authorization: &str) -> Option<String> {
    let (_, after) = authorization.split_once("Credential=")?;
    let credential = after
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    let parts: Vec<&str> = credential.split('/').collect();
    let [_, _, region, _, "aws4_request"] = parts.as_slice() else {
        return None;
    };
    let valid = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then(|| region.to_string())
}

/// Converts epoch milliseconds into AWS's epoch-seconds JSON number.
pub fn epoch_seconds(millis: i64) -> Value {
    if millis % 1000 == 0 {
        json!(millis / 1000)
    } else {
        json!(millis as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_the_credential_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/healthlake/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(signing_region(header).as_deref(), Some("eu-west-1"));
        assert_eq!(
            signing_region("AWS4-HMAC-SHA256 Credential=AKID/20261130, Signature=00"),
            None
        );
        assert_eq!(
            signing_region("AWS4-HMAC-SHA256 Credential=A/d/EU_WEST/healthlake/aws4_request"),
            None
        );
    }
}
