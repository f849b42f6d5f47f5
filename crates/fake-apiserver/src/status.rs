//! `meta/v1 Status` bodies, as the API server sends them with errors.

use serde_json::{Value, json};

/// A failure Status with the HTTP code, reason (`NotFound`, `Expired`...) and message.
pub fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The Status for a resourceVersion older than the compaction point.
pub fn expired(requested: u64, oldest: u64) -> Value {
    failure(
        410,
        "Expired",
        &format!("too old resource version: {requested} ({oldest})"),
    )
}
