//! For the source tests: what a source sent, with each streamed list regrouped into one value
//! (the four kinds' lists interleave on the one channel).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use super::{ClusterEvent, SourceEvent, Sources};

/// One thing a source sent.
// Test values, compared and dropped; boxing the event would only add noise (as for ClusterEvent).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(super) enum Sent {
    /// A complete list of Services (`ListStart`, `Applied`.., `ListEnd`).
    Services(Vec<Service>),
    /// A complete list of EndpointSlices.
    Slices(Vec<EndpointSlice>),
    /// A complete list of the node's Node.
    Nodes(Vec<Node>),
    /// A complete list of ServiceCIDRs.
    Cidrs(Vec<ServiceCIDR>),
    /// An event outside any list.
    Event(ClusterEvent),
}

/// Lists under way, by kind.
#[derive(Debug, Default)]
pub(super) struct Regroup {
    services: Option<Vec<Service>>,
    slices: Option<Vec<EndpointSlice>>,
    nodes: Option<Vec<Node>>,
    cidrs: Option<Vec<ServiceCIDR>>,
}

fn step<K>(
    open: &mut Option<Vec<K>>,
    ev: SourceEvent<K>,
    whole: fn(Vec<K>) -> Sent,
    wrap: fn(SourceEvent<K>) -> ClusterEvent,
) -> Option<Sent> {
    match (ev, open.as_mut()) {
        (SourceEvent::ListStart, _) => {
            *open = Some(Vec::new());
            None
        }
        (SourceEvent::Applied(o), Some(list)) => {
            list.push(o);
            None
        }
        (SourceEvent::ListEnd, Some(_)) => open.take().map(whole),
        (ev, _) => Some(Sent::Event(wrap(ev))),
    }
}

impl Regroup {
    /// Takes one event; what it completes, if anything.
    pub(super) fn push(&mut self, ev: ClusterEvent) -> Option<Sent> {
        match ev {
            ClusterEvent::Service(e) => {
                step(&mut self.services, e, Sent::Services, ClusterEvent::Service)
            }
            ClusterEvent::Slice(e) => step(&mut self.slices, e, Sent::Slices, ClusterEvent::Slice),
            ClusterEvent::Node(e) => step(&mut self.nodes, e, Sent::Nodes, ClusterEvent::Node),
            ClusterEvent::ServiceCidr(e) => {
                step(&mut self.cidrs, e, Sent::Cidrs, ClusterEvent::ServiceCidr)
            }
            ClusterEvent::Synced => Some(Sent::Event(ClusterEvent::Synced)),
        }
    }

    /// The next thing `s` sends, waiting at most `limit` for each event.
    pub(super) async fn next(&mut self, s: &mut Sources, limit: Duration) -> Sent {
        loop {
            let ev = tokio::time::timeout(limit, s.recv())
                .await
                .expect("timed out")
                .expect("sources ended");
            if let Some(sent) = self.push(ev) {
                return sent;
            }
        }
    }
}
