//! The Kubernetes API calls the agent makes, declared once.
//!
//! `deploy/clusterrole.yaml` must grant exactly [`API_ACCESS`] (checked by
//! `tests/config_deploy.rs`), and the tests below run the watchers and the event recorder against the
//! fake API server and classify every request they send: a call missing from the list, or a declared
//! verb nothing uses, fails them. So the ClusterRole follows the code, not a hand-kept copy.
//!
//! `kube-ipvs explain` needs nothing more: it lists (with a field or label selector) Services,
//! EndpointSlices, its Node and ServiceCIDRs, all granted here; its test
//! (`explain::gather::tests::api_reads_are_lists_the_cluster_role_grants`) checks each request
//! against [`API_ACCESS`], so it runs with the agent's ServiceAccount.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::ServiceCIDR;

/// An RBAC verb (the lower-case names RBAC rules use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
}

impl Verb {
    /// The name in an RBAC rule.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// The verbs used on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Resource (URL plural).
    pub resource: &'static str,
    /// Verbs used.
    pub verbs: &'static [Verb],
}

impl ApiAccess {
    /// Access to kind `K`, its group and plural taken from k8s-openapi (no spelling to drift).
    pub const fn of<K: k8s_openapi::Resource>(verbs: &'static [Verb]) -> Self {
        Self {
            group: K::GROUP,
            resource: K::URL_PATH_SEGMENT,
            verbs,
        }
    }
}

/// What a kube-runtime `watcher` does with the default `ListWatch` initial-list strategy: a (paged)
/// list, then a watch from its resourceVersion (and a re-list after 410 Gone).
const WATCHER: &[Verb] = &[Verb::List, Verb::Watch];

/// Every API call of `kube-ipvs run`.
pub const API_ACCESS: &[ApiAccess] = &[
    // source::kubernetes: one watcher per kind. The Node is watched with a field selector on its
    // name, which RBAC authorizes as list+watch on nodes; nothing gets a single object.
    ApiAccess::of::<Service>(WATCHER),
    ApiAccess::of::<EndpointSlice>(WATCHER),
    ApiAccess::of::<Node>(WATCHER),
    ApiAccess::of::<ServiceCIDR>(WATCHER),
    // Events on rejected Services through kube-runtime's `Recorder`: it creates an
    // events.k8s.io/v1 Event, then patches its count when the same event repeats.
    ApiAccess::of::<Event>(&[Verb::Create, Verb::Patch]),
];

/// Whether [`API_ACCESS`] declares `verb` on `group`/`resource`.
pub fn declared(group: &str, resource: &str, verb: Verb) -> bool {
    API_ACCESS
        .iter()
        .any(|a| a.group == group && a.resource == resource && a.verbs.contains(&verb))
}

/// The (group, resource, verb) an API request needs: `/api/v1/...` or `/apis/GROUP/VERSION/...`,
/// optionally `namespaces/NS/`, then the resource, an object name and a subresource
/// (`resource/subresource`, as RBAC names it). `None` for paths that are not resource requests.
#[cfg(test)]
pub(crate) fn classify(method: &str, path: &str, watch: bool) -> Option<(String, String, Verb)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    // `namespaces/NS/...` is namespaced; `namespaces` or `namespaces/NS` is the Namespace itself.
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        r => r,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let verb = match (method, named) {
        ("GET", _) if watch => Verb::Watch,
        ("GET", true) => Verb::Get,
        ("GET", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return None,
    };
    Some((group.to_owned(), resource, verb))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use fake_apiserver::FakeApiServer;
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event as Ev, EventType, Recorder, Reporter};

    use super::super::ClusterEvent;
    use super::super::kubernetes::{self, KubernetesOptions};
    use super::*;

    type Access = BTreeSet<(String, String, Verb)>;

    fn flatten(list: &[ApiAccess]) -> Access {
        list.iter()
            .flat_map(|a| {
                a.verbs
                    .iter()
                    .map(|v| (a.group.to_owned(), a.resource.to_owned(), *v))
            })
            .collect()
    }

    #[test]
    fn classifies_requests_as_rbac_does() {
        let cases = [
            (
                "GET",
                "/api/v1/services",
                false,
                ("", "services", Verb::List),
            ),
            (
                "GET",
                "/api/v1/services",
                true,
                ("", "services", Verb::Watch),
            ),
            ("GET", "/api/v1/nodes/n1", false, ("", "nodes", Verb::Get)),
            (
                "GET",
                "/apis/discovery.k8s.io/v1/namespaces/d/endpointslices",
                false,
                ("discovery.k8s.io", "endpointslices", Verb::List),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/d/events",
                false,
                ("events.k8s.io", "events", Verb::Create),
            ),
            (
                "PATCH",
                "/apis/events.k8s.io/v1/namespaces/d/events/e1",
                false,
                ("events.k8s.io", "events", Verb::Patch),
            ),
            (
                "PUT",
                "/api/v1/namespaces/d/services/web/status",
                false,
                ("", "services/status", Verb::Update),
            ),
            (
                "GET",
                "/api/v1/namespaces/d",
                false,
                ("", "namespaces", Verb::Get),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/pods",
                false,
                ("", "pods", Verb::DeleteCollection),
            ),
        ];
        for (method, path, watch, (g, r, v)) in cases {
            assert_eq!(
                classify(method, path, watch),
                Some((g.to_owned(), r.to_owned(), v)),
                "{method} {path}"
            );
        }
        assert_eq!(classify("GET", "/version", false), None);
        assert_eq!(classify("GET", "/apis", false), None);
    }

    #[test]
    fn declared_kinds_are_named_as_the_api_names_them() {
        let names: Vec<(&str, &str)> = API_ACCESS.iter().map(|a| (a.group, a.resource)).collect();
        assert_eq!(
            names,
            [
                ("", "services"),
                ("discovery.k8s.io", "endpointslices"),
                ("", "nodes"),
                ("networking.k8s.io", "servicecidrs"),
                ("events.k8s.io", "events"),
            ]
        );
        assert!(declared("", "nodes", Verb::Watch));
        assert!(!declared("", "nodes", Verb::Get));
    }

    /// Runs the Kubernetes source to its watches and publishes one event twice (create, then patch),
    /// then classifies every request the fake API server saw: the set must be exactly
    /// [`API_ACCESS`] (nothing undeclared requested, nothing declared unused).
    #[tokio::test]
    async fn the_agents_requests_are_exactly_the_declared_access() {
        let fake = FakeApiServer::start().await.unwrap();
        let mut sources =
            kubernetes::start(fake.kube_client().unwrap(), &KubernetesOptions::new("n1"));
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), sources.recv())
                .await
                .expect("timed out before Synced")
                .expect("sources ended");
            if ev == ClusterEvent::Synced {
                break;
            }
        }
        for _ in 0..400 {
            if fake.open_watches() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(fake.open_watches(), 4, "every watcher reached its watch");

        // The recorder as the agent constructs it (kube-runtime's, events.k8s.io/v1).
        let recorder = Recorder::new(
            fake.kube_client().unwrap(),
            Reporter {
                controller: "kube-ipvs".into(),
                instance: Some("n1".into()),
            },
        );
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..Default::default()
        };
        let ev = Ev {
            type_: EventType::Warning,
            reason: "InvalidService".into(),
            note: Some("spec.ports[0].port: 0 is out of range".into()),
            action: "Reject".into(),
            secondary: None,
        };
        recorder.publish(&ev, &reference).await.unwrap();
        recorder.publish(&ev, &reference).await.unwrap();

        let mut seen = Access::new();
        for r in fake.request_log() {
            let access = classify(&r.method, &r.path, r.watch)
                .unwrap_or_else(|| panic!("not a resource request: {} {}", r.method, r.path));
            assert!(
                declared(&access.0, &access.1, access.2),
                "{} {} needs {access:?}, which API_ACCESS does not declare",
                r.method,
                r.path
            );
            seen.insert(access);
        }
        assert_eq!(seen, flatten(API_ACCESS), "declared but never requested");
    }
}
