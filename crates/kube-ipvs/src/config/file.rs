//! Reading the `--config` file: a bare `KubeProxyConfiguration` (YAML or JSON), or a whole
//! ConfigMap (as `kubectl get cm -n kube-system kube-proxy -o yaml` prints it) whose `config.conf`
//! holds one, or a multi-document YAML file containing either.
//!
//! Unknown fields are *warnings*, not errors. Stock kube-proxy decodes strictly and refuses to
//! start on a field it does not know; kube-ipvs is meant to be dropped into an existing
//! DaemonSet with the cluster's existing ConfigMap, which may have been written for a newer
//! kube-proxy than the one this model follows. Refusing to start there would turn a harmless
//! extra field into a node without Service routing, so we name the field once in the log instead.

use std::path::Path;

use serde_json::Value;

use super::error::{ConfigError, ConfigWarning, WarningKind};
use super::kubeproxy::{API_VERSION, KIND, KubeProxyConfiguration};

/// The ConfigMap keys tried, in order, for the configuration (kubeadm writes `config.conf`; some
/// distributions and Helm charts use `config.yaml`).
const CONFIGMAP_KEYS: &[&str] = &["config.conf", "config.yaml", "config.yml", "config.json"];

/// A configuration file, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFile {
    pub config: KubeProxyConfiguration,
    /// Unknown fields and notes about `apiVersion`/`kind`.
    pub warnings: Vec<ConfigWarning>,
    /// The ConfigMap key the configuration came from, when the file was a ConfigMap.
    pub configmap_key: Option<String>,
}

/// Reads and decodes the `--config` file.
pub fn load_file(path: &Path) -> Result<ParsedFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text).map_err(|e| ConfigError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Decodes configuration text (see the module docs for the accepted shapes).
pub fn parse_str(text: &str) -> Result<ParsedFile, ConfigError> {
    let doc = select_document(parse_documents(text)?)?;
    if kind_of(&doc) == Some("ConfigMap") {
        let (key, inner) = configmap_entry(&doc)?;
        let inner_doc = parse_documents(&inner)
            .map_err(|e| match (e, block_start(text, &key)) {
                // The parser counts lines from the start of the key's text.
                (ConfigError::Syntax { message }, Some(line)) => ConfigError::Syntax {
                    message: format!(
                        "{message} (lines counted from the start of the key's text, \
                         line {line} of the file)"
                    ),
                },
                (e, _) => e,
            })
            .and_then(select_document)
            .map_err(|e| in_key(&doc, &key, e))?;
        if kind_of(&inner_doc) == Some("ConfigMap") {
            return Err(in_key(
                &doc,
                &key,
                ConfigError::Syntax {
                    message: "holds another ConfigMap".to_owned(),
                },
            ));
        }
        let mut parsed = decode(inner_doc).map_err(|e| in_key(&doc, &key, e))?;
        parsed.configmap_key = Some(key);
        return Ok(parsed);
    }
    decode(doc)
}

/// All documents of a YAML stream, or the one JSON document.
fn parse_documents(text: &str) -> Result<Vec<Value>, ConfigError> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map(|v| vec![v])
            .map_err(|e| ConfigError::Syntax {
                message: format!("invalid JSON: {e}"),
            });
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ConfigError::Syntax {
        message: format!("invalid YAML: {e}"),
    })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The one document to use: the only one, else the `KubeProxyConfiguration`, else the ConfigMap.
fn select_document(docs: Vec<Value>) -> Result<Value, ConfigError> {
    let count = docs.len();
    if count <= 1 {
        return docs.into_iter().next().ok_or_else(|| ConfigError::Syntax {
            message: "no document found (the file is empty)".to_owned(),
        });
    }
    let pick = |kind: &str| docs.iter().position(|d| kind_of(d) == Some(kind));
    match pick(KIND).or_else(|| pick("ConfigMap")) {
        Some(i) => docs.into_iter().nth(i).ok_or_else(|| ConfigError::Syntax {
            message: "document vanished".to_owned(),
        }),
        None => Err(ConfigError::Syntax {
            message: format!(
                "{count} documents, none of kind {KIND} or ConfigMap: cannot tell which to use"
            ),
        }),
    }
}

/// The file line (1-based) where the block scalar of ConfigMap key `key` starts (`key: |`), if
/// the key is written that way (as kubeadm and kubectl write `config.conf`).
fn block_start(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .is_some_and(|r| r.trim_start().starts_with(['|', '>']))
        })
        // The key's line is `position + 1`; its text starts on the next one.
        .map(|i| i + 2)
}

fn kind_of(doc: &Value) -> Option<&str> {
    doc.get("kind").and_then(Value::as_str)
}

fn configmap_name(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_owned()
}

fn in_key(doc: &Value, key: &str, e: ConfigError) -> ConfigError {
    ConfigError::ConfigMap {
        name: configmap_name(doc),
        message: format!("data key {key:?}: {e}"),
    }
}

/// The data key and text holding the configuration inside a ConfigMap.
fn configmap_entry(doc: &Value) -> Result<(String, String), ConfigError> {
    let err = |message: String| ConfigError::ConfigMap {
        name: configmap_name(doc),
        message,
    };
    let data = doc
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| err("has no data".to_owned()))?;
    if let Some(key) = CONFIGMAP_KEYS.iter().find(|k| data.contains_key(**k)) {
        let text = data
            .get(*key)
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("data key {key:?} is not a string")))?;
        return Ok(((*key).to_owned(), text.to_owned()));
    }
    // Otherwise the single entry whose text is a KubeProxyConfiguration.
    let mut found = data.iter().filter_map(|(k, v)| {
        let text = v.as_str()?;
        let docs = parse_documents(text).ok()?;
        docs.iter()
            .any(|d| kind_of(d) == Some(KIND))
            .then(|| (k.clone(), text.to_owned()))
    });
    match (found.next(), found.next()) {
        (Some(entry), None) => Ok(entry),
        (Some(_), Some(_)) => Err(err(format!(
            "several data keys hold a {KIND}; expected it under \"config.conf\""
        ))),
        (None, _) => Err(err(format!(
            "no {KIND} found under \"config.conf\" (data keys: {})",
            data.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Decodes one `KubeProxyConfiguration` document, collecting unknown fields as warnings.
fn decode(doc: Value) -> Result<ParsedFile, ConfigError> {
    if !doc.is_object() {
        return Err(ConfigError::Syntax {
            message: format!("expected a {KIND} mapping, found {}", json_type(&doc)),
        });
    }
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown.push(format_path(&path));
    let config: KubeProxyConfiguration =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&doc, &mut on_ignored))
            .map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { KIND.to_owned() } else { field };
            ConfigError::invalid(field, e.into_inner().to_string())
        })?;
    let mut warnings: Vec<ConfigWarning> = unknown
        .into_iter()
        .map(|field| {
            ConfigWarning::new(
                WarningKind::UnknownField,
                field,
                format!("unknown field, ignored (not part of {KIND} {API_VERSION}; check its spelling and case)"),
            )
        })
        .collect();
    check_type_meta(&config, &mut warnings)?;
    Ok(ParsedFile {
        config,
        warnings,
        configmap_key: None,
    })
}

/// `apiVersion` and `kind` must name the stock type; a missing one is tolerated with a note.
fn check_type_meta(
    config: &KubeProxyConfiguration,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    match config.api_version.as_deref() {
        Some(API_VERSION) => {}
        None => warnings.push(ConfigWarning::new(
            WarningKind::Notice,
            "apiVersion",
            format!("missing, assuming {API_VERSION}"),
        )),
        Some(other) => {
            return Err(ConfigError::invalid(
                "apiVersion",
                format!("{other:?} is not supported: kube-ipvs reads {API_VERSION}"),
            ));
        }
    }
    match config.kind.as_deref() {
        Some(KIND) => Ok(()),
        None => {
            warnings.push(ConfigWarning::new(
                WarningKind::Notice,
                "kind",
                format!("missing, assuming {KIND}"),
            ));
            Ok(())
        }
        Some(other) => Err(ConfigError::invalid(
            "kind",
            format!("{other:?} is not supported: expected {KIND} (or a ConfigMap holding one)"),
        )),
    }
}

/// `ipvs.excludeCIDRs[1]`-style path, without serde_ignored's `?` markers for `Option`s.
fn format_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        Path::Map { parent, key } => {
            let p = format_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => format_path(parent),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  scheduler: lc\n";

    #[test]
    fn bare_yaml() {
        let p = parse_str(BARE).unwrap();
        assert_eq!(p.config.mode.as_deref(), Some("ipvs"));
        assert_eq!(p.config.ipvs.unwrap().scheduler.as_deref(), Some("lc"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.configmap_key, None);
    }

    #[test]
    fn bare_json() {
        let p = parse_str(r#"{"apiVersion":"kubeproxy.config.k8s.io/v1alpha1","kind":"KubeProxyConfiguration","ipvs":{"excludeCIDRs":["10.0.0.0/8"]}}"#).unwrap();
        assert_eq!(
            p.config.ipvs.unwrap().exclude_cidrs,
            Some(vec!["10.0.0.0/8".to_owned()])
        );
    }

    #[test]
    fn configmap_with_config_conf() {
        let cm = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-proxy\n  namespace: kube-system\ndata:\n  config.conf: |-\n{}  kubeconfig.conf: |-\n    apiVersion: v1\n    kind: Config\n",
            BARE.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        let p = parse_str(&cm).unwrap();
        assert_eq!(p.configmap_key.as_deref(), Some("config.conf"));
        assert_eq!(p.config.mode.as_deref(), Some("ipvs"));
    }

    #[test]
    fn configmap_with_other_key() {
        let cm = "kind: ConfigMap\nmetadata: {name: proxy}\ndata:\n  proxy.yaml: |\n    kind: KubeProxyConfiguration\n    apiVersion: kubeproxy.config.k8s.io/v1alpha1\n    mode: ipvs\n";
        let p = parse_str(cm).unwrap();
        assert_eq!(p.configmap_key.as_deref(), Some("proxy.yaml"));
    }

    #[test]
    fn configmap_errors_name_map_and_key() {
        let none = "kind: ConfigMap\nmetadata: {name: kube-proxy}\ndata:\n  a: b\n";
        let err = parse_str(none).unwrap_err().to_string();
        assert!(
            err.contains("ConfigMap kube-proxy") && err.contains("data keys: a"),
            "{err}"
        );
        let bad = "kind: ConfigMap\nmetadata: {name: kube-proxy}\ndata:\n  config.conf: |\n    kind: KubeProxyConfiguration\n    ipvs:\n      strictARP: maybe\n";
        let err = parse_str(bad).unwrap_err().to_string();
        assert!(
            err.contains("\"config.conf\"") && err.contains("ipvs.strictARP"),
            "{err}"
        );
    }

    #[test]
    fn multi_document_picks_the_configuration() {
        let text = format!("kind: ClusterConfiguration\nfoo: 1\n---\n{BARE}");
        assert_eq!(
            parse_str(&text).unwrap().config.mode.as_deref(),
            Some("ipvs")
        );
        let err = parse_str("a: 1\n---\nb: 2\n").unwrap_err().to_string();
        assert!(err.contains("2 documents"), "{err}");
    }

    #[test]
    fn unknown_fields_are_warnings_with_paths() {
        let text = format!("{BARE}  schedular: wrr\nfoo: 1\nconntrack:\n  max: 5\n");
        let p = parse_str(&text).unwrap();
        let fields: Vec<&str> = p.warnings.iter().map(|w| w.field.as_str()).collect();
        // serde_json maps are ordered, so warnings come out sorted by path.
        assert_eq!(fields, ["conntrack.max", "foo", "ipvs.schedular"]);
        assert!(
            p.warnings
                .iter()
                .all(|w| w.kind == WarningKind::UnknownField)
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let cases = [
            (
                "ipvs:\n  excludeCIDRs: [\"10.0.0.0/8\", 3]\n",
                "ipvs.excludeCIDRs[1]",
            ),
            (
                "iptables:\n  masqueradeBit: fourteen\n",
                "iptables.masqueradeBit",
            ),
            ("ipvs:\n  syncPeriod: 30\n", "ipvs.syncPeriod"),
            (
                "ipvs:\n  syncPeriod: 30x\n",
                "ipvs.syncPeriod: invalid duration \"30x\"",
            ),
            (
                "conntrack:\n  tcpEstablishedTimeout: 1d\n",
                "conntrack.tcpEstablishedTimeout",
            ),
            ("featureGates:\n  Foo: sure\n", "featureGates.Foo"),
        ];
        for (text, want) in cases {
            let err = parse_str(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn wrong_type_meta_is_an_error_missing_is_a_note() {
        let err = parse_str("apiVersion: kubeproxy.config.k8s.io/v1alpha2\n").unwrap_err();
        assert!(err.to_string().starts_with("apiVersion: "), "{err}");
        let err = parse_str("kind: KubeletConfiguration\n").unwrap_err();
        assert!(err.to_string().starts_with("kind: "), "{err}");
        let p = parse_str("mode: ipvs\n").unwrap();
        let fields: Vec<&str> = p.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["apiVersion", "kind"]);
    }

    #[test]
    fn syntax_errors() {
        for text in [
            "",
            "a:\n  b: 1\n c: 2\n",
            "{\"a\":",
            "- a\n- b\n",
            "just text",
        ] {
            assert!(parse_str(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn missing_file_keeps_io_error() {
        let err = load_file(Path::new("/nonexistent/kube-proxy.conf")).unwrap_err();
        match err {
            ConfigError::Read { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other}"),
        }
    }
}
