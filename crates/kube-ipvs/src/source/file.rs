//! The file source (`--source file:PATH`): Services, EndpointSlices, Nodes and ServiceCIDRs from a
//! YAML/JSON file or a directory of them (multi-document YAML and `List`s, read by [`crate::dump`]),
//! polled for changes and re-emitted as a list per kind that changed.
//!
//! A file that fails to read or parse keeps the last good state (and, before the first good read,
//! keeps the source not ready): a typo in a manifest never empties the tables. A failed file is
//! read again when it changes, or after a backoff (1 s doubling to [`MAX_RETRY`]) while it does
//! not, never every poll.
//!
//! An object that does not decode (a string where a number belongs, a `null` list item) is
//! delivered as [`SourceEvent::Invalid`] with the path of the offending field: its last good
//! version stays programmed and it is reported like any rejected object, exactly as for an
//! object that decodes but does not validate (`clusterIP: 10.96.0.999`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use tokio::sync::mpsc;

use super::readiness::Gate;
use super::selector::passes_stock_selector;
use super::strip::Strip;
use super::{ClusterEvent, DEFAULT_CAPACITY, SourceError, SourceEvent, SourceKind, Sources};
use crate::dump::ClusterDump;
use crate::model::{ObjectKind, ObjectRef, Rejection};

/// The longest wait before a file that failed to load is read again while it has not changed.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the file source reads.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// A file, or a directory whose `*.yaml`, `*.yml` and `*.json` files are read in name order.
    pub path: PathBuf,
    /// This node's name: the Node of that name is delivered.
    pub node_name: String,
    /// How often modification times are checked.
    pub poll: Duration,
    /// Event channel capacity.
    pub capacity: usize,
}

impl FileOptions {
    /// Defaults: poll every second.
    pub fn new(path: impl Into<PathBuf>, node_name: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            node_name: node_name.into(),
            poll: Duration::from_secs(1),
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// Identity of the files' contents as far as `stat` tells: path, mtime, size.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The files of `path`: itself, or a directory's YAML/JSON files sorted by name (hidden ones skipped).
pub fn files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        let ext_ok = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if !hidden && ext_ok && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn fingerprint(path: &Path) -> Result<Fingerprint, SourceError> {
    files(path)?
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).map_err(|source| SourceError::Io {
                path: p.clone(),
                source,
            })?;
            Ok((p, m.modified().ok(), m.len()))
        })
        .collect()
}

/// The state the files describe, selected and stripped as the Kubernetes source would deliver it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileState {
    /// Services passing the stock selector.
    pub services: Vec<Service>,
    /// EndpointSlices passing the stock selector.
    pub slices: Vec<EndpointSlice>,
    /// The node's Node, if present.
    pub node: Vec<Node>,
    /// ServiceCIDRs.
    pub service_cidrs: Vec<ServiceCIDR>,
    /// Objects of these kinds that do not decode (the node's Node only), in file order.
    pub invalid: Vec<(ObjectRef, Rejection)>,
}

impl FileState {
    fn invalid_of(&self, kind: ObjectKind) -> impl Iterator<Item = &(ObjectRef, Rejection)> {
        self.invalid.iter().filter(move |(o, _)| o.kind == kind)
    }
}

/// The events of one list of a kind: its objects, then those that did not decode.
fn kind_list<K>(
    wrap: fn(SourceEvent<K>) -> ClusterEvent,
    objects: Vec<K>,
    invalid: Vec<(ObjectRef, Rejection)>,
) -> impl Iterator<Item = ClusterEvent> {
    std::iter::once(SourceEvent::ListStart)
        .chain(objects.into_iter().map(SourceEvent::Applied))
        .chain(invalid.into_iter().map(|(o, r)| SourceEvent::Invalid(o, r)))
        .chain(std::iter::once(SourceEvent::ListEnd))
        .map(wrap)
}

/// Reads every file of `path` into a [`FileState`]; objects that do not decode are logged and
/// listed in [`FileState::invalid`].
pub fn load(path: &Path, node_name: &str) -> Result<FileState, SourceError> {
    let mut dump = ClusterDump::default();
    for f in files(path)? {
        dump.read_file(&f)?;
    }
    let mut invalid = Vec::new();
    for bad in &dump.bad {
        tracing::warn!(origin = %bad.origin, kind = %bad.kind, name = %crate::render::Escaped(&bad.name), error = %bad.message, "object does not decode; keeping its last good version");
        if let Some(o) = &bad.object
            && (o.kind != ObjectKind::Node || o.name == node_name)
        {
            let why = Rejection::Undecodable {
                message: bad.message.clone(),
            };
            invalid.push((o.clone(), why));
        }
    }
    fn keep<K: Strip>(items: Vec<K>, pass: impl Fn(&K) -> bool) -> Vec<K> {
        items
            .into_iter()
            .filter(|o| pass(o))
            .map(|mut o| {
                o.strip();
                o
            })
            .collect()
    }
    let node_name = node_name.to_owned();
    Ok(FileState {
        services: keep(dump.services, |s| {
            passes_stock_selector(s.metadata.labels.as_ref())
        }),
        slices: keep(dump.slices, |s| {
            passes_stock_selector(s.metadata.labels.as_ref())
        }),
        node: keep(dump.nodes, |n| {
            n.metadata.name.as_deref() == Some(node_name.as_str())
        }),
        service_cidrs: keep(dump.service_cidrs, |_| true),
        invalid,
    })
}

/// Starts polling `opts.path`.
pub fn start(opts: FileOptions) -> Sources {
    let (tx, events) = mpsc::channel(opts.capacity.max(1));
    let (gate, ready) = Gate::new(SourceKind::ALL);
    let task = tokio::spawn(run(opts, tx, Arc::new(gate)));
    Sources {
        events,
        ready,
        tasks: vec![task],
        freshness: None,
    }
}

async fn run(opts: FileOptions, tx: mpsc::Sender<ClusterEvent>, gate: Arc<Gate>) {
    let path = opts.path.display().to_string();
    let mut seen: Option<Fingerprint> = None;
    let mut last: Option<FileState> = None;
    // The files that failed to load, when to try them again, and the next backoff.
    let mut failed: Option<(Fingerprint, tokio::time::Instant, Duration)> = None;
    let mut tick = tokio::time::interval(opts.poll.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let fp = match fingerprint(&opts.path) {
            Ok(fp) => fp,
            Err(e) => {
                tracing::warn!(path, error = %e, "file source unreadable; keeping the last state");
                continue;
            }
        };
        if seen.as_ref() == Some(&fp) {
            continue;
        }
        let now = tokio::time::Instant::now();
        let backoff = match &failed {
            Some((f, at, _)) if *f == fp && now < *at => continue,
            Some((f, _, backoff)) if *f == fp => (*backoff * 2).min(MAX_RETRY),
            _ => Duration::from_secs(1),
        };
        let state = match load(&opts.path, &opts.node_name) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(path, error = %e, retry_in_s = backoff.as_secs(), "file source invalid; keeping the last state until it changes");
                failed = Some((fp, now + backoff, backoff));
                continue;
            }
        };
        failed = None;
        seen = Some(fp);
        let first = last.is_none();
        let prev = last.take().unwrap_or_default();
        tracing::info!(
            path,
            services = state.services.len(),
            slices = state.slices.len(),
            invalid = state.invalid.len(),
            "file source loaded"
        );
        let changed = |kind: ObjectKind, objects: bool| {
            first || objects || !state.invalid_of(kind).eq(prev.invalid_of(kind))
        };
        let mut sends: Vec<ClusterEvent> = Vec::new();
        let invalid = |kind: ObjectKind| state.invalid_of(kind).cloned().collect::<Vec<_>>();
        if changed(ObjectKind::Service, prev.services != state.services) {
            sends.extend(kind_list(
                ClusterEvent::Service,
                state.services.clone(),
                invalid(ObjectKind::Service),
            ));
        }
        if changed(ObjectKind::EndpointSlice, prev.slices != state.slices) {
            sends.extend(kind_list(
                ClusterEvent::Slice,
                state.slices.clone(),
                invalid(ObjectKind::EndpointSlice),
            ));
        }
        if changed(ObjectKind::Node, prev.node != state.node) {
            sends.extend(kind_list(
                ClusterEvent::Node,
                state.node.clone(),
                invalid(ObjectKind::Node),
            ));
        }
        if changed(
            ObjectKind::ServiceCidr,
            prev.service_cidrs != state.service_cidrs,
        ) {
            sends.extend(kind_list(
                ClusterEvent::ServiceCidr,
                state.service_cidrs.clone(),
                invalid(ObjectKind::ServiceCidr),
            ));
        }
        last = Some(state);
        for ev in sends {
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        if first {
            for kind in SourceKind::ALL {
                if !gate.listed(kind, &tx).await {
                    return;
                }
            }
        }
    }
}
