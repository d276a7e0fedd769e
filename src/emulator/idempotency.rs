//! ClientToken idempotency: the same token with the same request answers the first result;
//! the same token with a different request is refused.

use serde_json::{Map, Value};

use super::operation::Operation;
use super::state::{IdempotentCall, State};
use super::wire::AwsError;

/// Sorts object keys recursively so that equal requests have equal text.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                if let Some(inner) = object.get(key) {
                    sorted.insert(key.clone(), canonical(inner));
                }
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The request without its ClientToken, as comparable text.
fn fingerprint(request: &Value) -> String {
    let mut request = request.clone();
    if let Value::Object(object) = &mut request {
        object.remove("ClientToken");
    }
    canonical(&request).to_string()
}

fn key(operation: Operation, token: &str) -> String {
    format!("{operation}:{token}")
}

/// The first answer to this token, or an error when the token was used for another request.
pub fn replay(
    state: &State,
    operation: Operation,
    token: Option<&str>,
    request: &Value,
) -> Result<Option<Value>, AwsError> {
    let Some(token) = token else {
        return Ok(None);
    };
    match state.client_tokens.get(&key(operation, token)) {
        None => Ok(None),
        Some(call) if call.fingerprint == fingerprint(request) => Ok(Some(call.response.clone())),
        Some(_) => Err(AwsError::validation(format!(
            "ClientToken {token} was already used with different parameters"
        ))),
    }
}

/// Remembers the first answer to this token.
pub fn remember(
    state: &mut State,
    operation: Operation,
    token: Option<&str>,
    request: &Value,
    response: &Value,
) {
    if let Some(token) = token {
        state.client_tokens.insert(
            key(operation, token),
            IdempotentCall {
                fingerprint: fingerprint(request),
                response: response.clone(),
            },
        );
    }
}
