//! Kubernetes Events (events.k8s.io/v1) on objects rejected for bad input, so `kubectl describe
//! service` tells the owner what is wrong. Only objects newly rejected since the previous sync get
//! one, at most one per object per [`RateLimit::per_object`], and all of them together are held to
//! a token bucket so a bad rollout of many objects cannot flood the API server.
//!
//! The decision ([`EventGate`]) is pure and tested on its own; publishing runs on its own task
//! behind a bounded channel, so the sync loop never waits on the API server. The file source gets
//! [`EventSink::Disabled`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::model::{ObjectRef, Rejection};

/// Every [`Rejection::reason`], so the `kube_ipvs_rejected_objects` gauge shows zeros.
pub const ALL_REASONS: [&str; 17] = [
    "MissingName",
    "InvalidIP",
    "InvalidCIDR",
    "InvalidPort",
    "UnsupportedProtocol",
    "DuplicatePortName",
    "UnknownScheduler",
    "InvalidSchedulerFlag",
    "InvalidAffinityTimeout",
    "MissingServiceLabel",
    "SliceWithoutService",
    "VirtualServerConflict",
    "InvalidName",
    "Undecodable",
    "DuplicatePort",
    "InvalidAddressType",
    "UnsafeServiceCIDR",
];

/// Event notes are limited to 1 KiB by the API server.
const MAX_NOTE: usize = 1024;

/// Events waiting for the publisher; past this they are dropped (and logged), never awaited.
const QUEUE: usize = 256;

/// How often Events may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// At most one Event per object within this window.
    pub per_object: Duration,
    /// Events that may be sent at once.
    pub burst: u32,
    /// One more token after each such interval.
    pub refill_every: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_object: Duration::from_secs(600),
            burst: 20,
            refill_every: Duration::from_secs(3),
        }
    }
}

/// What the gate decided for one newly rejected object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send the Event.
    Send,
    /// The object had an Event within `per_object`.
    ObjectLimited,
    /// The global bucket is empty.
    GlobalLimited,
}

/// The rate limiter; `now` is any monotonic clock reading (time since an origin).
#[derive(Clone, Debug)]
pub struct EventGate {
    limit: RateLimit,
    last_sent: BTreeMap<ObjectRef, Duration>,
    tokens: u32,
    refilled_at: Duration,
}

impl EventGate {
    /// A gate with a full bucket.
    pub fn new(limit: RateLimit) -> Self {
        EventGate {
            limit,
            last_sent: BTreeMap::new(),
            tokens: limit.burst,
            refilled_at: Duration::ZERO,
        }
    }

    /// Decides for `obj` at `now` and records a send.
    pub fn admit(&mut self, obj: &ObjectRef, now: Duration) -> Admission {
        self.refill(now);
        let window = self.limit.per_object;
        // Forget objects whose window has passed (keeps the map bounded by recent Events).
        self.last_sent
            .retain(|_, sent| now.saturating_sub(*sent) < window);
        if self.last_sent.contains_key(obj) {
            return Admission::ObjectLimited;
        }
        if self.tokens == 0 {
            return Admission::GlobalLimited;
        }
        self.tokens -= 1;
        self.last_sent.insert(obj.clone(), now);
        Admission::Send
    }

    fn refill(&mut self, now: Duration) {
        let every = self.limit.refill_every.as_nanos().max(1);
        let elapsed = now.saturating_sub(self.refilled_at).as_nanos();
        let add = elapsed / every;
        if add == 0 {
            return;
        }
        let add_u32 = u32::try_from(add).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(add_u32).min(self.limit.burst);
        let step = u64::try_from(every.saturating_mul(add)).unwrap_or(u64::MAX);
        self.refilled_at = self
            .refilled_at
            .checked_add(Duration::from_nanos(step))
            .unwrap_or(now);
    }
}

/// Whether a rejection deserves an Event. A slice without a usable Service is usually not its
/// owner's mistake (the Service is skipped, another proxy's, or not seen yet): counted, not Evented.
pub fn eventworthy(r: &Rejection) -> bool {
    !matches!(r, Rejection::SliceWithoutService { .. })
}

/// The reference and Event for a rejected object.
pub fn event_for(obj: &ObjectRef, rejection: &Rejection) -> (ObjectReference, Event) {
    let reference = ObjectReference {
        api_version: Some(obj.kind.api_version().to_string()),
        kind: Some(obj.kind.as_str().to_string()),
        namespace: (!obj.namespace.is_empty()).then(|| obj.namespace.clone()),
        name: Some(obj.name.clone()),
        ..ObjectReference::default()
    };
    let mut note = format!(
        "kube-ipvs ignores this {}: {rejection}; its last valid version (if any) stays in effect",
        obj.kind.as_str()
    );
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let event = Event {
        type_: EventType::Warning,
        reason: rejection.reason().to_string(),
        note: Some(note),
        action: "Validate".to_string(),
        secondary: None,
    };
    (reference, event)
}

/// Where admitted Events go.
#[derive(Debug, Clone)]
pub enum EventSink {
    /// No API server (the file source): nothing is sent.
    Disabled,
    /// The publisher task.
    Kubernetes(mpsc::Sender<(ObjectRef, Rejection)>),
}

impl EventSink {
    /// A sink and the receiving end for [`spawn_publisher`] (no runtime needed yet).
    pub fn channel() -> (Self, mpsc::Receiver<(ObjectRef, Rejection)>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (EventSink::Kubernetes(tx), rx)
    }

    /// Starts the publisher task writing through `client` as `reporter`.
    pub fn kubernetes(client: kube::Client, reporter: Reporter) -> (Self, JoinHandle<()>) {
        let (sink, rx) = Self::channel();
        (sink, spawn_publisher(rx, client, reporter))
    }

    fn send(&self, obj: &ObjectRef, rejection: &Rejection) {
        if let EventSink::Kubernetes(tx) = self
            && let Err(e) = tx.try_send((obj.clone(), rejection.clone()))
        {
            tracing::warn!(object = %obj, error = %e, "Event dropped: publisher queue full or closed");
        }
    }
}

/// Publishes what the sink queues, one Event at a time, until every sender is gone.
pub fn spawn_publisher(
    mut rx: mpsc::Receiver<(ObjectRef, Rejection)>,
    client: kube::Client,
    reporter: Reporter,
) -> JoinHandle<()> {
    let recorder = Recorder::new(client, reporter);
    tokio::spawn(async move {
        while let Some((obj, rejection)) = rx.recv().await {
            let (reference, event) = event_for(&obj, &rejection);
            match recorder.publish(&event, &reference).await {
                Ok(()) => tracing::debug!(object = %obj, reason = %event.reason, "Event sent"),
                Err(e) => {
                    tracing::warn!(object = %obj, reason = %event.reason, error = %e, "sending Event failed");
                }
            }
        }
    })
}

/// Turns the rejected set reported after each sync into Events for new entries.
#[derive(Debug)]
pub struct RejectionEvents {
    previous: BTreeSet<ObjectRef>,
    gate: EventGate,
    sink: EventSink,
}

impl RejectionEvents {
    /// Events go to `sink`, limited by `limit`.
    pub fn new(sink: EventSink, limit: RateLimit) -> Self {
        RejectionEvents {
            previous: BTreeSet::new(),
            gate: EventGate::new(limit),
            sink,
        }
    }

    /// Sends Events for objects rejected now and not before; returns the objects sent for.
    pub fn observe(
        &mut self,
        current: &BTreeMap<ObjectRef, Rejection>,
        now: Duration,
    ) -> Vec<ObjectRef> {
        let mut sent = Vec::new();
        for (obj, rejection) in current {
            if self.previous.contains(obj) || !eventworthy(rejection) {
                continue;
            }
            match self.gate.admit(obj, now) {
                Admission::Send => {
                    self.sink.send(obj, rejection);
                    sent.push(obj.clone());
                }
                Admission::ObjectLimited => {}
                Admission::GlobalLimited => {
                    tracing::debug!(object = %obj, "Event rate-limited");
                }
            }
        }
        self.previous = current.keys().cloned().collect();
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKind;

    fn svc(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Service,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn bad_ip() -> Rejection {
        Rejection::InvalidIp {
            field: "spec.clusterIP".into(),
            value: "10.0.0.300".into(),
        }
    }

    #[test]
    fn every_reason_is_listed() {
        let samples = [
            Rejection::MissingName,
            bad_ip(),
            Rejection::InvalidCidr {
                field: "f".into(),
                value: "v".into(),
            },
            Rejection::InvalidPort {
                field: "f".into(),
                value: 0,
            },
            Rejection::UnsupportedProtocol {
                field: "f".into(),
                value: "v".into(),
            },
            Rejection::DuplicatePortName { value: "v".into() },
            Rejection::UnknownScheduler { value: "v".into() },
            Rejection::InvalidSchedulerFlag {
                value: "v".into(),
                scheduler: "rr".into(),
            },
            Rejection::InvalidAffinityTimeout { value: 0 },
            Rejection::MissingServiceLabel,
            Rejection::SliceWithoutService {
                service: "a/b".into(),
            },
            Rejection::VirtualServerConflict {
                vs: "v".into(),
                owner: "o".into(),
            },
            Rejection::InvalidName {
                field: "f".into(),
                value: "v".into(),
                why: "w",
            },
            Rejection::Undecodable {
                message: "m".into(),
            },
            Rejection::DuplicatePort {
                field: "f".into(),
                value: "v".into(),
            },
            Rejection::InvalidAddressType { value: "v".into() },
            Rejection::UnsafeServiceCidr {
                cidr: "0.0.0.0/0".into(),
                why: "w".into(),
            },
        ];
        let reasons: Vec<&str> = samples.iter().map(Rejection::reason).collect();
        assert_eq!(reasons, ALL_REASONS);
    }

    #[test]
    fn gate_table() {
        let limit = RateLimit {
            per_object: Duration::from_secs(600),
            burst: 2,
            refill_every: Duration::from_secs(10),
        };
        // (object, time in s, expected)
        let steps: &[(&str, u64, Admission)] = &[
            ("a", 0, Admission::Send),
            ("a", 1, Admission::ObjectLimited),
            ("b", 2, Admission::Send),
            ("c", 3, Admission::GlobalLimited), // bucket of 2 empty
            ("c", 10, Admission::Send),         // one token back after 10 s
            ("d", 11, Admission::GlobalLimited),
            ("d", 30, Admission::Send), // two tokens back, capped at burst
            ("e", 31, Admission::Send),
            ("f", 32, Admission::GlobalLimited),
            ("a", 599, Admission::ObjectLimited), // still within a's window
            ("a", 600, Admission::Send),          // window passed (and tokens refilled)
        ];
        let mut g = EventGate::new(limit);
        for (i, (name, at, want)) in steps.iter().enumerate() {
            assert_eq!(
                g.admit(&svc(name), Duration::from_secs(*at)),
                *want,
                "step {i}: {name} at {at}s"
            );
        }
        // Old entries are forgotten.
        // a (600) and b, c, d, e (sent within the 600 s before 600) are remembered.
        assert_eq!(g.last_sent.len(), 5);
        g.admit(&svc("z"), Duration::from_secs(10_000));
        assert_eq!(g.last_sent.len(), 1);
    }

    #[test]
    fn only_new_rejections_and_not_orphan_slices() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut ev = RejectionEvents::new(EventSink::Kubernetes(tx), RateLimit::default());
        let slice = ObjectRef {
            kind: ObjectKind::EndpointSlice,
            namespace: "ns".into(),
            name: "s-1".into(),
        };
        let mut current = BTreeMap::from([
            (svc("a"), bad_ip()),
            (
                slice,
                Rejection::SliceWithoutService {
                    service: "ns/x".into(),
                },
            ),
        ]);
        assert_eq!(ev.observe(&current, Duration::ZERO), vec![svc("a")]);
        // Still rejected: nothing new.
        assert!(ev.observe(&current, Duration::from_secs(1)).is_empty());
        current.insert(svc("b"), Rejection::MissingName);
        assert_eq!(ev.observe(&current, Duration::from_secs(2)), vec![svc("b")]);
        // a fixed, then broken again within 10 minutes: no second Event.
        current.remove(&svc("a"));
        ev.observe(&current, Duration::from_secs(3));
        current.insert(svc("a"), bad_ip());
        assert!(ev.observe(&current, Duration::from_secs(4)).is_empty());
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|(o, r)| format!("{o} {}", r.reason()))
            .collect();
        assert_eq!(got, ["Service ns/a InvalidIP", "Service ns/b MissingName"]);
    }

    #[test]
    fn event_names_reason_and_field() {
        let (reference, event) = event_for(&svc("a"), &bad_ip());
        assert_eq!(reference.kind.as_deref(), Some("Service"));
        assert_eq!(reference.api_version.as_deref(), Some("v1"));
        assert_eq!(reference.namespace.as_deref(), Some("ns"));
        assert_eq!(event.reason, "InvalidIP");
        assert_eq!(event.type_, EventType::Warning);
        let note = event.note.unwrap();
        assert!(note.contains("spec.clusterIP"), "{note}");
        assert!(note.contains("10.0.0.300"), "{note}");
        // Cluster-scoped objects have no namespace.
        let node = ObjectRef {
            kind: ObjectKind::ServiceCidr,
            namespace: String::new(),
            name: "kubernetes".into(),
        };
        let (r, _) = event_for(
            &node,
            &Rejection::InvalidCidr {
                field: "spec.cidrs[0]".into(),
                value: "x".repeat(4000),
            },
        );
        assert_eq!(r.namespace, None);
        assert_eq!(r.api_version.as_deref(), Some("networking.k8s.io/v1"));
    }

    #[tokio::test]
    async fn publishes_to_the_api_server() {
        let api = fake_apiserver::FakeApiServer::start().await.unwrap();
        let client = api.kube_client().unwrap();
        let reporter = Reporter {
            controller: "kube-ipvs".into(),
            instance: Some("node-1".into()),
        };
        let (sink, task) = EventSink::kubernetes(client, reporter);
        let mut ev = RejectionEvents::new(sink, RateLimit::default());
        ev.observe(&BTreeMap::from([(svc("a"), bad_ip())]), Duration::ZERO);
        let mut events = Vec::new();
        for _ in 0..200 {
            events = api.events();
            if !events.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e["reason"], "InvalidIP");
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["regarding"]["kind"], "Service");
        assert_eq!(e["regarding"]["name"], "a");
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert_eq!(e["reportingController"], "kube-ipvs");
        assert!(e["note"].as_str().unwrap().contains("spec.clusterIP"));
    }
}
