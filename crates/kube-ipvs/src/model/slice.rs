//! An EndpointSlice reduced to what endpoint selection needs, validated.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1 as discovery;

use super::reject::{Rejection, SkipReason};
use super::validate::{NameRule, check_name, usable_ip};
use crate::types::{Family, Proto, ServiceName};

/// The label joining a slice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
const LABEL_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// A named port of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// Name (empty when unnamed), matched against the Service port name.
    pub name: Arc<str>,
    /// Protocol.
    pub proto: Proto,
    /// Target port.
    pub port: u16,
}

/// One endpoint: its first address and conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The first address (stock uses only that one).
    pub addr: IpAddr,
    /// `nodeName` is this node.
    pub local: bool,
    /// conditions.ready (nil = true).
    pub ready: bool,
    /// conditions.serving (nil = true).
    pub serving: bool,
    /// conditions.terminating (nil = false).
    pub terminating: bool,
    /// hints.forZones (interned names); empty = no zone hint.
    pub zone_hints: Box<[Arc<str>]>,
    /// hints.forNodes present.
    pub has_node_hints: bool,
    /// hints.forNodes names this node.
    pub node_hint_here: bool,
}

/// A validated slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The Service it belongs to.
    pub service: ServiceName,
    /// addressType.
    pub family: Family,
    /// Ports.
    pub ports: Box<[SlicePort]>,
    /// Endpoints with at least one address.
    pub endpoints: Box<[Endpoint]>,
}

/// Shares the allocations of zone and port names across all objects (a cluster has a handful of
/// zones and few distinct port names). Shared port names also make matching a slice port to its
/// Service port a pointer comparison.
#[derive(Debug, Default)]
pub struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    /// The shared copy of a string.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(Box::from(s), a.clone());
        a
    }

    /// Forgets names no object uses any more (after a re-list), so the table stays as small as
    /// the set of names in use.
    pub fn prune(&mut self) {
        self.0.retain(|_, a| Arc::strong_count(a) > 1);
    }
}

/// What a slice converts to.
#[derive(Clone, Debug)]
pub enum ConvertedSlice {
    /// Usable.
    Slice(Slice),
    /// Ignored (FQDN, or the deprecated IP type).
    Skip(SkipReason),
}

/// Converts a slice for node `node`.
pub fn convert_slice(
    s: &discovery::EndpointSlice,
    node: &str,
    names: &mut Interner,
) -> Result<ConvertedSlice, Rejection> {
    if s.metadata.name.is_none() || s.metadata.namespace.is_none() {
        return Err(Rejection::MissingName);
    }
    let ns = s.metadata.namespace.as_deref().unwrap_or_default();
    check_name("metadata.namespace", ns, NameRule::Label)?;
    check_name(
        "metadata.name",
        s.metadata.name.as_deref().unwrap_or_default(),
        NameRule::Subdomain,
    )?;
    let family = match s.address_type.as_str() {
        "IPv4" => Family::V4,
        "IPv6" => Family::V6,
        "FQDN" => return Ok(ConvertedSlice::Skip(SkipReason::FqdnSlice)),
        // discovery/v1beta1's deprecated type: the API server still keeps and serves slices
        // created with it (it refuses it only on create), and stock reads IPv4 and IPv6 slices
        // only (`supportedEndpointSliceAddressTypes`).
        "IP" => return Ok(ConvertedSlice::Skip(SkipReason::DeprecatedIpSlice)),
        // No API server accepts these (`validateAddressType`: "" is a required value, the
        // others are case-sensitive): a file's mistake, so said, never taken for FQDN. Stock
        // would not program it either.
        other => {
            return Err(Rejection::InvalidAddressType {
                value: other.to_owned(),
            });
        }
    };
    let labels = s.metadata.labels.as_ref();
    // The stock watch selector `!service-proxy-name,!headless` applies to slices too.
    if labels.is_some_and(|l| l.contains_key(LABEL_PROXY_NAME)) {
        return Ok(ConvertedSlice::Skip(SkipReason::ServiceProxyName));
    }
    if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
        return Ok(ConvertedSlice::Skip(SkipReason::HeadlessLabel));
    }
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SERVICE_NAME))
        .filter(|n| !n.is_empty())
        .ok_or(Rejection::MissingServiceLabel)?;
    check_name(
        &format!("metadata.labels[{LABEL_SERVICE_NAME}]"),
        service,
        NameRule::Label,
    )?;
    let mut ports = Vec::new();
    for (i, p) in s.ports.iter().flatten().enumerate() {
        // A port without a number is ignored, as stock does.
        let Some(raw) = p.port else { continue };
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            check_name(&format!("ports[{i}].name"), name, NameRule::Label)?;
        }
        let port =
            u16::try_from(raw)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Rejection::InvalidPort {
                    field: format!("ports[{i}].port"),
                    value: raw,
                })?;
        let value = p.protocol.as_deref().unwrap_or("TCP");
        let proto = Proto::from_k8s(value).ok_or_else(|| Rejection::UnsupportedProtocol {
            field: format!("ports[{i}].protocol"),
            value: value.to_owned(),
        })?;
        ports.push(SlicePort {
            name: names.get(p.name.as_deref().unwrap_or("")),
            proto,
            port,
        });
    }
    let mut endpoints = Vec::with_capacity(s.endpoints.len());
    for (i, ep) in s.endpoints.iter().enumerate() {
        let Some(raw) = ep.addresses.first() else {
            continue;
        };
        let field = || format!("endpoints[{i}].addresses[0]");
        let addr: IpAddr = usable_ip(field, raw)?;
        if Family::of(&addr) != family {
            return Err(Rejection::InvalidIp {
                field: field(),
                value: raw.clone(),
            });
        }
        let cond = ep.conditions.clone().unwrap_or_default();
        let ready = cond.ready.unwrap_or(true);
        let hints = ep.hints.as_ref();
        let zone_hints: Vec<Arc<str>> = hints
            .and_then(|h| h.for_zones.as_ref())
            .into_iter()
            .flatten()
            .map(|z| names.get(&z.name))
            .collect();
        let node_hints = hints
            .and_then(|h| h.for_nodes.as_ref())
            .filter(|n| !n.is_empty());
        endpoints.push(Endpoint {
            addr,
            local: ep.node_name.as_deref() == Some(node),
            ready,
            serving: cond.serving.unwrap_or(true),
            terminating: cond.terminating.unwrap_or(false),
            zone_hints: zone_hints.into(),
            has_node_hints: node_hints.is_some(),
            node_hint_here: node_hints.is_some_and(|n| n.iter().any(|h| h.name == node)),
        });
    }
    Ok(ConvertedSlice::Slice(Slice {
        service: ServiceName::new(ns, service),
        family,
        ports: ports.into(),
        endpoints: endpoints.into(),
    }))
}
