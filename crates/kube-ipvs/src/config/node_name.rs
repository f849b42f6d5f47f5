//! Which Node this agent runs on: `--hostname-override`/`hostnameOverride`, else the `NODE_NAME`
//! environment variable (set from the downward API), else the kernel hostname. Lowercased and
//! trimmed as kube-proxy does (`nodeutil.GetHostname`), then checked to be a valid Node name.

use std::fmt;

/// Where the node name came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeNameSource {
    /// `--hostname-override` or the file's `hostnameOverride` (already merged by precedence).
    Override,
    /// The `NODE_NAME` environment variable.
    Env,
    /// The kernel hostname.
    Hostname,
}

impl fmt::Display for NodeNameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeNameSource::Override => "hostname override",
            NodeNameSource::Env => "NODE_NAME",
            NodeNameSource::Hostname => "hostname",
        })
    }
}

/// A validated Node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeName {
    pub name: String,
    pub source: NodeNameSource,
}

/// Why no usable node name was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    #[error("node name {value:?} from {origin} is not a valid Node name: {reason}{hint}")]
    Invalid {
        value: String,
        origin: NodeNameSource,
        reason: &'static str,
        hint: &'static str,
    },
    #[error(
        "no node name: no hostname override, NODE_NAME unset, and reading the hostname failed: {0}"
    )]
    NoHostname(String),
}

/// Longest Node name (a DNS subdomain).
const MAX_LEN: usize = 253;

/// Resolves the node name from its inputs; `hostname` is only called when needed.
pub fn resolve_node_name(
    hostname_override: Option<&str>,
    node_name_env: Option<&str>,
    hostname: impl FnOnce() -> Result<String, String>,
) -> Result<NodeName, NodeNameError> {
    let given = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (raw, source) = match (given(hostname_override), given(node_name_env)) {
        (Some(o), _) => (o, NodeNameSource::Override),
        (None, Some(e)) => (e, NodeNameSource::Env),
        (None, None) => {
            let h = hostname().map_err(NodeNameError::NoHostname)?;
            (h.trim().to_owned(), NodeNameSource::Hostname)
        }
    };
    let name = raw.to_lowercase();
    validate(&name).map_err(|reason| NodeNameError::Invalid {
        // An unexpanded `$(NODE_NAME)` means the pod spec lacks the env var.
        hint: if raw.contains("$(") {
            " (is the variable it refers to set in the pod's env?)"
        } else {
            ""
        },
        value: raw,
        origin: source,
        reason,
    })?;
    Ok(NodeName { name, source })
}

/// Reads the kernel hostname without a syscall wrapper crate.
pub fn system_hostname() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("reading /proc/sys/kernel/hostname: {e}"))
}

/// RFC 1123 subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both ends.
fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_LEN {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters");
        }
        if !label.chars().all(|c| alnum(c) || c == '-')
            || !label.starts_with(alnum)
            || !label.ends_with(alnum)
        {
            return Err(
                "must consist of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_hostname() -> Result<String, String> {
        panic!("hostname must not be read")
    }

    #[test]
    fn precedence() {
        let n = resolve_node_name(Some("Node-A"), Some("node-b"), no_hostname).unwrap();
        assert_eq!(
            (n.name.as_str(), n.source),
            ("node-a", NodeNameSource::Override)
        );
        let n = resolve_node_name(None, Some(" node-b\n"), no_hostname).unwrap();
        assert_eq!((n.name.as_str(), n.source), ("node-b", NodeNameSource::Env));
        let n = resolve_node_name(Some(""), Some(""), || Ok("Host.Example.com\n".into())).unwrap();
        assert_eq!(
            (n.name.as_str(), n.source),
            ("host.example.com", NodeNameSource::Hostname)
        );
    }

    #[test]
    fn errors() {
        let err = resolve_node_name(Some("$(NODE_NAME)"), None, no_hostname).unwrap_err();
        assert!(err.to_string().contains("pod's env"), "{err}");
        let err = resolve_node_name(None, Some("node_1"), no_hostname).unwrap_err();
        assert!(matches!(
            err,
            NodeNameError::Invalid {
                origin: NodeNameSource::Env,
                ..
            }
        ));
        let err = resolve_node_name(None, None, || Err("EPERM".into())).unwrap_err();
        assert_eq!(err, NodeNameError::NoHostname("EPERM".into()));
        for bad in [
            "-a",
            "a-",
            "a..b",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(127)),
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert!(validate("ip-10-0-0-1.ec2.internal").is_ok());
    }
}
