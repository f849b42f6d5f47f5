//! Why an object was rejected or skipped: typed, so the agent can log, count and Event them.

use std::fmt;

use serde::Serialize;

use crate::render::Escaped;

/// The kind of a cluster object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ObjectKind {
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// core/v1 Node.
    Node,
    /// networking.k8s.io/v1 ServiceCIDR.
    ServiceCidr,
}

/// `Kind namespace/name` of an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kind.
    pub kind: ObjectKind,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `Kind namespace/name`, control characters escaped: a rejected object's name is whatever
    /// the input held, and must not forge lines of a report or a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ns, name) = (Escaped(&self.namespace), Escaped(&self.name));
        if self.namespace.is_empty() {
            write!(f, "{:?} {name}", self.kind)
        } else {
            write!(f, "{:?} {ns}/{name}", self.kind)
        }
    }
}

/// Why an object cannot be used. The object's last valid version (if any) stays in effect, and no
/// other object is affected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Rejection {
    /// metadata.name or metadata.namespace missing.
    #[error("metadata.name or metadata.namespace is missing")]
    MissingName,
    /// A name that is not what Kubernetes allows there (a DNS-1123 label or subdomain).
    #[error("{field}: invalid name {value:?}: {why}")]
    InvalidName {
        /// The field path.
        field: String,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// An object that does not decode into its Kubernetes type (a string where a number belongs,
    /// a `null` list item, ...); only its file source can deliver such an object.
    #[error("does not decode: {message}")]
    Undecodable {
        /// The decoder's message, with the field path.
        message: String,
    },
    /// A cluster IP, external IP, load-balancer IP or endpoint address does not parse.
    #[error("{field}: invalid IP address {value:?}")]
    InvalidIp {
        /// The field path.
        field: String,
        /// The offending value.
        value: String,
    },
    /// An address that parses but no proxier may program (unspecified, loopback, link-local,
    /// multicast, broadcast, IPv4-mapped IPv6).
    #[error("{field}: {value:?} {why}")]
    UnusableIp {
        /// The field path.
        field: String,
        /// The offending value.
        value: String,
        /// Why (the API server's wording where it has one).
        why: &'static str,
    },
    /// A CIDR does not parse.
    #[error("{field}: invalid CIDR {value:?}")]
    InvalidCidr {
        /// The field path.
        field: String,
        /// The offending value.
        value: String,
    },
    /// A port number outside 1-65535.
    #[error("{field}: invalid port {value}")]
    InvalidPort {
        /// The field path.
        field: String,
        /// The offending value.
        value: i32,
    },
    /// A protocol other than TCP, UDP or SCTP.
    #[error("{field}: unsupported protocol {value:?}")]
    UnsupportedProtocol {
        /// The field path.
        field: String,
        /// The offending value.
        value: String,
    },
    /// Two ports of one Service share a name.
    #[error("spec.ports: duplicate port name {value:?}")]
    DuplicatePortName {
        /// The name.
        value: String,
    },
    /// Two ports of one Service share a port number and protocol.
    #[error("{field}: duplicate port {value}")]
    DuplicatePort {
        /// The field path of the second one.
        field: String,
        /// `port/PROTOCOL`.
        value: String,
    },
    /// An EndpointSlice addressType missing, or other than IPv4, IPv6, FQDN (and the deprecated IP).
    #[error(
        "addressType: {} (IPv4, IPv6 or FQDN)",
        if value.is_empty() { "required".to_owned() } else { format!("unsupported value {value:?}") }
    )]
    InvalidAddressType {
        /// The offending value (empty when missing).
        value: String,
    },
    /// The scheduler annotation names no kernel scheduler.
    #[error("annotation kube-ipvs.io/scheduler: unknown scheduler {value:?}")]
    UnknownScheduler {
        /// The offending value.
        value: String,
    },
    /// A scheduler flag that does not exist or does not apply to the scheduler.
    #[error(
        "annotation kube-ipvs.io/scheduler-flags: {value:?} is not a flag of scheduler {scheduler}"
    )]
    InvalidSchedulerFlag {
        /// The offending flag.
        value: String,
        /// The scheduler in effect.
        scheduler: String,
    },
    /// sessionAffinityConfig.clientIP.timeoutSeconds outside 1-86400.
    #[error("spec.sessionAffinityConfig.clientIP.timeoutSeconds: invalid timeout {value}")]
    InvalidAffinityTimeout {
        /// The offending value.
        value: i32,
    },
    /// An EndpointSlice without the `kubernetes.io/service-name` label.
    #[error("missing label kubernetes.io/service-name")]
    MissingServiceLabel,
    /// An EndpointSlice whose Service is unknown (not yet seen, deleted, skipped or rejected).
    #[error("no usable Service {service}")]
    SliceWithoutService {
        /// `namespace/name` of the Service.
        service: String,
    },
    /// A service CIDR (a ServiceCIDR object's, or `--service-cluster-ip-range` reported on the
    /// Node) that one `local` route would make dangerous: its ClusterIPs are bound one by one
    /// instead, as stock kube-proxy does.
    #[error(
        "service CIDR {cidr} is not routed locally: {why}; its ClusterIPs are bound to the dummy device one by one instead"
    )]
    UnsafeServiceCidr {
        /// The CIDR.
        cidr: String,
        /// Why routing it would be unsafe.
        why: String,
    },
    /// Two Services claim the same virtual server; the one sorting first keeps it.
    #[error("virtual server {vs} is already owned by {owner}")]
    VirtualServerConflict {
        /// The contested virtual server.
        vs: String,
        /// The owner that keeps it.
        owner: String,
    },
}

impl Rejection {
    /// A CamelCase reason, stable across releases: the `reason` of the Kubernetes Event and the
    /// `reason` label of `kube_ipvs_rejected_objects`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingName => "MissingName",
            Self::InvalidName { .. } => "InvalidName",
            Self::Undecodable { .. } => "Undecodable",
            Self::InvalidIp { .. } | Self::UnusableIp { .. } => "InvalidIP",
            Self::InvalidCidr { .. } => "InvalidCIDR",
            Self::InvalidPort { .. } => "InvalidPort",
            Self::UnsupportedProtocol { .. } => "UnsupportedProtocol",
            Self::DuplicatePortName { .. } => "DuplicatePortName",
            Self::DuplicatePort { .. } => "DuplicatePort",
            Self::InvalidAddressType { .. } => "InvalidAddressType",
            Self::UnknownScheduler { .. } => "UnknownScheduler",
            Self::InvalidSchedulerFlag { .. } => "InvalidSchedulerFlag",
            Self::InvalidAffinityTimeout { .. } => "InvalidAffinityTimeout",
            Self::MissingServiceLabel => "MissingServiceLabel",
            Self::SliceWithoutService { .. } => "SliceWithoutService",
            Self::VirtualServerConflict { .. } => "VirtualServerConflict",
            Self::UnsafeServiceCidr { .. } => "UnsafeServiceCIDR",
        }
    }
}

impl ObjectKind {
    /// `apiVersion` of the kind (for object references in Events).
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Service | Self::Node => "v1",
            Self::EndpointSlice => "discovery.k8s.io/v1",
            Self::ServiceCidr => "networking.k8s.io/v1",
        }
    }

    /// The Kubernetes `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::EndpointSlice => "EndpointSlice",
            Self::Node => "Node",
            Self::ServiceCidr => "ServiceCIDR",
        }
    }
}

/// Why an object is deliberately not programmed (stock behaviour, not an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// type ExternalName.
    ExternalName,
    /// clusterIP None or empty.
    Headless,
    /// Label `service.kubernetes.io/service-proxy-name` (another proxy owns it).
    ServiceProxyName,
    /// Label `service.kubernetes.io/headless`.
    HeadlessLabel,
    /// An EndpointSlice of addressType FQDN.
    FqdnSlice,
    /// An EndpointSlice of the deprecated addressType IP (discovery/v1beta1).
    DeprecatedIpSlice,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ExternalName => "type ExternalName",
            Self::Headless => "headless (clusterIP None)",
            Self::ServiceProxyName => "label service.kubernetes.io/service-proxy-name is set",
            Self::HeadlessLabel => "label service.kubernetes.io/headless is set",
            Self::FqdnSlice => "addressType FQDN",
            Self::DeprecatedIpSlice => "addressType IP (deprecated; stock reads IPv4 and IPv6)",
        })
    }
}
