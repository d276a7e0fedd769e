//! Turns every failure of an aws-sdk-healthlake call into a [`HealthLakeError`], once.
//!
//! The decision uses only what the SDK parsed from the wire: the error code AWS sent (the
//! `__type` of an awsJson 1.0 error body, via [`ProvideErrorMetadata::code`]) and the HTTP status.
//! Display text is never inspected, because AWS rewords messages freely.

use aws_sdk_healthlake::config::http::HttpResponse;
use aws_sdk_healthlake::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::HealthLakeError;

/// Error codes AWS services use for throttling, HealthLake's own among them.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Error codes of failures on AWS's side, or of credentials the SDK refreshes by itself, that
/// can succeed when tried again.
const TRANSIENT_CODES: &[&str] = &[
    "InternalServerException",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
];

/// Error codes of requests AWS refused for their credentials or permissions: terminal, since only a
/// change outside Kubernetes (IAM, credentials) fixes them, so they are retried on the slow
/// schedule of Stalled objects.
const ACCESS_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "NotAuthorized",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "OptInRequired",
];

/// Error codes AWS uses when an account-wide quota (not a request rate) is used up.
const QUOTA_CODES: &[&str] = &["ServiceQuotaExceededException", "LimitExceededException"];

/// The reason given to conditions and events for an access-denied error.
pub const ACCESS_DENIED_REASON: &str = "AccessDenied";

/// The reason given when the SDK refused to build the request: a field broke a rule the SDK
/// checks before sending.
pub const INVALID_REQUEST_REASON: &str = "InvalidRequest";

/// Classifies a failed SDK call.
pub fn classify<E>(error: SdkError<E, HttpResponse>) -> HealthLakeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &error {
        SdkError::ServiceError(service_error) => {
            let status = service_error.raw().status().as_u16();
            let code = service_error.err().code();
            let message = service_error.err().message();
            classify_service_error(code, message, status)
        }
        SdkError::ResponseError(response_error) => {
            let status = response_error.raw().status().as_u16();
            let cause = DisplayErrorContext(&error).to_string();
            if (400..500).contains(&status) && status != 429 {
                HealthLakeError::Unrecognized {
                    code: http_status_reason(status),
                    message: format!("unreadable error response (HTTP {status}): {cause}"),
                }
            } else if status == 429 {
                HealthLakeError::Throttled {
                    message: format!("unreadable throttling response (HTTP 429): {cause}"),
                }
            } else {
                HealthLakeError::Retryable {
                    message: format!("unreadable response (HTTP {status}): {cause}"),
                }
            }
        }
        SdkError::TimeoutError(_) => HealthLakeError::Retryable {
            message: format!("request timed out: {}", DisplayErrorContext(&error)),
        },
        SdkError::DispatchFailure(_) => HealthLakeError::Retryable {
            message: format!("failed to send request: {}", DisplayErrorContext(&error)),
        },
        SdkError::ConstructionFailure(_) => HealthLakeError::Terminal {
            reason: INVALID_REQUEST_REASON.to_owned(),
            message: format!("failed to build request: {}", DisplayErrorContext(&error)),
        },
        _ => HealthLakeError::Retryable {
            message: format!("request failed: {}", DisplayErrorContext(&error)),
        },
    }
}

/// Classifies an error response AWS sent, from its code, message and HTTP status.
pub fn classify_service_error(
    code: Option<&str>,
    message: Option<&str>,
    status: u16,
) -> HealthLakeError {
    let aws_message = match (message, code) {
        (Some(message), _) if !message.is_empty() => message.to_owned(),
        (_, Some(code)) => format!("{code} (HTTP {status}, no message)"),
        (_, None) => format!("HTTP {status}, no error code or message"),
    };
    match code {
        Some("ResourceNotFoundException") => HealthLakeError::NotFound {
            message: aws_message,
        },
        Some("ConflictException") => HealthLakeError::Conflict {
            message: aws_message,
        },
        Some("ValidationException") => HealthLakeError::Terminal {
            reason: "ValidationException".to_owned(),
            message: aws_message,
        },
        Some(code) if ACCESS_CODES.contains(&code) => HealthLakeError::Terminal {
            reason: ACCESS_DENIED_REASON.to_owned(),
            message: aws_message,
        },
        Some(code) if QUOTA_CODES.contains(&code) => HealthLakeError::AccountQuota {
            message: aws_message,
        },
        Some(code) if THROTTLING_CODES.contains(&code) => HealthLakeError::Throttled {
            message: aws_message,
        },
        Some(code) if TRANSIENT_CODES.contains(&code) => HealthLakeError::Retryable {
            message: format!("{code}: {aws_message}"),
        },
        _ if status == 429 => HealthLakeError::Throttled {
            message: aws_message,
        },
        // A client error this operator does not know: retried with backoff rather than taken as
        // final, since a code AWS adds later may well be transient.
        _ if (400..500).contains(&status) => HealthLakeError::Unrecognized {
            code: code
                .and_then(condition_reason)
                .unwrap_or_else(|| http_status_reason(status)),
            message: aws_message,
        },
        // 5xx, and anything else that is not a success but carries no recognised code.
        _ => HealthLakeError::Retryable {
            message: match code {
                Some(code) => format!("{code} (HTTP {status}): {aws_message}"),
                None => format!("HTTP {status}: {aws_message}"),
            },
        },
    }
}

/// Reads a refused CreateFHIRDatastore as the account's datastore quota when its message says so.
///
/// HealthLake's service model declares no quota error for CreateFHIRDatastore, so the quota on
/// the number of datastores per account and region can only arrive as a `ValidationException`:
/// this is the one place where a class is read from AWS's text. A misreading costs little, as both
/// classes are retried on a slow schedule; only the condition's reason and advice differ.
pub fn datastore_quota(error: HealthLakeError) -> HealthLakeError {
    match error {
        HealthLakeError::Terminal { reason, message } if reason == "ValidationException" => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("quota") || lower.contains("maximum number of") {
                HealthLakeError::AccountQuota { message }
            } else {
                HealthLakeError::Terminal { reason, message }
            }
        }
        other => other,
    }
}

/// The code as a Kubernetes condition reason, or `None` when it cannot be one
/// (reasons must match `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$` and be at most 1024 long).
fn condition_reason(code: &str) -> Option<String> {
    let mut characters = code.chars();
    let starts_with_letter = characters.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_allowed = code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (starts_with_letter && rest_allowed && code.len() <= 1024).then(|| code.to_owned())
}

/// A reason for an error that carries only an HTTP status.
fn http_status_reason(status: u16) -> String {
    format!("Http{status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal(reason: &str, message: &str) -> HealthLakeError {
        HealthLakeError::Terminal {
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }

    fn unrecognized(code: &str, message: &str) -> HealthLakeError {
        HealthLakeError::Unrecognized {
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_quota_validation_error_on_create_is_the_account_quota() {
        let quota = terminal(
            "ValidationException",
            "data store quota exceeded: the account already has 10 data stores",
        );
        assert!(matches!(
            datastore_quota(quota),
            HealthLakeError::AccountQuota { .. }
        ));
        let other = terminal("ValidationException", "kms key is disabled");
        assert_eq!(datastore_quota(other.clone()), other);
        let denied = terminal("AccessDenied", "quota of patience exceeded");
        assert_eq!(datastore_quota(denied.clone()), denied);
    }

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        let cases: Vec<(Option<&str>, Option<&str>, u16, HealthLakeError)> = vec![
            (
                Some("ResourceNotFoundException"),
                Some("datastore 1f2e does not exist"),
                400,
                HealthLakeError::NotFound {
                    message: "datastore 1f2e does not exist".into(),
                },
            ),
            (
                Some("ConflictException"),
                Some("datastore is CREATING"),
                400,
                HealthLakeError::Conflict {
                    message: "datastore is CREATING".into(),
                },
            ),
            (
                Some("ThrottlingException"),
                Some("rate exceeded"),
                400,
                HealthLakeError::Throttled {
                    message: "rate exceeded".into(),
                },
            ),
            (
                Some("TooManyRequestsException"),
                Some("slow down"),
                400,
                HealthLakeError::Throttled {
                    message: "slow down".into(),
                },
            ),
            (
                None,
                Some("too many"),
                429,
                HealthLakeError::Throttled {
                    message: "too many".into(),
                },
            ),
            (
                Some("InternalServerException"),
                Some("boom"),
                500,
                HealthLakeError::Retryable {
                    message: "InternalServerException: boom".into(),
                },
            ),
            (
                Some("SomethingNew"),
                Some("overloaded"),
                503,
                HealthLakeError::Retryable {
                    message: "SomethingNew (HTTP 503): overloaded".into(),
                },
            ),
            (
                None,
                None,
                502,
                HealthLakeError::Retryable {
                    message: "HTTP 502: HTTP 502, no error code or message".into(),
                },
            ),
            (
                Some("ValidationException"),
                Some("1 validation error detected"),
                400,
                terminal("ValidationException", "1 validation error detected"),
            ),
            (
                Some("AccessDeniedException"),
                Some("not authorized"),
                403,
                terminal("AccessDenied", "not authorized"),
            ),
            (
                Some("ServiceQuotaExceededException"),
                Some("too many datastores"),
                402,
                HealthLakeError::AccountQuota {
                    message: "too many datastores".into(),
                },
            ),
            (
                Some("FailedDependencyException"),
                Some("kms key disabled"),
                424,
                unrecognized("FailedDependencyException", "kms key disabled"),
            ),
            (
                Some("not a reason!"),
                Some("odd"),
                400,
                unrecognized("Http400", "odd"),
            ),
            (
                None,
                None,
                404,
                unrecognized("Http404", "HTTP 404, no error code or message"),
            ),
            (
                Some("UnrecognizedClientException"),
                Some("the security token included in the request is invalid"),
                400,
                terminal(
                    "AccessDenied",
                    "the security token included in the request is invalid",
                ),
            ),
            (
                Some("AccessDeniedException"),
                None,
                403,
                terminal(
                    "AccessDenied",
                    "AccessDeniedException (HTTP 403, no message)",
                ),
            ),
            (
                Some("ExpiredTokenException"),
                Some("token expired"),
                400,
                HealthLakeError::Retryable {
                    message: "ExpiredTokenException: token expired".into(),
                },
            ),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(
                classify_service_error(code, message, status),
                expected,
                "code {code:?}, status {status}"
            );
        }
    }

    type DescribeError =
        aws_sdk_healthlake::operation::describe_fhir_datastore::DescribeFHIRDatastoreError;

    fn response(status: u16) -> HttpResponse {
        let response = http::Response::builder()
            .status(status)
            .body("".into())
            .unwrap_or_else(|error| panic!("test response: {error}"));
        HttpResponse::try_from(response).unwrap_or_else(|error| panic!("test response: {error}"))
    }

    fn service_error(
        code: &str,
        message: &str,
        status: u16,
    ) -> SdkError<DescribeError, HttpResponse> {
        let metadata = aws_sdk_healthlake::error::ErrorMetadata::builder()
            .code(code)
            .message(message)
            .build();
        SdkError::service_error(DescribeError::generic(metadata), response(status))
    }

    #[test]
    fn sdk_failures_are_classified_by_kind() {
        use aws_sdk_healthlake::error::ConnectorError;
        let cases: Vec<(SdkError<DescribeError, HttpResponse>, &str, &str)> = vec![
            (
                service_error("ThrottlingException", "slow", 400),
                "Throttled",
                "slow",
            ),
            (
                service_error("ValidationException", "bad id", 400),
                "Terminal",
                "ValidationException: bad id",
            ),
            (
                service_error("ResourceNotFoundException", "gone", 400),
                "NotFound",
                "not found: gone",
            ),
            (
                SdkError::timeout_error("too slow"),
                "Retryable",
                "request timed out",
            ),
            (
                SdkError::dispatch_failure(ConnectorError::io("connection refused".into())),
                "Retryable",
                "failed to send request",
            ),
            (
                SdkError::construction_failure("missing datastore id"),
                "Terminal",
                "InvalidRequest: failed to build request",
            ),
            (
                SdkError::response_error("not json", response(503)),
                "Retryable",
                "unreadable response (HTTP 503)",
            ),
            (
                SdkError::response_error("not json", response(200)),
                "Retryable",
                "unreadable response (HTTP 200)",
            ),
            (
                SdkError::response_error("not json", response(429)),
                "Throttled",
                "unreadable throttling response",
            ),
            (
                SdkError::response_error("not json", response(403)),
                "Unrecognized",
                "Http403: unreadable error response (HTTP 403)",
            ),
        ];
        for (error, class, message_start) in cases {
            let classified = classify(error);
            assert_eq!(classified.class(), class, "{classified}");
            let text = classified.to_string();
            assert!(
                text.contains(message_start),
                "{text:?} does not contain {message_start:?}"
            );
        }
    }

    #[test]
    fn condition_reasons_follow_the_kubernetes_pattern() {
        let cases = [
            ("ValidationException", Some("ValidationException")),
            ("Under_score1", Some("Under_score1")),
            ("1Leading", None),
            ("", None),
            ("with space", None),
            ("dotted.code", None),
        ];
        for (code, expected) in cases {
            assert_eq!(condition_reason(code).as_deref(), expected, "{code:?}");
        }
    }
}
