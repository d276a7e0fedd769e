//! The HTTP admin API under `/_emulator/`, plain JSON, sharing its code with the in-process
//! methods of [`Emulator`].

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::clock::to_epoch_millis;
use super::faults::Fault;
use super::operation::Operation;
use super::seed::DatastoreSeed;
use super::service::Emulator;

/// The prefix of every admin path.
pub const ADMIN_PREFIX: &str = "/_emulator";

/// The admin routes, to be nested under [`ADMIN_PREFIX`].
pub fn routes() -> Router<Emulator> {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/clock/freeze", post(freeze))
        .route("/clock/unfreeze", post(unfreeze))
        .route("/faults", post(inject).delete(clear_faults))
        .route("/calls", get(calls))
        .route("/counters", get(counters))
        .route("/state", get(state))
        .route("/datastores", post(seed))
        .route("/reset", post(reset))
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn clock_body(emulator: &Emulator) -> Value {
    let millis = to_epoch_millis(emulator.now());
    json!({
        "now_millis": millis,
        "now_seconds": millis as f64 / 1000.0,
        "frozen": emulator.is_clock_frozen(),
    })
}

async fn clock(State(emulator): State<Emulator>) -> Json<Value> {
    Json(clock_body(&emulator))
}

/// `{"seconds": 1.5}` or `{"millis": 1500}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    millis: Option<u64>,
}

async fn advance(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let request: AdvanceRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(format!("invalid advance request: {error}")),
    };
    let by = match (request.seconds, request.millis) {
        (Some(seconds), None) if (0.0..1e12).contains(&seconds) => Duration::from_secs_f64(seconds),
        (None, Some(millis)) => Duration::from_millis(millis),
        _ => {
            return bad_request(
                "give exactly one of seconds (a non-negative number) or millis".to_string(),
            );
        }
    };
    emulator.advance_clock(by);
    Json(clock_body(&emulator)).into_response()
}

async fn freeze(State(emulator): State<Emulator>) -> Json<Value> {
    emulator.freeze_clock();
    Json(clock_body(&emulator))
}

async fn unfreeze(State(emulator): State<Emulator>) -> Json<Value> {
    emulator.unfreeze_clock();
    Json(clock_body(&emulator))
}

async fn inject(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            emulator.inject(fault);
            Json(json!({"ok": true})).into_response()
        }
        Err(error) => bad_request(format!("invalid fault: {error}")),
    }
}

async fn clear_faults(State(emulator): State<Emulator>) -> Json<Value> {
    emulator.clear_faults();
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct CallsQuery {
    operation: Option<String>,
}

async fn calls(State(emulator): State<Emulator>, Query(query): Query<CallsQuery>) -> Response {
    let records = match query.operation {
        None => emulator.calls(),
        Some(name) => match name.parse::<Operation>() {
            Ok(operation) => emulator.calls_of(operation),
            Err(error) => return bad_request(error.to_string()),
        },
    };
    Json(json!({ "calls": records })).into_response()
}

async fn counters(State(emulator): State<Emulator>) -> Json<Value> {
    Json(json!({ "counters": emulator.counters() }))
}

async fn state(State(emulator): State<Emulator>) -> Json<Value> {
    Json(emulator.state_view())
}

async fn seed(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let seed: DatastoreSeed = match serde_json::from_slice(&body) {
        Ok(seed) => seed,
        Err(error) => return bad_request(format!("invalid datastore seed: {error}")),
    };
    match emulator.seed(seed) {
        Ok(seeded) => Json(serde_json::to_value(seeded).unwrap_or(Value::Null)).into_response(),
        Err(error) => bad_request(error.to_string()),
    }
}

async fn reset(State(emulator): State<Emulator>) -> Json<Value> {
    emulator.reset();
    Json(json!({"ok": true}))
}
