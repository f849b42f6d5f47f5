//! Control endpoints under `/_fake/`, so a fake run as a separate process (`fake-apiserver` binary,
//! lab scripts) can be driven with `curl`. They bypass injected faults and are not logged.
//!
//! | request | effect |
//! |---|---|
//! | `POST /_fake/apply` (JSON or YAML: object, `List`, array, multi-document) | create or replace |
//! | `POST /_fake/delete` (same body forms; `apiVersion`, `kind`, `metadata.namespace/name`) | delete |
//! | `POST /_fake/compact`, `/_fake/disconnect`, `/_fake/bookmark` | see [`crate::FakeApiServer`] |
//! | `POST /_fake/fail?n=N`, `/_fake/delay?ms=N`, `/_fake/refuse-lists?on=BOOL` | faults |
//! | `GET /_fake/events`, `/_fake/log` | recorded Events, request log |

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::resource::Kind;
use crate::route;
use crate::server::{Body, Shared, fail, json_resp};

/// Path prefix of the control endpoints.
pub const PREFIX: &str = "/_fake/";

/// Objects in a body: JSON or YAML; single objects, arrays, `List`s, multiple documents.
pub fn objects(body: &[u8]) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("parsing JSON: {e}"))?
    } else {
        serde_saphyr::from_multiple::<Value>(text).map_err(|e| format!("parsing YAML: {e}"))?
    };
    let mut out = Vec::new();
    let mut stack: Vec<Value> = docs.into_iter().rev().collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Null => {}
            Value::Array(items) => stack.extend(items.into_iter().rev()),
            Value::Object(mut m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                if let Some(Value::Array(items)) = m.remove("items") {
                    stack.extend(items.into_iter().rev());
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn kind_of(v: &Value) -> Result<Kind, String> {
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let k = v.get("kind").and_then(Value::as_str).unwrap_or("");
    Kind::from_type(av, k).ok_or_else(|| format!("unsupported object type {av:?}/{k:?}"))
}

/// Serves one control request.
pub fn handle(
    shared: &Shared,
    method: &Method,
    op: &str,
    query: &str,
    body: &[u8],
) -> Response<Body> {
    let q = route::query(Some(query));
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ok = |v: Value| json_resp(StatusCode::OK, &v);
    let mut inner = shared.lock();
    match (method.as_str(), op) {
        ("POST", "apply" | "delete") => {
            let objs = match objects(body) {
                Ok(o) => o,
                Err(e) => return fail(400, "BadRequest", &e),
            };
            let mut n = 0u64;
            for obj in objs {
                let kind = match kind_of(&obj) {
                    Ok(k) => k,
                    Err(e) => return fail(422, "Invalid", &e),
                };
                if op == "apply" {
                    if let Err(e) = inner.store.upsert(kind, obj) {
                        return fail(422, "Invalid", &e.to_string());
                    }
                    n += 1;
                } else {
                    let meta = |f: &str| {
                        obj.pointer(&format!("/metadata/{f}"))
                            .and_then(Value::as_str)
                    };
                    let ns = if kind.resource().namespaced {
                        meta("namespace").unwrap_or("default")
                    } else {
                        ""
                    };
                    if inner
                        .store
                        .delete(kind, ns, meta("name").unwrap_or(""))
                        .is_some()
                    {
                        n += 1;
                    }
                }
            }
            ok(json!({"objects": n, "resourceVersion": inner.store.resource_version().to_string()}))
        }
        ("POST", "compact") => {
            inner.store.compact();
            ok(json!({"resourceVersion": inner.store.resource_version().to_string()}))
        }
        ("POST", "disconnect") => ok(json!({"watches": inner.store.disconnect_watches()})),
        ("POST", "bookmark") => {
            inner.store.bookmark();
            ok(json!({}))
        }
        ("POST", "fail") => {
            inner.faults.fail_next = u32::try_from(num("n")).unwrap_or(u32::MAX);
            ok(json!({}))
        }
        ("POST", "delay") => {
            inner.faults.delay = std::time::Duration::from_millis(num("ms"));
            ok(json!({}))
        }
        ("POST", "refuse-lists") => {
            inner.faults.refuse_lists = q.get("on").is_some_and(|v| v == "true" || v == "1");
            ok(json!({}))
        }
        ("GET", "events") => {
            let events: Vec<Value> = [Kind::Event, Kind::CoreEvent]
                .into_iter()
                .flat_map(|k| inner.store.all(k))
                .map(|o| (*o).clone())
                .collect();
            ok(Value::Array(events))
        }
        ("GET", "log") => {
            let log: Vec<Value> = inner
                .log
                .iter()
                .map(|r| json!({"method": r.method, "path": r.path, "query": r.query, "status": r.status, "watch": r.watch}))
                .collect();
            ok(Value::Array(log))
        }
        _ => fail(404, "NotFound", "unknown control endpoint"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_forms() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Node, metadata: {name: n}}\n";
        assert_eq!(super::objects(yaml.as_bytes()).unwrap().len(), 2);
        let json = r#"[{"kind":"ServiceList","items":[{"kind":"Service"},{"kind":"Service"}]}, {"kind":"Node"}]"#;
        assert_eq!(super::objects(json.as_bytes()).unwrap().len(), 3);
        assert!(super::objects(b"{").is_err());
    }
}
