//! The object store: one global resourceVersion counter (like etcd), the current objects per kind, the
//! change history that watches replay from, and the open watches.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::resource::Kind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status;

/// `(namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub type Key = (String, String);

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object has no `metadata.name` (and no `generateName`).
    #[error("{kind:?} object has no metadata.name")]
    NoName {
        /// Kind.
        kind: Kind,
    },
    /// The apiVersion/kind is not one the fake serves.
    #[error("unsupported object type {api_version}/{kind}")]
    UnknownType {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// POST of an existing object.
    #[error("{kind:?} {ns}/{name} already exists")]
    AlreadyExists {
        /// Kind.
        kind: Kind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// PUT/PATCH of a missing object.
    #[error("{kind:?} {ns}/{name} not found")]
    NotFound {
        /// Kind.
        kind: Kind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
}

/// A watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug)]
struct Change {
    rv: u64,
    kind: Kind,
    ty: EventType,
    old: Option<Arc<Value>>,
    new: Arc<Value>,
}

/// What a watch or list selects.
#[derive(Clone, Debug)]
pub struct Filter {
    /// Kind.
    pub kind: Kind,
    /// Only this namespace (namespaced URL), else all.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                == ns
        });
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this watch sees for a change: an object moving into the selection is ADDED, out of it
    /// DELETED, as the real API server does.
    fn event_for(&self, c: &Change) -> Option<&'static str> {
        if c.kind != self.kind {
            return None;
        }
        let now = self.matches(&c.new);
        let before = c.old.as_deref().is_some_and(|o| self.matches(o));
        match (c.ty, before, now) {
            (EventType::Deleted, _, true) => Some("DELETED"),
            (EventType::Deleted, _, false) => None,
            (_, true, true) => Some("MODIFIED"),
            (_, false, true) => Some("ADDED"),
            (_, true, false) => Some("DELETED"),
            (_, false, false) => None,
        }
    }
}

#[derive(Debug)]
struct Watch {
    filter: Filter,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// Objects, ordered by (namespace, name).
    pub items: Vec<Arc<Value>>,
    /// The list's resourceVersion.
    pub rv: u64,
    /// Continue token when more remain.
    pub continue_token: Option<String>,
}

/// Why a list or watch could not be served.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The requested resourceVersion (or continue token) is older than the last compaction.
    Expired {
        /// Requested.
        requested: u64,
        /// Oldest still available.
        oldest: u64,
    },
    /// A malformed continue token.
    BadContinue,
}

/// The state behind the server.
#[derive(Debug, Default)]
pub struct Store {
    rv: u64,
    compacted: u64,
    uids: u64,
    objects: BTreeMap<Kind, BTreeMap<Key, Arc<Value>>>,
    history: Vec<Change>,
    watches: Vec<Watch>,
    /// Stalled watch streams: kept open, never written to.
    stalled: Vec<mpsc::UnboundedSender<Bytes>>,
}

fn line(ty: &str, obj: &str) -> Bytes {
    Bytes::from(format!("{{\"type\":\"{ty}\",\"object\":{obj}}}\n"))
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Store {
    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The object's key, defaulting the namespace of namespaced kinds to `default`.
    fn key_of(kind: Kind, obj: &Value) -> Result<Key, StoreError> {
        let name = meta_str(obj, "name").ok_or(StoreError::NoName { kind })?;
        let ns = if kind.resource().namespaced {
            meta_str(obj, "namespace").unwrap_or("default")
        } else {
            ""
        };
        Ok((ns.to_owned(), name.to_owned()))
    }

    /// Fills in apiVersion/kind, namespace, uid, creationTimestamp and the new resourceVersion.
    fn stamp(&mut self, kind: Kind, key: &Key, obj: &mut Value, old: Option<&Value>) -> u64 {
        let res = kind.resource();
        self.rv += 1;
        let rv = self.rv;
        if !obj.is_object() {
            *obj = json!({});
        }
        if let Value::Object(o) = obj {
            o.insert("apiVersion".into(), Value::String(res.api_version()));
            o.insert("kind".into(), Value::String(res.kind_name.into()));
            let meta = o.entry("metadata").or_insert_with(|| json!({}));
            if !meta.is_object() {
                *meta = json!({});
            }
            if let Value::Object(m) = meta {
                m.insert("name".into(), Value::String(key.1.clone()));
                if res.namespaced {
                    m.insert("namespace".into(), Value::String(key.0.clone()));
                }
                m.insert("resourceVersion".into(), Value::String(rv.to_string()));
                let old_uid = old.and_then(|o| meta_str(o, "uid")).map(str::to_owned);
                if let Some(uid) = old_uid {
                    m.insert("uid".into(), Value::String(uid));
                } else if !m.get("uid").is_some_and(Value::is_string) {
                    self.uids += 1;
                    m.insert(
                        "uid".into(),
                        Value::String(format!("00000000-0000-4000-8000-{:012x}", self.uids)),
                    );
                }
                m.entry("creationTimestamp")
                    .or_insert_with(|| Value::String("2026-01-01T00:00:00Z".into()));
            }
        }
        rv
    }

    fn record(
        &mut self,
        rv: u64,
        kind: Kind,
        ty: EventType,
        old: Option<Arc<Value>>,
        new: Arc<Value>,
    ) {
        let change = Change {
            rv,
            kind,
            ty,
            old,
            new,
        };
        // Serialized once, and only if a watch wants it (bulk loads before any watch stay cheap).
        let mut text: Option<String> = None;
        self.watches.retain(|w| match w.filter.event_for(&change) {
            Some(ty) => {
                let t = text
                    .get_or_insert_with(|| serde_json::to_string(&*change.new).unwrap_or_default());
                w.tx.send(line(ty, t)).is_ok()
            }
            None => !w.tx.is_closed(),
        });
        self.history.push(change);
    }

    /// Creates or replaces an object (what a test's `apply` and a server-side apply do).
    pub fn upsert(&mut self, kind: Kind, mut obj: Value) -> Result<Arc<Value>, StoreError> {
        let key = Self::key_of(kind, &obj)?;
        let old = self.objects.get(&kind).and_then(|m| m.get(&key)).cloned();
        let rv = self.stamp(kind, &key, &mut obj, old.as_deref());
        let new = Arc::new(obj);
        self.objects
            .entry(kind)
            .or_default()
            .insert(key, Arc::clone(&new));
        let ty = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(rv, kind, ty, old, Arc::clone(&new));
        Ok(new)
    }

    /// POST: fails if the object exists; honours `generateName`.
    pub fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        if kind.resource().namespaced
            && let Some(Value::Object(m)) = obj.get_mut("metadata")
        {
            m.insert("namespace".into(), Value::String(ns.to_owned()));
        }
        if meta_str(&obj, "name").is_none()
            && let Some(prefix) = meta_str(&obj, "generateName").map(str::to_owned)
            && let Some(Value::Object(m)) = obj.get_mut("metadata")
        {
            self.uids += 1;
            m.insert(
                "name".into(),
                Value::String(format!("{prefix}{:05x}", self.uids)),
            );
        }
        let key = Self::key_of(kind, &obj)?;
        if self.get(kind, &key.0, &key.1).is_some() {
            return Err(StoreError::AlreadyExists {
                kind,
                ns: key.0,
                name: key.1,
            });
        }
        self.upsert(kind, obj)
    }

    /// PATCH (merge semantics); `create` allows creating a missing object (server-side apply).
    pub fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        patch: &Value,
        create: bool,
    ) -> Result<Arc<Value>, StoreError> {
        let mut obj = match self.get(kind, ns, name) {
            Some(o) => (*o).clone(),
            None if create => json!({"metadata": {"name": name, "namespace": ns}}),
            None => {
                return Err(StoreError::NotFound {
                    kind,
                    ns: ns.to_owned(),
                    name: name.to_owned(),
                });
            }
        };
        crate::patch::merge(&mut obj, patch);
        if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.insert("name".into(), Value::String(name.to_owned()));
            if kind.resource().namespaced {
                m.insert("namespace".into(), Value::String(ns.to_owned()));
            }
        }
        self.upsert(kind, obj)
    }

    /// PUT of an existing object.
    pub fn replace(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        if self.get(kind, ns, name).is_none() {
            return Err(StoreError::NotFound {
                kind,
                ns: ns.to_owned(),
                name: name.to_owned(),
            });
        }
        let mut obj = obj;
        if let Some(Value::Object(m)) = obj.get_mut("metadata") {
            m.insert("name".into(), Value::String(name.to_owned()));
            if kind.resource().namespaced {
                m.insert("namespace".into(), Value::String(ns.to_owned()));
            }
        }
        self.upsert(kind, obj)
    }

    /// Deletes an object; the DELETED event carries the deletion's resourceVersion.
    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = (ns.to_owned(), name.to_owned());
        let old = self.objects.get_mut(&kind)?.remove(&key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut gone = (*old).clone();
        if let Some(Value::Object(m)) = gone.get_mut("metadata") {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let gone = Arc::new(gone);
        self.record(rv, kind, EventType::Deleted, Some(old), Arc::clone(&gone));
        Some(gone)
    }

    /// One object.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&kind)?
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// All objects of a kind, ordered by key.
    pub fn all(&self, kind: Kind) -> Vec<Arc<Value>> {
        self.objects
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A list page. The continue token is `rv/namespace/name` of the last item returned.
    pub fn list(
        &self,
        filter: &Filter,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<Page, ReadError> {
        let (rv, after) = match cont.filter(|c| !c.is_empty()) {
            None => (self.rv, None),
            Some(c) => {
                let mut parts = c.splitn(3, '/');
                let rv = parts
                    .next()
                    .and_then(|r| r.parse::<u64>().ok())
                    .ok_or(ReadError::BadContinue)?;
                let ns = parts.next().ok_or(ReadError::BadContinue)?;
                let name = parts.next().ok_or(ReadError::BadContinue)?;
                if rv < self.compacted {
                    return Err(ReadError::Expired {
                        requested: rv,
                        oldest: self.compacted,
                    });
                }
                (rv, Some((ns.to_owned(), name.to_owned())))
            }
        };
        let empty = BTreeMap::new();
        let objects = self.objects.get(&filter.kind).unwrap_or(&empty);
        let range = match &after {
            Some(k) => {
                objects.range::<Key, _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded))
            }
            None => objects.range::<Key, _>(..),
        };
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (k, v) in range {
            if !filter.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                break;
            }
            items.push(Arc::clone(v));
            last = Some(k);
        }
        let continue_token = match (more, last) {
            (true, Some((ns, name))) => Some(format!("{rv}/{ns}/{name}")),
            _ => None,
        };
        Ok(Page {
            items,
            rv,
            continue_token,
        })
    }

    /// Opens a watch. `from` is the resourceVersion to resume after; `None` ("" or "0") starts with
    /// synthetic ADDED events for the current objects. A `from` older than the last compaction yields
    /// one ERROR event with a 410 Status and the end of the stream, as the real API server does.
    pub fn watch(
        &mut self,
        filter: Filter,
        from: Option<u64>,
        bookmarks: bool,
    ) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        match from {
            Some(rv) if rv < self.compacted => {
                let st = status::expired(rv, self.compacted).to_string();
                let _ = tx.send(line("ERROR", &st));
                return rx;
            }
            Some(rv) => {
                // History is in resourceVersion order: skip to the first change after `rv`.
                let start = self.history.partition_point(|c| c.rv <= rv);
                for c in self.history.iter().skip(start) {
                    if let Some(ty) = filter.event_for(c) {
                        let _ = tx.send(line(
                            ty,
                            &serde_json::to_string(&*c.new).unwrap_or_default(),
                        ));
                    }
                }
            }
            None => {
                for obj in self
                    .objects
                    .get(&filter.kind)
                    .into_iter()
                    .flat_map(BTreeMap::values)
                {
                    if filter.matches(obj) {
                        let _ = tx.send(line(
                            "ADDED",
                            &serde_json::to_string(&**obj).unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        self.watches.push(Watch {
            filter,
            bookmarks,
            tx,
        });
        rx
    }

    /// Forgets the history: watches and continue tokens from before now get 410 Gone. Open watches get
    /// the 410 ERROR event and are closed (the API server does this to watchers that fell behind).
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
        let st = status::expired(self.rv.saturating_sub(1), self.rv).to_string();
        for w in self.watches.drain(..) {
            let _ = w.tx.send(line("ERROR", &st));
        }
    }

    /// Stalls every open watch stream (of `kind`, else of every kind): it stays open but receives
    /// nothing more (no event, no bookmark), as behind a proxy that stopped forwarding. Watches
    /// opened later work.
    pub fn stall_watches(&mut self, kind: Option<Kind>) -> usize {
        let (stall, keep) = self
            .watches
            .drain(..)
            .partition::<Vec<_>, _>(|w| kind.is_none_or(|k| w.filter.kind == k));
        self.watches = keep;
        let n = stall.len();
        self.stalled.extend(stall.into_iter().map(|w| w.tx));
        n
    }

    /// Ends every open watch stream cleanly (clients resume from their last resourceVersion).
    pub fn disconnect_watches(&mut self) -> usize {
        let n = self.watches.len();
        self.watches.clear();
        n
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that asked for bookmarks.
    pub fn bookmark(&mut self) {
        let rv = self.rv.to_string();
        self.watches.retain(|w| {
            if !w.bookmarks {
                return !w.tx.is_closed();
            }
            let res = w.filter.kind.resource();
            let obj = json!({"kind": res.kind_name, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv}});
            w.tx.send(line("BOOKMARK", &obj.to_string())).is_ok()
        });
    }

    /// How many watches are open.
    pub fn open_watches(&mut self) -> usize {
        self.watches.retain(|w| !w.tx.is_closed());
        self.watches.len()
    }
}
