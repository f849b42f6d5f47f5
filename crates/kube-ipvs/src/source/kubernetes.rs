//! The Kubernetes source: one kube-rs `watcher` per kind, with kube-runtime's default backoff.
//!
//! kube-runtime re-lists by itself after a 410 Gone or a watch that cannot resume, emitting
//! `Init, InitApply.., InitDone`; this module forwards each such run as `ListStart`, `Applied`..,
//! `ListEnd` (object by object, never buffered), so a re-list reaches the agent as a resync, never
//! as deletions. A dropped watch stream resumes
//! from the last resourceVersion (bookmarks keep it fresh) without a re-list.
//!
//! Each kind's freshness (its last list page, event or bookmark, seen by the client layer of
//! [`client_from_config`]) is tracked for the staleness gauge and log lines ([`super::freshness`]).

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::activity::ActivityLayer;
use super::freshness::{self, Freshness};
use super::readiness::Gate;
use super::selector::{STOCK_LABEL_SELECTOR, node_field_selector};
use super::strip::Strip;
use super::{ClusterEvent, DEFAULT_CAPACITY, SourceError, SourceEvent, SourceKind, Sources};

/// What the Kubernetes source watches.
#[derive(Clone, Debug)]
pub struct KubernetesOptions {
    /// This node's name: its Node is watched with `metadata.name=NODE`.
    pub node_name: String,
    /// Watch ServiceCIDRs where served (default true).
    pub service_cidrs: bool,
    /// Event channel capacity.
    pub capacity: usize,
    /// `timeoutSeconds` of each watch request (kube-runtime's default, 290 s, when unset). The
    /// API server ends a watch after it; a watch silent for this long plus 5 s is taken for
    /// stalled (a proxy that stopped forwarding) and reopened by the client.
    pub watch_timeout: Option<u32>,
    /// Where each kind's last sign of life is recorded: give the same to [`client_from_config`]
    /// or [`client_with_master`], whose layer sees the bookmarks.
    pub freshness: Freshness,
    /// Silence after which a kind is reported stale ([`freshness::STALE_AFTER`]).
    pub stale_after: Duration,
}

impl KubernetesOptions {
    /// Defaults for node `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            service_cidrs: true,
            capacity: DEFAULT_CAPACITY,
            watch_timeout: None,
            freshness: Freshness::new(),
            stale_after: freshness::STALE_AFTER,
        }
    }
}

/// A client from `--kubeconfig PATH`, else in-cluster config, else `$KUBECONFIG`/`~/.kube/config`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, SourceError> {
    Client::try_from(config_from(kubeconfig).await?).map_err(SourceError::Client)
}

/// The agent's client: [`client`] with kube-proxy's `--master` (the API server's address
/// replaces the kubeconfig's; with `--master` alone the connection is unauthenticated, as in
/// kube-proxy), whose list and watch responses mark their kind fresh in `freshness`.
pub async fn client_with_master(
    kubeconfig: Option<&Path>,
    master: Option<&str>,
    freshness: &Freshness,
) -> Result<Client, SourceError> {
    let url = master
        .map(|m| {
            m.parse::<http::Uri>().map_err(|e| SourceError::Master {
                value: m.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let config = match url {
        None => config_from(kubeconfig).await?,
        Some(url) if kubeconfig.is_none() => kube::Config::new(url),
        Some(url) => {
            let mut c = config_from(kubeconfig).await?;
            c.cluster_url = url;
            c
        }
    };
    client_from_config(config, freshness)
}

/// A client for `config` whose list and watch responses mark their kind fresh in `freshness`.
pub fn client_from_config(
    config: kube::Config,
    freshness: &Freshness,
) -> Result<Client, SourceError> {
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(SourceError::Client)?
        .with_layer(&ActivityLayer(freshness.clone()))
        .build())
}

async fn config_from(kubeconfig: Option<&Path>) -> Result<kube::Config, SourceError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                SourceError::Kubeconfig {
                    path: path.to_owned(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| SourceError::Kubeconfig {
                    path: path.to_owned(),
                    source,
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(SourceError::InferConfig)?,
    };
    Ok(config)
}

/// The node name as kube-proxy finds it: `--hostname-override`, else `$NODE_NAME`, else the
/// hostname; trimmed and lower-cased.
pub fn node_name(hostname_override: Option<&str>) -> Result<String, SourceError> {
    let pick = |s: &str| Some(s.trim().to_lowercase()).filter(|s| !s.is_empty());
    if let Some(n) = hostname_override.and_then(pick) {
        return Ok(n);
    }
    if let Some(n) = std::env::var("NODE_NAME").ok().as_deref().and_then(pick) {
        return Ok(n);
    }
    const HOSTNAME: &str = "/proc/sys/kernel/hostname";
    let h = std::fs::read_to_string(HOSTNAME).map_err(|source| SourceError::Hostname {
        path: HOSTNAME,
        source,
    })?;
    pick(&h).ok_or_else(|| SourceError::Hostname {
        path: HOSTNAME,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "empty hostname"),
    })
}

/// Starts one watcher task per kind on the current tokio runtime.
pub fn start(client: Client, opts: &KubernetesOptions) -> Sources {
    let (tx, events) = mpsc::channel(opts.capacity.max(1));
    let (gate, ready) = Gate::new(SourceKind::ALL);
    let gate = Arc::new(gate);
    let fresh = &opts.freshness;
    let base = match opts.watch_timeout {
        Some(t) => watcher::Config::default().timeout(t),
        None => watcher::Config::default(),
    };
    let stock = base.clone().labels(STOCK_LABEL_SELECTOR);
    let mut tasks = vec![
        tokio::spawn(run(
            Api::<Service>::all(client.clone()),
            stock.clone(),
            Spec {
                kind: SourceKind::Services,
                wrap: ClusterEvent::Service,
                optional: false,
            },
            tx.clone(),
            Arc::clone(&gate),
            fresh.clone(),
        )),
        tokio::spawn(run(
            Api::<EndpointSlice>::all(client.clone()),
            stock,
            Spec {
                kind: SourceKind::EndpointSlices,
                wrap: ClusterEvent::Slice,
                optional: false,
            },
            tx.clone(),
            Arc::clone(&gate),
            fresh.clone(),
        )),
        tokio::spawn(run(
            Api::<Node>::all(client.clone()),
            base.clone().fields(&node_field_selector(&opts.node_name)),
            Spec {
                kind: SourceKind::Node,
                wrap: ClusterEvent::Node,
                optional: false,
            },
            tx.clone(),
            Arc::clone(&gate),
            fresh.clone(),
        )),
    ];
    let cidrs = Spec {
        kind: SourceKind::ServiceCidrs,
        wrap: ClusterEvent::ServiceCidr,
        optional: true,
    };
    if opts.service_cidrs {
        let api = Api::<ServiceCIDR>::all(client);
        tasks.push(tokio::spawn(run(api, base, cidrs, tx, gate, fresh.clone())));
    } else {
        tasks.push(tokio::spawn(async move {
            if send_empty_list(ClusterEvent::ServiceCidr, &tx).await {
                gate.listed(SourceKind::ServiceCidrs, &tx).await;
            }
        }));
    }
    tasks.push(tokio::spawn(freshness::monitor(
        fresh.clone(),
        opts.stale_after,
    )));
    Sources {
        events,
        ready,
        tasks,
        freshness: Some(fresh.clone()),
    }
}

/// How one kind is watched and wrapped.
struct Spec<K> {
    kind: SourceKind,
    wrap: fn(SourceEvent<K>) -> ClusterEvent,
    /// A kind the API server may not serve (404/403 on the first list: an empty set, stop watching).
    optional: bool,
}

/// Sends an empty list of one kind; false when the consumer is gone.
async fn send_empty_list<K>(
    wrap: fn(SourceEvent<K>) -> ClusterEvent,
    tx: &mpsc::Sender<ClusterEvent>,
) -> bool {
    for ev in super::list_events(wrap, []) {
        if tx.send(ev).await.is_err() {
            return false;
        }
    }
    true
}

/// Whether a watcher error says the kind is not served (404) or not allowed (403) on the first list.
fn not_available(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
            if s.code == 404 || s.code == 403 =>
        {
            Some(s.code)
        }
        _ => None,
    }
}

async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    spec: Spec<K>,
    tx: mpsc::Sender<ClusterEvent>,
    gate: Arc<Gate>,
    fresh: Freshness,
) where
    K: kube::Resource<DynamicType = ()>
        + Strip
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let kind = spec.kind.name();
    fresh.watch(spec.kind);
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    // A list under way: `ListStart` goes out with its first object (or its end), so a list that
    // fails before any page sends nothing. Its objects so far, for the log.
    let mut start_pending = false;
    let mut listing = 0usize;
    let mut listed = false;
    while let Some(item) = stream.next().await {
        let mut start = false;
        let out = match item {
            Ok(Event::Init) => {
                start_pending = true;
                listing = 0;
                None
            }
            Ok(Event::InitApply(mut o)) => {
                o.strip();
                start = std::mem::take(&mut start_pending);
                listing += 1;
                Some(SourceEvent::Applied(o))
            }
            Ok(Event::InitDone) => {
                start = std::mem::take(&mut start_pending);
                tracing::info!(kind, objects = listing, relist = listed, "listed");
                Some(SourceEvent::ListEnd)
            }
            Ok(Event::Apply(mut o)) => {
                o.strip();
                Some(SourceEvent::Applied(o))
            }
            Ok(Event::Delete(mut o)) => {
                o.strip();
                Some(SourceEvent::Deleted(o))
            }
            Err(e) => {
                if spec.optional
                    && !listed
                    && let Some(code) = not_available(&e)
                {
                    tracing::info!(
                        kind,
                        code,
                        "not served by the API server (or not allowed): continuing without"
                    );
                    fresh.unwatch(spec.kind);
                    if send_empty_list(spec.wrap, &tx).await {
                        gate.listed(spec.kind, &tx).await;
                    }
                    return;
                }
                tracing::warn!(kind, error = %e, "watch error; retrying with backoff");
                None
            }
        };
        let Some(ev) = out else { continue };
        let initial = matches!(ev, SourceEvent::ListEnd) && !listed;
        if start && tx.send((spec.wrap)(SourceEvent::ListStart)).await.is_err() {
            return;
        }
        if tx.send((spec.wrap)(ev)).await.is_err() {
            return;
        }
        if initial {
            listed = true;
            if !gate.listed(spec.kind, &tx).await {
                return;
            }
        }
    }
}
