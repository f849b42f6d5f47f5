//! A fake Kubernetes API server over real HTTP, for testing kube-ipvs's Kubernetes path end to end.
//!
//! It serves list and watch (newline-delimited WatchEvents: ADDED, MODIFIED, DELETED, BOOKMARK,
//! ERROR) for Services, EndpointSlices, Nodes and ServiceCIDRs, plus get/create/replace/patch/delete
//! (Events are recorded for assertions), `/version` and discovery, on `127.0.0.1:0`. Like the real
//! API server it keeps one monotonically increasing resourceVersion, pages lists with `limit` and
//! `continue`, filters by `labelSelector` and `fieldSelector` (an object moving out of a watch's
//! selection is sent as DELETED), and answers a watch from a compacted resourceVersion with an ERROR
//! event carrying a 410 Status.
//!
//! Faults are injected through the handle: [`FakeApiServer::disconnect_watches`],
//! [`FakeApiServer::compact`], [`FakeApiServer::set_delay`], [`FakeApiServer::fail_next`],
//! [`FakeApiServer::refuse_lists`], [`FakeApiServer::set_served`].
//!
//! | module | what |
//! |---|---|
//! | `resource` | the kinds served and their URLs |
//! | `route` | path and query parsing |
//! | `selector` | label and field selectors |
//! | `store` | objects, resourceVersions, history, watches |
//! | `server` | the hyper service |
//! | `faults` | injected faults and the request log |
//! | `admin` | `/_fake/` control endpoints for a fake in another process |
#![forbid(unsafe_code)]

mod admin;
mod faults;
mod patch;
mod resource;
mod route;
mod selector;
mod server;
mod status;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Faults, LoggedRequest};
pub use resource::{Kind, RESOURCES, ResourceType};
pub use selector::{FieldSelector, LabelSelector, Requirement, SelectorError};
pub use store::StoreError;

use server::Shared;

/// What can go wrong starting the server or using its handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding 127.0.0.1:0 failed.
    #[error("binding the fake API server: {0}")]
    Bind(#[source] std::io::Error),
    /// The server's own thread or runtime could not be started.
    #[error("starting the fake API server's thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Building a kube client for it failed.
    #[error("building a kube client for {url}: {source}")]
    Client {
        /// Server URL.
        url: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// An object did not serialize.
    #[error("serializing an object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A JSON/YAML text did not parse.
    #[error("{0}")]
    Parse(String),
    /// The store refused an object.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeApiServer {
    /// Starts on `127.0.0.1:0` with a BOOKMARK to every watch each second.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Some(Duration::from_secs(1))).await
    }

    /// Starts with the given bookmark interval (`None`: bookmarks only through [`Self::bookmark`]).
    pub async fn start_with(bookmark_every: Option<Duration>) -> Result<Self, Error> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), bookmark_every).await
    }

    /// Starts on `addr` (for a lab where the agent runs in another network namespace).
    pub async fn start_at(
        addr: SocketAddr,
        bookmark_every: Option<Duration>,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let shared = Arc::new(Shared::default());
        let mut tasks = vec![tokio::spawn(accept_loop(listener, Arc::clone(&shared)))];
        if let Some(every) = bookmark_every {
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    shared.lock().store.bookmark();
                }
            }));
        }
        Ok(Self {
            addr,
            shared,
            tasks,
        })
    }

    /// Starts on `127.0.0.1:0` on a thread and runtime of its own, for synchronous callers (lab
    /// tests and benches that block on processes): the server keeps answering while they block.
    /// The thread inherits the caller's network namespace.
    pub fn start_on_own_thread() -> Result<Self, Error> {
        Self::start_on_own_thread_at(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// [`Self::start_on_own_thread`] on `addr` (e.g. `0.0.0.0:0`, for an agent in another
    /// network namespace that reaches this one through a route).
    pub fn start_on_own_thread_at(addr: SocketAddr) -> Result<Self, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(Error::Thread(e)));
                    return;
                }
            };
            rt.block_on(async {
                let started = Self::start_at(addr, Some(Duration::from_secs(1))).await;
                let ok = started.is_ok();
                let _ = tx.send(started);
                if ok {
                    std::future::pending::<()>().await;
                }
            });
        });
        rx.recv()
            .unwrap_or_else(|_| Err(Error::Thread(std::io::Error::other("server thread ended"))))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server: plain HTTP, no auth, default namespace `default`.
    pub fn kube_client(&self) -> Result<kube::Client, Error> {
        let url = self.url();
        let uri = url.parse::<http::Uri>().map_err(|e| Error::Client {
            url: url.clone(),
            source: kube::Error::Service(Box::new(e)),
        })?;
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).map_err(|source| Error::Client { url, source })
    }

    /// A kubeconfig for this server (plain HTTP, no credentials), for an agent run as a separate
    /// process with `--kubeconfig`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// Creates or replaces a typed object; returns its new resourceVersion.
    pub fn apply<K>(&self, obj: &K) -> Result<u64, Error>
    where
        K: Serialize + k8s_openapi::Resource,
    {
        let mut v = serde_json::to_value(obj).map_err(Error::Serialize)?;
        if let Value::Object(m) = &mut v {
            m.insert("apiVersion".into(), Value::String(K::API_VERSION.into()));
            m.insert("kind".into(), Value::String(K::KIND.into()));
        }
        self.apply_value(v)
    }

    /// Creates or replaces every object in a JSON or YAML text (objects, `List`s, arrays, multiple
    /// documents); returns how many.
    pub fn apply_bytes(&self, text: &[u8]) -> Result<usize, Error> {
        let objs = admin::objects(text).map_err(Error::Parse)?;
        let n = objs.len();
        for o in objs {
            self.apply_value(o)?;
        }
        Ok(n)
    }

    /// Creates or replaces an object given as JSON with `apiVersion` and `kind`.
    pub fn apply_value(&self, obj: Value) -> Result<u64, Error> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind_name = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let kind =
            Kind::from_type(api_version, kind_name).ok_or_else(|| StoreError::UnknownType {
                api_version: api_version.to_owned(),
                kind: kind_name.to_owned(),
            })?;
        let mut inner = self.shared.lock();
        inner.store.upsert(kind, obj)?;
        Ok(inner.store.resource_version())
    }

    /// Deletes an object (`namespace` `None` for cluster-scoped kinds); whether it existed.
    pub fn delete(&self, kind: Kind, namespace: Option<&str>, name: &str) -> bool {
        self.shared
            .lock()
            .store
            .delete(kind, namespace.unwrap_or(""), name)
            .is_some()
    }

    /// One stored object.
    pub fn get(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .store
            .get(kind, namespace.unwrap_or(""), name)
            .map(|o| (*o).clone())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.resource_version()
    }

    /// Compacts the history at the current resourceVersion: open watches get an ERROR event with a
    /// 410 Status and end; later watches or continue tokens from before now get 410 too.
    pub fn compact(&self) {
        self.shared.lock().store.compact();
    }

    /// Ends every open watch stream; returns how many there were.
    pub fn disconnect_watches(&self) -> usize {
        self.shared.lock().store.disconnect_watches()
    }

    /// Stalls every open watch: it stays open and silent (no event, no bookmark, no end), as
    /// behind a proxy that stopped forwarding; returns how many there were. Later watches work.
    pub fn stall_watches(&self) -> usize {
        self.stall(None)
    }

    /// [`Self::stall_watches`] for the open watches of `kind` only: the others go on.
    pub fn stall_watches_of(&self, kind: Kind) -> usize {
        self.stall(Some(kind))
    }

    fn stall(&self, kind: Option<Kind>) -> usize {
        let mut inner = self.shared.lock();
        inner
            .faults
            .stalled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        inner.store.stall_watches(kind)
    }

    /// Sends a BOOKMARK to every watch that allows them.
    pub fn bookmark(&self) {
        self.shared.lock().store.bookmark();
    }

    /// How many watches are open.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().store.open_watches()
    }

    /// Delays every later response by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().faults.delay = delay;
    }

    /// Fails the next `n` requests with 500.
    pub fn fail_next(&self, n: u32) {
        self.shared.lock().faults.fail_next = n;
    }

    /// Refuses lists with 500 while `refuse` is set (watches still work).
    pub fn refuse_lists(&self, refuse: bool) {
        self.shared.lock().faults.refuse_lists = refuse;
    }

    /// Serves a kind or answers 404 for it (an API server without ServiceCIDRs).
    pub fn set_served(&self, kind: Kind, served: bool) {
        let mut inner = self.shared.lock();
        if served {
            inner.faults.unserved.remove(&kind);
        } else {
            inner.faults.unserved.insert(kind);
        }
    }

    /// The Events written so far (events.k8s.io/v1 and core/v1), in resourceVersion order.
    pub fn events(&self) -> Vec<Value> {
        let inner = self.shared.lock();
        let mut all: Vec<Value> = [Kind::Event, Kind::CoreEvent]
            .into_iter()
            .flat_map(|k| inner.store.all(k))
            .map(|o| (*o).clone())
            .collect();
        let rv = |v: &Value| {
            v.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
        };
        all.sort_by_key(|v| rv(v));
        all
    }

    /// Every request served so far.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // As the real API server (Go's net package sets TCP_NODELAY on every connection):
                // with Nagle on, a watch event written while the client still delays its ACK of
                // the previous one waited ~40 ms, a latency no real cluster adds.
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| server::handle(Arc::clone(&shared), req));
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "fake apiserver connection ended");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}
