//! Reading a cluster dump: YAML (one or more documents) or JSON, single objects or `List`s, as
//! `kubectl get svc,endpointslices,nodes,servicecidrs -A -o yaml` prints them.
//!
//! A dump streams: each object of a `List` is decoded and converted as the parser reaches it, so
//! a 50,000-Service dump never exists as one tree of values ([`stream`]). The YAML parser's
//! budget grows with the input (one node per byte of text, see [`stream::yaml_options`]):
//! any dump a cluster can produce fits, an alias bomb does not.
//!
//! An object that does not decode is reported with the path of the offending field and skipped;
//! the rest of the file is used. A file that does not parse adds nothing at all.

mod stream;

use std::path::Path;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::Value;

use crate::model::{ObjectKind, ObjectRef};
use crate::source::strip::Strip;

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
    /// The decoder's message (with the path of the offending field).
    pub message: String,
    /// The object, when its kind is one the proxier reads and its name is readable: the file
    /// source keeps its last good version.
    #[serde(skip)]
    pub object: Option<ObjectRef>,
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

/// The `List` kinds whose items are unpacked: kubectl's `List` and the typed lists of the
/// kinds read (an API server's list response). Any other `...List` is a kind like any other.
const LIST_KINDS: [&str; 5] = [
    "List",
    "ServiceList",
    "EndpointSliceList",
    "NodeList",
    "ServiceCIDRList",
];

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

    /// Parses and adds the text of one file: all of it, or (on a syntax error) nothing.
    pub fn parse(&mut self, text: &str, origin: &str) -> Result<(), DumpError> {
        let parse_err = |message: String| DumpError::Parse {
            path: origin.to_owned(),
            message,
        };
        let trimmed = text.trim_start();
        let staged = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            match stream::json(text, origin) {
                Ok(d) => d,
                // YAML flow collections start the same way (`{kind: Service, ...}`).
                Err(json) => stream::yaml(text, origin).map_err(|yaml| {
                    parse_err(format!("neither JSON ({json}) nor YAML ({yaml})"))
                })?,
            }
        } else {
            stream::yaml(text, origin).map_err(parse_err)?
        };
        self.append(staged);
        Ok(())
    }

    fn append(&mut self, mut other: ClusterDump) {
        self.services.append(&mut other.services);
        self.slices.append(&mut other.slices);
        self.nodes.append(&mut other.nodes);
        self.service_cidrs.append(&mut other.service_cidrs);
        self.bad.append(&mut other.bad);
        for (k, n) in other.ignored {
            *self.ignored.entry(k).or_default() += n;
        }
    }

    /// Adds one object (a document, or an item of a List whose kind names `list_item_kind`).
    fn add_object(&mut self, v: Value, origin: &str, list_item_kind: Option<&str>) {
        if v.is_null() {
            return;
        }
        let own_kind = v.get("kind").and_then(Value::as_str);
        let Some(kind) = own_kind.or(list_item_kind).map(str::to_owned) else {
            let message = if v.is_object() {
                "no kind: neither the object nor a List around it names one".to_owned()
            } else {
                format!("not an object: {}", type_name(&v))
            };
            self.bad.push(BadObject {
                origin: origin.to_owned(),
                kind: String::new(),
                name: object_name(&v),
                message,
                object: None,
            });
            return;
        };
        if LIST_KINDS.contains(&kind.as_str()) {
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            self.add_list_items(v, &kind, origin, item_kind);
            return;
        }
        let name = object_name(&v);
        let object = object_kind(&kind).map(|k| ObjectRef {
            kind: k,
            namespace: str_at(&v, "/metadata/namespace").to_owned(),
            name: str_at(&v, "/metadata/name").to_owned(),
        });
        let res = match kind.as_str() {
            "Service" => decode(v).map(|o: core::Service| self.services.push(o)),
            "EndpointSlice" => decode(v).map(|o: discovery::EndpointSlice| self.slices.push(o)),
            "Node" => decode(v).map(|o| self.nodes.push(o)),
            "ServiceCIDR" => decode(v).map(|o| self.service_cidrs.push(o)),
            _ => {
                *self.ignored.entry(kind.clone()).or_default() += 1;
                Ok(())
            }
        };
        if let Err(message) = res {
            self.bad.push(BadObject {
                origin: origin.to_owned(),
                kind,
                name,
                message,
                object: object.filter(|o| !o.name.is_empty()),
            });
        }
    }

    /// The items of a List held as a value (a List inside a List, or a document that arrived
    /// whole).
    fn add_list_items(&mut self, v: Value, kind: &str, origin: &str, item_kind: Option<&str>) {
        match v {
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(items)) => {
                    for item in items {
                        self.add_object(item, origin, item_kind);
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => self.bad_list(kind, origin, &other),
            },
            other => self.bad_list(kind, origin, &other),
        }
    }

    fn bad_list(&mut self, kind: &str, origin: &str, items: &Value) {
        self.bad.push(BadObject {
            origin: origin.to_owned(),
            kind: kind.to_owned(),
            name: String::new(),
            message: format!("items: expected a sequence, found {}", type_name(items)),
            object: None,
        });
    }

    /// The Node named `name`.
    pub fn node(&self, name: &str) -> Option<&core::Node> {
        self.nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    }
}

/// Decodes one object into its Kubernetes type; the error names the offending field
/// (`spec.ports[0].port: invalid type: string "80", expected i32`).
fn decode<T: serde::de::DeserializeOwned + DumpStrip>(v: Value) -> Result<T, String> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(mut o) => {
            o.dump_strip();
            Ok(o)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            Err(if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            })
        }
    }
}

/// What a dump keeps of an object: Services and EndpointSlices lose what the model never reads
/// (managedFields, pod references, last-applied annotations: most of their size in a large dump;
/// a Service keeps its selector for `explain`);
/// Nodes stay whole (`plan` reads their labels, addresses and taints).
trait DumpStrip {
    fn dump_strip(&mut self) {}
}
impl DumpStrip for core::Service {
    /// Keeps the pod selector, which the watchers drop: `explain -f DUMP` names it when no
    /// endpoint matches (a few labels per Service).
    fn dump_strip(&mut self) {
        let selector = self.spec.as_mut().and_then(|s| s.selector.take());
        self.strip();
        if let Some(spec) = self.spec.as_mut() {
            spec.selector = selector;
        }
    }
}
impl DumpStrip for discovery::EndpointSlice {
    fn dump_strip(&mut self) {
        self.strip();
    }
}
impl DumpStrip for core::Node {}
impl DumpStrip for networking::ServiceCIDR {}

fn object_kind(kind: &str) -> Option<ObjectKind> {
    Some(match kind {
        "Service" => ObjectKind::Service,
        "EndpointSlice" => ObjectKind::EndpointSlice,
        "Node" => ObjectKind::Node,
        "ServiceCIDR" => ObjectKind::ServiceCidr,
        _ => return None,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn object_name(v: &Value) -> String {
    match (
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name"),
    ) {
        ("", n) => n.to_owned(),
        (ns, n) => format!("{ns}/{n}"),
    }
}

#[cfg(test)]
mod tests;
