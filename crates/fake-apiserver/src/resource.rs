//! The resource types the fake serves: where they live in the URL space and how they are named.

/// A kind the fake API server stores and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 Service.
    Service,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// core/v1 Node.
    Node,
    /// networking.k8s.io/v1 ServiceCIDR.
    ServiceCidr,
    /// events.k8s.io/v1 Event (what kube-runtime's `Recorder` writes).
    Event,
    /// core/v1 Event (client-go's legacy recorder).
    CoreEvent,
}

/// Where a kind lives in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The kind.
    pub kind: Kind,
    /// API group, empty for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// URL plural.
    pub plural: &'static str,
    /// `kind` field.
    pub kind_name: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl ResourceType {
    /// `apiVersion` field: `v1` or `group/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Every type the fake knows, in a fixed order.
pub const RESOURCES: [ResourceType; 6] = [
    ResourceType {
        kind: Kind::Service,
        group: "",
        version: "v1",
        plural: "services",
        kind_name: "Service",
        namespaced: true,
    },
    ResourceType {
        kind: Kind::EndpointSlice,
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind_name: "EndpointSlice",
        namespaced: true,
    },
    ResourceType {
        kind: Kind::Node,
        group: "",
        version: "v1",
        plural: "nodes",
        kind_name: "Node",
        namespaced: false,
    },
    ResourceType {
        kind: Kind::ServiceCidr,
        group: "networking.k8s.io",
        version: "v1",
        plural: "servicecidrs",
        kind_name: "ServiceCIDR",
        namespaced: false,
    },
    ResourceType {
        kind: Kind::Event,
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind_name: "Event",
        namespaced: true,
    },
    ResourceType {
        kind: Kind::CoreEvent,
        group: "",
        version: "v1",
        plural: "events",
        kind_name: "Event",
        namespaced: true,
    },
];

impl Kind {
    /// Its resource type.
    pub fn resource(self) -> &'static ResourceType {
        // RESOURCES lists every kind exactly once.
        RESOURCES
            .iter()
            .find(|r| r.kind == self)
            .unwrap_or(&RESOURCES[0])
    }

    /// The kind for an object's `apiVersion` and `kind`.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        RESOURCES
            .iter()
            .find(|r| r.api_version() == api_version && r.kind_name == kind)
            .map(|r| r.kind)
    }

    /// The kind served at `group/version/plural`.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Kind> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .map(|r| r.kind)
    }
}
