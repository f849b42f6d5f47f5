//! Reading a cluster dump: YAML (one or more documents) or JSON, single objects or `List`s, as
//! `kubectl get svc,endpointslices,nodes,servicecidrs -A -o yaml` prints them.
//!
//! An object that does not decode is reported and skipped; the rest of the file is used.

use std::path::Path;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::Value;

/// A dump that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// The I/O error (with its errno).
        source: std::io::Error,
    },
    /// The file is neither valid YAML nor valid JSON.
    #[error("parsing {path}: {message}")]
    Parse {
        /// File.
        path: String,
        /// Parser message.
        message: String,
    },
}

/// One object in a dump that could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadObject {
    /// Where it came from.
    pub origin: String,
    /// Its kind.
    pub kind: String,
    /// `namespace/name`, as far as readable.
    pub name: String,
    /// The decoder's message.
    pub message: String,
}

/// The objects of a dump the proxier reads.
#[derive(Clone, Debug, Default)]
pub struct ClusterDump {
    /// Services.
    pub services: Vec<core::Service>,
    /// EndpointSlices.
    pub slices: Vec<discovery::EndpointSlice>,
    /// Nodes.
    pub nodes: Vec<core::Node>,
    /// ServiceCIDRs.
    pub service_cidrs: Vec<networking::ServiceCIDR>,
    /// Objects that did not decode.
    pub bad: Vec<BadObject>,
    /// Kinds present but not used (Pods, ConfigMaps...), with counts.
    pub ignored: std::collections::BTreeMap<String, usize>,
}

impl ClusterDump {
    /// Reads and adds one file.
    pub fn read_file(&mut self, path: &Path) -> Result<(), DumpError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DumpError::Read {
            path: origin.clone(),
            source,
        })?;
        self.parse(&text, &origin)
    }

    /// Parses and adds the text of one file.
    pub fn parse(&mut self, text: &str, origin: &str) -> Result<(), DumpError> {
        let trimmed = text.trim_start();
        let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            let mut out = Vec::new();
            for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
                out.push(v.map_err(|e| DumpError::Parse {
                    path: origin.to_owned(),
                    message: e.to_string(),
                })?);
            }
            out
        } else {
            serde_saphyr::from_multiple::<Value>(text).map_err(|e| DumpError::Parse {
                path: origin.to_owned(),
                message: e.to_string(),
            })?
        };
        for doc in docs {
            self.add_value(doc, origin, None);
        }
        Ok(())
    }

    fn add_value(&mut self, v: Value, origin: &str, list_kind: Option<&str>) {
        if let Value::Array(items) = v {
            for item in items {
                self.add_value(item, origin, list_kind);
            }
            return;
        }
        if v.is_null() {
            return;
        }
        let kind = v.get("kind").and_then(Value::as_str).map(str::to_owned);
        let kind = kind
            .or_else(|| list_kind.map(str::to_owned))
            .unwrap_or_default();
        if kind == "List" || kind.ends_with("List") {
            let item_kind = kind
                .strip_suffix("List")
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            if let Some(Value::Array(items)) = v.get("items").cloned() {
                for item in items {
                    self.add_value(item, origin, item_kind.as_deref());
                }
            }
            return;
        }
        let name = object_name(&v);
        let bad = |message: String| BadObject {
            origin: origin.to_owned(),
            kind: kind.clone(),
            name: name.clone(),
            message,
        };
        let res = match kind.as_str() {
            "Service" => serde_json::from_value(v).map(|o| self.services.push(o)),
            "EndpointSlice" => serde_json::from_value(v).map(|o| self.slices.push(o)),
            "Node" => serde_json::from_value(v).map(|o| self.nodes.push(o)),
            "ServiceCIDR" => serde_json::from_value(v).map(|o| self.service_cidrs.push(o)),
            _ => {
                *self
                    .ignored
                    .entry(if kind.is_empty() {
                        "<no kind>".into()
                    } else {
                        kind.clone()
                    })
                    .or_default() += 1;
                Ok(())
            }
        };
        if let Err(e) = res {
            let b = bad(e.to_string());
            self.bad.push(b);
        }
    }

    /// The Node named `name`.
    pub fn node(&self, name: &str) -> Option<&core::Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

fn object_name(v: &Value) -> String {
    let meta = v.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match (get("namespace"), get("name")) {
        ("", n) => n.to_owned(),
        (ns, n) => format!("{ns}/{n}"),
    }
}
