//! Names of the Kubernetes objects that own kernel state.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// `namespace/name` of a Service (Kubernetes' `NamespacedName`), cheap to clone (one shared
/// allocation). Not to be confused with [`ipvs_netlink::VirtualServiceKey`], the kernel's
/// protocol/address/port (or fwmark) identity of a virtual server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(Arc<str>);

impl ServiceName {
    /// Builds the name from its parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self(Arc::from(format!("{namespace}/{name}")))
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        self.0.split_once('/').map_or("", |(ns, _)| ns)
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or(&*self.0, |(_, n)| n)
    }

    /// `namespace/name`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    /// `namespace/name`, control characters escaped ([`crate::render::escape`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::render::Escaped(&self.0).fmt(f)
    }
}

impl Serialize for ServiceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// `namespace/name:port` of one Service port: the owner annotated on every virtual server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// The Service.
    pub service: ServiceName,
    /// The port name (empty for a single unnamed port).
    pub port: Arc<str>,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, crate::render::Escaped(&self.port))
    }
}

impl Serialize for ServicePortName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
