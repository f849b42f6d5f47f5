//! URL parsing: which resource, namespace and object a request addresses, and its query parameters.

use std::collections::BTreeMap;

use crate::resource::Kind;

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/api/v1`, `/apis/GROUP/VERSION`
    Resources {
        /// Group ("" for core).
        group: String,
        /// Version.
        version: String,
    },
    /// A collection: `/api/v1/services`, `/api/v1/namespaces/NS/services`.
    Collection {
        /// Kind.
        kind: Kind,
        /// Namespace, if the URL names one.
        namespace: Option<String>,
    },
    /// One object.
    Object {
        /// Kind.
        kind: Kind,
        /// Namespace ("" for cluster-scoped).
        namespace: String,
        /// Name.
        name: String,
    },
    /// A kind this server does not know (404).
    Unknown,
}

/// Parses a request path.
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Route::Unknown,
    };
    let kind = |plural: &str| Kind::from_path(group, version, plural);
    let namespaced = |k: Kind| k.resource().namespaced;
    let found = match rest {
        [] => Some(Route::Resources {
            group: group.to_owned(),
            version: version.to_owned(),
        }),
        ["namespaces", ns, plural] => {
            kind(plural)
                .filter(|k| namespaced(*k))
                .map(|kind| Route::Collection {
                    kind,
                    namespace: Some((*ns).to_owned()),
                })
        }
        ["namespaces", ns, plural, name] => {
            kind(plural)
                .filter(|k| namespaced(*k))
                .map(|kind| Route::Object {
                    kind,
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                })
        }
        [plural] => kind(plural).map(|kind| Route::Collection {
            kind,
            namespace: None,
        }),
        [plural, name] => kind(plural)
            .filter(|k| !namespaced(*k))
            .map(|kind| Route::Object {
                kind,
                namespace: String::new(),
                name: (*name).to_owned(),
            }),
        _ => None,
    };
    found.unwrap_or(Route::Unknown)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Percent-decodes a query component (`+` is a space).
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into an ordered map (last value wins).
pub fn query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse("/api/v1/services"),
            Route::Collection {
                kind: Kind::Service,
                namespace: None
            }
        );
        assert_eq!(
            parse("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"),
            Route::Collection {
                kind: Kind::EndpointSlice,
                namespace: Some("a".into())
            }
        );
        assert_eq!(
            parse("/api/v1/nodes/n1"),
            Route::Object {
                kind: Kind::Node,
                namespace: String::new(),
                name: "n1".into()
            }
        );
        assert_eq!(
            parse("/apis/events.k8s.io/v1/namespaces/d/events/e1"),
            Route::Object {
                kind: Kind::Event,
                namespace: "d".into(),
                name: "e1".into()
            }
        );
        assert_eq!(parse("/api/v1/services/x"), Route::Unknown);
        assert_eq!(
            parse("/apis/networking.k8s.io/v1/servicecidrs"),
            Route::Collection {
                kind: Kind::ServiceCidr,
                namespace: None
            }
        );
        assert_eq!(parse("/apis/foo/v1/bars"), Route::Unknown);
        assert_eq!(parse("/version"), Route::Version);
    }

    #[test]
    fn query_decoding() {
        let q = query(Some(
            "labelSelector=%21a%2C%21b&watch=true&fieldSelector=metadata.name%3Dn+1",
        ));
        assert_eq!(q["labelSelector"], "!a,!b");
        assert_eq!(q["fieldSelector"], "metadata.name=n 1");
        assert_eq!(q["watch"], "true");
    }
}
