//! Cluster events into the engine: `Applied`/`Deleted` map to one engine call (an unchanged
//! object changes nothing); a list (`ListStart`, `Applied`.., `ListEnd`: an initial list or a
//! re-list) deletes at its end only what was delivered before and not by it, so a re-list touches
//! only what changed and never flushes. Changes are counted by kind, with the time each was made
//! (the EndpointSlice's `last-change-trigger-time`, else when it was received), for the
//! network-programming latency of the sync that programs them.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::jiff::Timestamp;

use super::delivered::Delivered;
use super::report::{ChangeKind, Observer};
use crate::engine::Engine;
use crate::model::node_eligible;
use crate::source::strip::LAST_CHANGE_TRIGGER_TIME;
use crate::source::{ClusterEvent, SourceEvent};
use crate::types::ServiceName;

/// Changes received since the last sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Service changes (ServiceCIDR and Node changes count here too).
    pub service_changes: u64,
    /// EndpointSlice changes.
    pub endpoint_changes: u64,
    /// When each change was made (or received).
    pub since: Vec<SystemTime>,
}

impl Pending {
    /// Whether no change is pending.
    pub fn is_empty(&self) -> bool {
        self.service_changes == 0 && self.endpoint_changes == 0
    }
}

/// What ingesting one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// An object event (changed or not).
    Object,
    /// The sources completed their initial lists.
    Synced,
}

/// The intake: which objects were delivered (to diff re-lists against) and the pending changes.
#[derive(Debug, Default)]
pub struct Intake {
    services: Delivered<ServiceName>,
    slices: Delivered<ServiceName>,
    cidrs: Delivered<String>,
    /// The node's own Node, by name (the field selector yields at most one).
    node: Delivered<String>,
    pending: Pending,
    synced: bool,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ServiceName {
    ServiceName::new(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// Runs one engine call; whether it affected the desired state.
fn changed(engine: &mut Engine, call: impl FnOnce(&mut Engine)) -> bool {
    let before = engine.change_count();
    call(engine);
    engine.change_count() != before
}

/// When the EndpointSlice controller saw the change that produced this slice.
fn trigger_time(s: &EndpointSlice) -> Option<SystemTime> {
    let text = s
        .metadata
        .annotations
        .as_ref()?
        .get(LAST_CHANGE_TRIGGER_TIME)?;
    text.parse::<Timestamp>().ok().map(SystemTime::from)
}

impl Intake {
    /// A fresh intake (nothing delivered yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the sources completed their initial lists.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The changes since the last call, resetting them.
    pub fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.pending)
    }

    /// Whether changes are pending.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Feeds one event into the engine, counting what changed and telling the observer.
    pub fn ingest(
        &mut self,
        engine: &mut Engine,
        event: ClusterEvent,
        observer: &dyn Observer,
    ) -> Ingested {
        let now = SystemTime::now();
        let note = |kind: ChangeKind, at: SystemTime, pending: &mut Pending| {
            match kind {
                ChangeKind::Service => pending.service_changes += 1,
                ChangeKind::Endpoints => pending.endpoint_changes += 1,
            }
            pending.since.push(at.min(now));
            observer.queued(kind, now);
        };
        match event {
            ClusterEvent::Synced => {
                self.synced = true;
                return Ingested::Synced;
            }
            ClusterEvent::Service(ev) => {
                for changed in self.services(engine, ev) {
                    if changed {
                        note(ChangeKind::Service, now, &mut self.pending);
                    }
                }
            }
            ClusterEvent::Slice(ev) => {
                for at in self.slices(engine, ev) {
                    note(ChangeKind::Endpoints, at.unwrap_or(now), &mut self.pending);
                }
            }
            ClusterEvent::Node(ev) => {
                if let SourceEvent::Applied(n) = &ev {
                    observer.node_eligible(node_eligible(n));
                }
                if self.node(engine, ev) {
                    note(ChangeKind::Service, now, &mut self.pending);
                }
            }
            ClusterEvent::ServiceCidr(ev) => {
                for changed in self.cidrs(engine, ev) {
                    if changed {
                        note(ChangeKind::Service, now, &mut self.pending);
                    }
                }
            }
        }
        Ingested::Object
    }

    /// Applies Service events; one `bool` (changed) per object touched.
    fn services(&mut self, engine: &mut Engine, ev: SourceEvent<Service>) -> Vec<bool> {
        match ev {
            SourceEvent::Applied(s) => {
                self.services.applied(key_of(&s.metadata));
                vec![changed(engine, |e| e.apply_service(&s))]
            }
            SourceEvent::Deleted(s) => {
                let k = key_of(&s.metadata);
                self.services.deleted(&k);
                vec![changed(engine, |e| {
                    e.delete_service(k.namespace(), k.name())
                })]
            }
            SourceEvent::Invalid(o, why) => {
                self.services
                    .applied(ServiceName::new(&o.namespace, &o.name));
                engine.reject(o, why);
                Vec::new()
            }
            SourceEvent::ListStart => {
                self.services.start();
                Vec::new()
            }
            SourceEvent::ListEnd => self
                .services
                .end()
                .iter()
                .map(|k| changed(engine, |e| e.delete_service(k.namespace(), k.name())))
                .collect(),
        }
    }

    /// Applies EndpointSlice events; the trigger time of each change (if annotated).
    fn slices(
        &mut self,
        engine: &mut Engine,
        ev: SourceEvent<EndpointSlice>,
    ) -> Vec<Option<SystemTime>> {
        match ev {
            SourceEvent::Applied(s) => {
                self.slices.applied(key_of(&s.metadata));
                changed(engine, |e| e.apply_slice(&s))
                    .then(|| trigger_time(&s))
                    .into_iter()
                    .collect()
            }
            SourceEvent::Deleted(s) => {
                let k = key_of(&s.metadata);
                self.slices.deleted(&k);
                changed(engine, |e| e.delete_slice(k.namespace(), k.name()))
                    .then(|| trigger_time(&s))
                    .into_iter()
                    .collect()
            }
            SourceEvent::Invalid(o, why) => {
                self.slices.applied(ServiceName::new(&o.namespace, &o.name));
                engine.reject(o, why);
                Vec::new()
            }
            SourceEvent::ListStart => {
                self.slices.start();
                Vec::new()
            }
            SourceEvent::ListEnd => self
                .slices
                .end()
                .iter()
                .filter(|k| changed(engine, |e| e.delete_slice(k.namespace(), k.name())))
                .map(|_| None)
                .collect(),
        }
    }

    /// Applies the node's Node; whether it changed.
    fn node(&mut self, engine: &mut Engine, ev: SourceEvent<Node>) -> bool {
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        let gone = match ev {
            SourceEvent::Applied(n) => {
                self.node.applied(name(&n));
                return changed(engine, |e| e.apply_node(&n));
            }
            SourceEvent::Deleted(n) => {
                self.node.deleted(&name(&n));
                true
            }
            SourceEvent::Invalid(o, why) => {
                self.node.applied(o.name.clone());
                engine.reject(o, why);
                false
            }
            SourceEvent::ListStart => {
                self.node.start();
                false
            }
            SourceEvent::ListEnd => !self.node.end().is_empty(),
        };
        gone && self.node.is_empty() && changed(engine, Engine::delete_node)
    }

    /// Applies ServiceCIDR events; one `bool` (changed) per object touched.
    fn cidrs(&mut self, engine: &mut Engine, ev: SourceEvent<ServiceCIDR>) -> Vec<bool> {
        match ev {
            SourceEvent::Applied(c) => {
                self.cidrs
                    .applied(c.metadata.name.clone().unwrap_or_default());
                vec![changed(engine, |e| e.apply_service_cidr(&c))]
            }
            SourceEvent::Deleted(c) => {
                let n = c.metadata.name.clone().unwrap_or_default();
                self.cidrs.deleted(&n);
                vec![changed(engine, |e| e.delete_service_cidr(&n))]
            }
            SourceEvent::Invalid(o, why) => {
                self.cidrs.applied(o.name.clone());
                engine.reject(o, why);
                Vec::new()
            }
            SourceEvent::ListStart => {
                self.cidrs.start();
                Vec::new()
            }
            SourceEvent::ListEnd => self
                .cidrs
                .end()
                .iter()
                .map(|n| changed(engine, |e| e.delete_service_cidr(n)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::agent::report::{NoopObserver, SyncReport};
    use crate::desired::HealthCheck;
    use crate::model::{ObjectRef, Rejection};
    use crate::planner_config::PlannerConfig;
    use crate::source::list_events;
    use lab_kit::objects::{self, annotated, typed};

    fn svc(name: &str, ip: &str) -> Service {
        typed(objects::service("d", name, ip))
    }

    fn slice(name: &str, svc: &str, ip: &str, trigger: Option<&str>) -> EndpointSlice {
        let ann = trigger.map_or(json!({}), |t| json!({ LAST_CHANGE_TRIGGER_TIME: t }));
        typed(annotated(objects::slice("d", name, svc, &[ip]), ann))
    }

    fn engine() -> Engine {
        let mut c = PlannerConfig::new("n1");
        c.service_cidrs = vec!["10.96.0.0/16".parse().unwrap()];
        Engine::new(c)
    }

    #[derive(Default)]
    struct Queued(Mutex<Vec<ChangeKind>>);
    impl Observer for Queued {
        fn queued(&self, kind: ChangeKind, _: SystemTime) {
            self.0.lock().unwrap().push(kind);
        }
        fn synced(&self, _: &SyncReport) {}
        fn cluster(&self, _: &BTreeMap<ObjectRef, Rejection>, _: (u64, u64)) {}
        fn health_checks(&self, _: &BTreeMap<ServiceName, HealthCheck>) {}
    }

    /// Ingests a whole list of one kind.
    fn list<K>(
        i: &mut Intake,
        e: &mut Engine,
        wrap: fn(SourceEvent<K>) -> ClusterEvent,
        objects: Vec<K>,
        obs: &dyn Observer,
    ) {
        for ev in list_events(wrap, objects) {
            i.ingest(e, ev, obs);
        }
    }

    #[test]
    fn relist_is_a_diff_not_a_flush() {
        let mut e = engine();
        let mut i = Intake::new();
        let obs = Queued::default();
        let a = svc("a", "10.96.0.1");
        let b = svc("b", "10.96.0.2");
        list(
            &mut i,
            &mut e,
            ClusterEvent::Service,
            vec![a.clone(), b],
            &obs,
        );
        assert_eq!(i.take_pending().service_changes, 2);
        let ops = e.plan_full(Duration::ZERO);
        e.commit(&ops).unwrap();
        assert!(!e.has_changes());
        // Re-list: a unchanged, b gone, c new. Only b and c are changes; a is not re-planned.
        let c = svc("c", "10.96.0.3");
        list(&mut i, &mut e, ClusterEvent::Service, vec![a, c], &obs);
        let p = i.take_pending();
        assert_eq!((p.service_changes, p.endpoint_changes), (2, 0));
        let ops: Vec<String> = e
            .plan_incremental(Duration::ZERO)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(ops.iter().all(|o| !o.contains("10.96.0.1")), "{ops:?}");
        assert!(ops.iter().any(|o| o.contains("10.96.0.2")), "{ops:?}");
        assert!(ops.iter().any(|o| o.contains("10.96.0.3")), "{ops:?}");
        assert_eq!(obs.0.lock().unwrap().len(), 4);
        // Identical re-list: nothing.
        list(
            &mut i,
            &mut e,
            ClusterEvent::Service,
            vec![svc("a", "10.96.0.1"), svc("c", "10.96.0.3")],
            &NoopObserver,
        );
        assert!(!i.has_pending() && !e.has_changes());
    }

    #[test]
    fn slice_changes_carry_their_trigger_time() {
        let mut e = engine();
        let mut i = Intake::new();
        i.ingest(
            &mut e,
            ClusterEvent::Service(SourceEvent::Applied(svc("a", "10.96.0.1"))),
            &NoopObserver,
        );
        i.take_pending();
        let t = "2020-01-02T03:04:05Z";
        let ev = |s| ClusterEvent::Slice(SourceEvent::Applied(s));
        i.ingest(
            &mut e,
            ev(slice("a-1", "a", "10.1.0.1", Some(t))),
            &NoopObserver,
        );
        // The same content again is no change.
        i.ingest(
            &mut e,
            ev(slice("a-1", "a", "10.1.0.1", Some(t))),
            &NoopObserver,
        );
        i.ingest(
            &mut e,
            ev(slice("a-2", "a", "10.1.0.2", None)),
            &NoopObserver,
        );
        let p = i.take_pending();
        assert_eq!((p.service_changes, p.endpoint_changes), (0, 2));
        let want: SystemTime = t.parse::<Timestamp>().unwrap().into();
        assert_eq!(p.since.first(), Some(&want));
        assert!(p.since.get(1).unwrap() > &want, "received now");
        // Re-list without a-2: one deletion.
        list(
            &mut i,
            &mut e,
            ClusterEvent::Slice,
            vec![slice("a-1", "a", "10.1.0.1", Some(t))],
            &NoopObserver,
        );
        assert_eq!(i.take_pending().endpoint_changes, 1);
        assert_eq!(
            i.ingest(&mut e, ClusterEvent::Synced, &NoopObserver),
            Ingested::Synced
        );
        assert!(i.synced());
    }
}
