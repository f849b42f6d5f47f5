//! Which Service port owns each virtual server: what `kube-ipvs list --services` annotates.
//!
//! The agent publishes it after every sync (`Owners::from_desired(engine.desired())
//! .write_atomic(DEFAULT_PATH)`), so `list` can name owners without the API server and
//! without the agent answering; `list -f DUMP` computes the same from a cluster dump.
//!
//! File format (JSON, one object):
//! `{"version":1,"node":"node-a","virtualServers":[{"protocol":"TCP","address":"10.96.0.1",
//! "port":443,"owner":"default/kubernetes:https"}, ...]}`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredVs, NodeState};
use crate::dump::ClusterDump;
use crate::types::{Family, Proto, VsKey};
use crate::{Engine, PlannerConfig};

/// Where the agent publishes owners by default.
pub const DEFAULT_PATH: &str = "/run/kube-ipvs/owners.json";

const VERSION: u32 = 1;

/// Reading or writing a file the agent publishes (owners, failures) failed.
#[derive(Debug, thiserror::Error)]
pub enum OwnersError {
    /// A file operation failed (the errno is in `source`).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a file of its kind this version understands.
    #[error("{}: not a kube-ipvs {what} file: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Which kind (`owners`, `failures`).
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// Virtual server -> `namespace/name:port`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    node: String,
    by_vs: BTreeMap<VsKey, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileForm {
    version: u32,
    #[serde(default)]
    node: String,
    virtual_servers: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    owner: String,
}

impl Entry {
    fn new(key: &VsKey, owner: &str) -> Self {
        let mut e = Self {
            protocol: None,
            address: None,
            port: None,
            fwmark: None,
            family: None,
            owner: owner.to_string(),
        };
        match *key {
            VsKey::Service { proto, addr, port } => {
                e.protocol = Some(proto.upper().to_string());
                e.address = Some(addr);
                e.port = Some(port);
            }
            VsKey::Fwmark { family, mark } => {
                e.fwmark = Some(mark);
                e.family = Some(family.to_string());
            }
        }
        e
    }

    fn key(&self) -> Result<VsKey, String> {
        if let Some(mark) = self.fwmark {
            let family = match self.family.as_deref() {
                Some("IPv4") | None => Family::V4,
                Some("IPv6") => Family::V6,
                Some(other) => return Err(format!("unknown family {other:?}")),
            };
            return Ok(VsKey::Fwmark { family, mark });
        }
        let proto = self
            .protocol
            .as_deref()
            .and_then(Proto::from_k8s)
            .ok_or_else(|| format!("entry of {:?}: bad or missing protocol", self.owner))?;
        let addr = self
            .address
            .ok_or_else(|| format!("entry of {:?}: missing address", self.owner))?;
        let port = self
            .port
            .ok_or_else(|| format!("entry of {:?}: missing port", self.owner))?;
        Ok(VsKey::new(proto, addr, port))
    }
}

impl Owners {
    /// The owners of a desired node state (what the agent programs).
    pub fn from_desired(st: &NodeState) -> Self {
        Self::from_virtual_servers(st.virtual_servers().values().map(|v| &**v))
    }

    /// The owners of some desired virtual servers.
    pub fn from_virtual_servers<'a>(vs: impl IntoIterator<Item = &'a DesiredVs>) -> Self {
        Self {
            node: String::new(),
            by_vs: vs
                .into_iter()
                .map(|v| (v.key, v.owner.to_string()))
                .collect(),
        }
    }

    /// The owners a node would get from a cluster dump (as `kube-ipvs plan` computes it).
    pub fn from_dump(dump: &ClusterDump, cfg: PlannerConfig) -> Self {
        let node = cfg.node_name.to_string();
        let mut engine = Engine::new(cfg);
        engine.load(dump);
        engine.plan_full(std::time::Duration::ZERO);
        Self::from_desired(engine.desired()).with_node(&node)
    }

    /// Records the node the owners are for.
    #[must_use]
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = node.to_string();
        self
    }

    /// The node (empty if unknown).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The owner of a virtual server, if it is ours.
    pub fn get(&self, key: &VsKey) -> Option<&str> {
        self.by_vs.get(key).map(String::as_str)
    }

    /// Every owned virtual server.
    pub fn iter(&self) -> impl Iterator<Item = (&VsKey, &str)> {
        self.by_vs.iter().map(|(k, v)| (k, v.as_str()))
    }

    /// Number of owned virtual servers.
    pub fn len(&self) -> usize {
        self.by_vs.len()
    }

    /// No virtual server is owned.
    pub fn is_empty(&self) -> bool {
        self.by_vs.is_empty()
    }

    /// The JSON text of the file.
    pub fn to_json(&self) -> String {
        let form = FileForm {
            version: VERSION,
            node: self.node.clone(),
            virtual_servers: self.by_vs.iter().map(|(k, o)| Entry::new(k, o)).collect(),
        };
        // Serializing plain strings, numbers and addresses cannot fail.
        let mut s = serde_json::to_string(&form).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses the JSON text of the file (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, OwnersError> {
        let bad = |reason: String| OwnersError::Format {
            path: path.to_path_buf(),
            what: "owners",
            reason,
        };
        let form: FileForm =
            parse_published(text, path, "owners", VERSION, |f: &FileForm| f.version)?;
        let by_vs = form
            .virtual_servers
            .into_iter()
            .map(|e| e.key().map(|k| (k, e.owner)))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        Ok(Self {
            node: form.node,
            by_vs,
        })
    }

    /// Writes the file so that readers see the old or the new content, never a part:
    /// a temporary file in the same directory, synced, then renamed over `path`.
    pub fn write_atomic(&self, path: &Path) -> Result<(), OwnersError> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads the file.
    pub fn read(path: &Path) -> Result<Self, OwnersError> {
        Self::from_json(&read_text(path)?, path)
    }
}

/// The text of a file the agent publishes.
pub(crate) fn read_text(path: &Path) -> Result<String, OwnersError> {
    std::fs::read_to_string(path).map_err(|source| OwnersError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the JSON of a file the agent publishes, checking its format version (`what` and
/// `path` name it in errors).
pub(crate) fn parse_published<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    what: &'static str,
    want: u32,
    version: impl Fn(&T) -> u32,
) -> Result<T, OwnersError> {
    let bad = |reason: String| OwnersError::Format {
        path: path.to_path_buf(),
        what,
        reason,
    };
    let v: T = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let have = version(&v);
    if have != want {
        return Err(bad(format!(
            "version {have} (this kube-ipvs reads version {want})"
        )));
    }
    Ok(v)
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a part: a
/// temporary file in the same directory, synced, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OwnersError> {
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| OwnersError::Io {
            op,
            path: p,
            source,
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write", &tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("rename into place", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.244.0.5], conditions: {ready: true}}]
ports: [{name: http, port: 8080, protocol: TCP}]
"#;

    fn owners() -> Owners {
        let mut dump = ClusterDump::default();
        dump.parse(DUMP, "test").unwrap();
        Owners::from_dump(&dump, PlannerConfig::new("node-a"))
    }

    #[test]
    fn a_dump_names_the_service_port_of_each_virtual_server() {
        let o = owners();
        let key = VsKey::new(Proto::Tcp, "10.96.0.20".parse().unwrap(), 80);
        assert_eq!(o.get(&key), Some("shop/web:http"));
        assert_eq!(o.len(), 1);
        assert_eq!(o.node(), "node-a");
    }

    #[test]
    fn the_file_round_trips_and_is_replaced_whole() {
        let mut o = owners();
        o.by_vs.insert(
            VsKey::Fwmark {
                family: Family::V6,
                mark: 7,
            },
            "x/y:".into(),
        );
        let dir = std::env::temp_dir().join(format!("owners-test-{}", std::process::id()));
        let path = dir.join("sub/owners.json");
        o.write_atomic(&path).unwrap();
        assert_eq!(Owners::read(&path).unwrap(), o);
        Owners::default().write_atomic(&path).unwrap();
        assert!(Owners::read(&path).unwrap().is_empty());
        // Only the file itself is left: no temporary files.
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_named_errors() {
        let p = Path::new("/x/owners.json");
        for (text, want) in [
            ("{", "EOF"),
            (r#"{"version":2,"virtualServers":[]}"#, "version 2"),
            (
                r#"{"version":1,"virtualServers":[{"protocol":"ICMP","address":"1.2.3.4","port":1,"owner":"a/b:c"}]}"#,
                "protocol",
            ),
        ] {
            let e = Owners::from_json(text, p).unwrap_err().to_string();
            assert!(e.contains("/x/owners.json") && e.contains(want), "{e}");
        }
        let e = Owners::read(Path::new("/nonexistent/owners.json")).unwrap_err();
        assert!(
            e.to_string().starts_with("read /nonexistent/owners.json"),
            "{e}"
        );
    }
}
