//! The HTTP side: one hyper service answering list, watch, get, create, replace, patch and delete for
//! the kinds in [`crate::resource`], plus `/version` and discovery.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::faults::{Faults, LoggedRequest};
use crate::resource::{Kind, RESOURCES};
use crate::route::{self, Route};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status;
use crate::store::{Filter, ReadError, Store, StoreError};

/// The response body: a full buffer or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// Everything the server and the test handle share.
#[derive(Debug, Default)]
pub struct Inner {
    /// Objects, history, watches.
    pub store: Store,
    /// Injected faults.
    pub faults: Faults,
    /// Every request.
    pub log: Vec<LoggedRequest>,
}

/// Shared state behind one lock (never held across an await).
#[derive(Debug, Default)]
pub struct Shared(Mutex<Inner>);

impl Shared {
    /// Locks, ignoring poisoning (a panicking test thread must not wedge the server).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn full(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn json_resp(code: StatusCode, v: &Value) -> Response<Body> {
    full(code, v.to_string())
}

pub(crate) fn fail(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_resp(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status::failure(code, reason, message),
    )
}

fn not_found() -> Response<Body> {
    fail(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn store_error(e: &StoreError) -> Response<Body> {
    match e {
        StoreError::AlreadyExists { .. } => fail(409, "AlreadyExists", &e.to_string()),
        StoreError::NotFound { .. } => fail(404, "NotFound", &e.to_string()),
        StoreError::NoName { .. } | StoreError::UnknownType { .. } => {
            fail(422, "Invalid", &e.to_string())
        }
    }
}

/// The answer to one request, before the log entry is written.
struct Answer {
    resp: Response<Body>,
    watch: bool,
}

impl From<Response<Body>> for Answer {
    fn from(resp: Response<Body>) -> Self {
        Self { resp, watch: false }
    }
}

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Some(op) = path.strip_prefix(crate::admin::PREFIX) {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(crate::admin::handle(
            &shared, &method, op, &raw_query, &body,
        ));
    }
    let delay = shared.lock().faults.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let answer = {
        let mut inner = shared.lock();
        let answer = respond(&mut inner, &method, &path, &raw_query, &content_type, &body);
        inner.log.push(LoggedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: raw_query.clone(),
            status: answer.resp.status().as_u16(),
            watch: answer.watch,
        });
        answer
    };
    tracing::debug!(%method, %path, query = %raw_query, status = answer.resp.status().as_u16(), "fake apiserver");
    Ok(answer.resp)
}

fn respond(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    raw_query: &str,
    ct: &str,
    body: &[u8],
) -> Answer {
    if inner.faults.fail_next > 0 {
        inner.faults.fail_next -= 1;
        return fail(500, "InternalError", "injected failure").into();
    }
    let q = route::query(Some(raw_query));
    let route = route::parse(path);
    let unserved = |k: &Kind| inner.faults.unserved.contains(k);
    match route {
        Route::Version if method == Method::GET => json_resp(StatusCode::OK, &version()).into(),
        Route::CoreVersions if method == Method::GET => json_resp(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        )
        .into(),
        Route::Groups if method == Method::GET => {
            json_resp(StatusCode::OK, &groups(&inner.faults)).into()
        }
        Route::Resources { group, version } if method == Method::GET => {
            resources(&group, &version, &inner.faults)
                .map_or_else(not_found, |v| json_resp(StatusCode::OK, &v))
                .into()
        }
        Route::Collection { kind, .. } | Route::Object { kind, .. } if unserved(&kind) => {
            not_found().into()
        }
        Route::Collection { kind, namespace } => {
            collection(inner, method, kind, namespace, &q, body)
        }
        Route::Object {
            kind,
            namespace,
            name,
        } => object(inner, method, kind, &namespace, &name, ct, body).into(),
        Route::Unknown => not_found().into(),
        _ => fail(405, "MethodNotAllowed", "method not allowed").into(),
    }
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

fn groups(faults: &Faults) -> Value {
    let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
    for r in RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty() && !faults.unserved.contains(&r.kind))
    {
        groups.insert(r.group, r.version);
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resources(group: &str, version: &str, faults: &Faults) -> Option<Value> {
    let list: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version && !faults.unserved.contains(&r.kind))
        .map(|r| {
            json!({
                "name": r.plural, "singularName": "", "namespaced": r.namespaced, "kind": r.kind_name,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn parse_rv(s: Option<&String>) -> Option<u64> {
    s.and_then(|s| s.parse::<u64>().ok()).filter(|rv| *rv > 0)
}

fn collection(
    inner: &mut Inner,
    method: &Method,
    kind: Kind,
    namespace: Option<String>,
    q: &BTreeMap<String, String>,
    body: &[u8],
) -> Answer {
    if *method == Method::POST {
        let ns = namespace.unwrap_or_default();
        let obj: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return fail(400, "BadRequest", &format!("decoding body: {e}")).into(),
        };
        return match inner.store.create(kind, &ns, obj) {
            Ok(o) => json_resp(StatusCode::CREATED, &o).into(),
            Err(e) => store_error(&e).into(),
        };
    }
    if *method != Method::GET {
        return fail(405, "MethodNotAllowed", "method not allowed").into();
    }
    let labels = match LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return fail(400, "BadRequest", &e.to_string()).into(),
    };
    let fields = match FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return fail(400, "BadRequest", &e.to_string()).into(),
    };
    let filter = Filter {
        kind,
        namespace,
        labels,
        fields,
    };
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    if watch {
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0);
        let rx = inner
            .store
            .watch(filter, parse_rv(q.get("resourceVersion")), bookmarks);
        let deadline = timeout.map(|t| Instant::now() + std::time::Duration::from_secs(t));
        let stalled = inner.faults.stalled.clone();
        let stream = futures::stream::unfold((rx, deadline), move |(mut rx, deadline)| {
            let stalled = stalled.clone();
            async move {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                        Ok(next) => next,
                        // A stalled stream is not ended by its deadline either.
                        Err(_) if stalled.load(std::sync::atomic::Ordering::Relaxed) => {
                            rx.recv().await
                        }
                        Err(_) => None,
                    },
                    None => rx.recv().await,
                };
                next.map(|b| (Ok::<_, Infallible>(Frame::data(b)), (rx, deadline)))
            }
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return Answer { resp, watch: true };
    }
    if inner.faults.refuse_lists {
        return fail(500, "InternalError", "injected: lists refused").into();
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let page = match inner
        .store
        .list(&filter, limit, q.get("continue").map(String::as_str))
    {
        Ok(p) => p,
        Err(ReadError::Expired { requested, oldest }) => {
            return json_resp(StatusCode::GONE, &status::expired(requested, oldest)).into();
        }
        Err(ReadError::BadContinue) => {
            return fail(400, "BadRequest", "invalid continue token").into();
        }
    };
    let res = kind.resource();
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let (Some(c), Value::Object(m)) = (page.continue_token, &mut meta) {
        m.insert("continue".into(), Value::String(c));
    }
    let mut text = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        res.kind_name,
        res.api_version(),
        meta
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(&**item).unwrap_or_default());
    }
    text.push_str("]}");
    full(StatusCode::OK, text).into()
}

fn object(
    inner: &mut Inner,
    method: &Method,
    kind: Kind,
    ns: &str,
    name: &str,
    ct: &str,
    body: &[u8],
) -> Response<Body> {
    let parsed = || serde_json::from_slice::<Value>(body);
    let result = match *method {
        Method::GET => {
            return inner.store.get(kind, ns, name).map_or_else(
                || {
                    fail(
                        404,
                        "NotFound",
                        &format!("{} {name:?} not found", kind.resource().plural),
                    )
                },
                |o| json_resp(StatusCode::OK, &o),
            );
        }
        Method::DELETE => {
            return inner.store.delete(kind, ns, name).map_or_else(
                || {
                    fail(
                        404,
                        "NotFound",
                        &format!("{} {name:?} not found", kind.resource().plural),
                    )
                },
                |o| json_resp(StatusCode::OK, &o),
            );
        }
        Method::PUT => match parsed() {
            Ok(v) => inner.store.replace(kind, ns, name, v),
            Err(e) => return fail(400, "BadRequest", &format!("decoding body: {e}")),
        },
        Method::PATCH => {
            if ct.starts_with("application/json-patch+json") {
                return fail(
                    415,
                    "UnsupportedMediaType",
                    "json-patch is not supported by the fake",
                );
            }
            let apply = ct.starts_with("application/apply-patch");
            match parsed() {
                Ok(v) => inner.store.patch(kind, ns, name, &v, apply),
                Err(e) => return fail(400, "BadRequest", &format!("decoding body: {e}")),
            }
        }
        _ => return fail(405, "MethodNotAllowed", "method not allowed"),
    };
    match result {
        Ok(o) => json_resp(StatusCode::OK, &o),
        Err(e) => store_error(&e),
    }
}
