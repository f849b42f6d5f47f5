//! The effective configuration written back as a `KubeProxyConfiguration` document: what
//! `kube-ipvs check-config` prints and `--write-config-to` writes. Loading the document again gives
//! the same configuration (the kube-ipvs settings that have no field in it are listed as comments).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::duration::format_go;
use super::effective::{Config, Loaded};
use super::kubeproxy::{API_VERSION, KIND};
use super::node_name::{NodeName, NodeNameError};
use super::types::{LocalDetection, LogFormat, NodePortAddresses};
use std::time::Duration;

fn go(d: Option<Duration>) -> String {
    format_go(d.unwrap_or_default())
}

fn cidrs(v: &[ipnet::IpNet]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn addr(a: Option<std::net::SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// The configuration as a `KubeProxyConfiguration` (keys sorted, as kube-proxy writes them).
pub fn document(c: &Config) -> Value {
    let (mode, cluster_cidr, bridge, prefix) = match &c.local_detection {
        LocalDetection::Disabled => ("", String::new(), "", ""),
        LocalDetection::ClusterCidr(v) => ("ClusterCIDR", cidrs(v).join(","), "", ""),
        LocalDetection::NodeCidr => ("NodeCIDR", String::new(), "", ""),
        LocalDetection::BridgeInterface(b) => ("BridgeInterface", String::new(), b.as_str(), ""),
        LocalDetection::InterfaceNamePrefix(p) => {
            ("InterfaceNamePrefix", String::new(), "", p.as_str())
        }
    };
    let node_port_addresses = match &c.node_port_addresses {
        NodePortAddresses::All => Value::Null,
        NodePortAddresses::Primary => json!(["primary"]),
        NodePortAddresses::Cidrs(v) => json!(cidrs(v)),
    };
    let exclude = if c.exclude_cidrs.is_empty() {
        Value::Null
    } else {
        json!(cidrs(&c.exclude_cidrs))
    };
    let log_format = match c.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let bind_address = c
        .node_ip_override
        .map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
    let kubeconfig = c
        .kubeconfig
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut doc = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "mode": "ipvs",
        "bindAddress": bind_address,
        "bindAddressHardFail": c.bind_address_hard_fail,
        "clientConnection": {"kubeconfig": kubeconfig},
        "clusterCIDR": cluster_cidr,
        "detectLocalMode": mode,
        "detectLocal": {"bridgeInterface": bridge, "interfaceNamePrefix": prefix},
        "healthzBindAddress": addr(c.healthz_bind_address),
        "metricsBindAddress": addr(c.metrics_bind_address),
        "hostnameOverride": c.hostname_override.clone().unwrap_or_default(),
        "iptables": {
            "masqueradeBit": c.masquerade_bit.bit(),
            "masqueradeAll": c.masquerade_all,
        },
        "ipvs": {
            "scheduler": c.scheduler.name(),
            "syncPeriod": format_go(c.sync.period),
            "minSyncPeriod": format_go(c.sync.min),
            "excludeCIDRs": exclude,
            "strictARP": c.strict_arp,
            "tcpTimeout": go(c.ipvs_timeouts.tcp),
            "tcpFinTimeout": go(c.ipvs_timeouts.tcp_fin),
            "udpTimeout": go(c.ipvs_timeouts.udp),
        },
        "conntrack": {
            "maxPerCore": c.conntrack.max_per_core.unwrap_or(0),
            "min": c.conntrack.min,
            "tcpEstablishedTimeout": go(c.conntrack.tcp_established_timeout),
            "tcpCloseWaitTimeout": go(c.conntrack.tcp_close_wait_timeout),
            "tcpBeLiberal": c.conntrack.tcp_be_liberal,
            "udpTimeout": go(c.conntrack.udp_timeout),
            "udpStreamTimeout": go(c.conntrack.udp_stream_timeout),
        },
        "logging": {
            "format": log_format,
            "verbosity": c.verbosity,
        },
        "nodePortAddresses": node_port_addresses,
    });
    if let (Some(name), Some(obj)) = (&c.service_proxy_name, doc.as_object_mut()) {
        obj.insert("serviceProxyName".into(), json!(name));
    }
    doc
}

/// The settings kube-ipvs takes from flags only, as they would be written on a command line.
fn ours(c: &Config) -> Vec<String> {
    let ranges: Vec<String> = cidrs(&c.service_cluster_ip_ranges);
    let mut out = vec![
        format!("--source={}", c.source),
        format!(
            "--drain-limit={}",
            c.drain_limit.map_or_else(|| "0s".to_owned(), format_go)
        ),
        format!("--strict-local={}", c.strict_local),
        format!("--dummy-device={}", c.dummy_device),
        format!("--bind-cluster-ips={}", c.bind_cluster_ips),
        format!("--service-cluster-ip-range={}", ranges.join(",")),
        format!(
            "--service-node-port-range={}-{}",
            c.node_port_range.start(),
            c.node_port_range.end()
        ),
    ];
    if let Some(on) = c.ipvs_rate_estimation {
        out.push(format!("--ipvs-rate-estimation={on}"));
    }
    out
}

/// The text `check-config` prints: comments (node, warnings, kube-ipvs's own settings), then
/// the document.
pub fn effective_text(
    loaded: &Loaded,
    node: &Result<NodeName, NodeNameError>,
) -> Result<String, serde_saphyr::SerializeError> {
    let c = &loaded.config;
    let mut out = format!(
        "# Effective configuration of kube-ipvs {} (IPVS proxier)\n",
        crate::build_info::VERSION_LINE
    );
    match node {
        Ok(n) => {
            let _ = writeln!(out, "# node: {} (from {})", n.name, n.source);
        }
        Err(e) => {
            let _ = writeln!(out, "# node: unknown: {e}");
        }
    }
    if !c.proxy_mode.is_empty() && c.proxy_mode != "ipvs" {
        let _ = writeln!(out, "# configured mode {:?} runs as ipvs", c.proxy_mode);
    }
    if c.healthz_bind_address.is_none() || c.metrics_bind_address.is_none() {
        out.push_str(
            "# an empty healthz/metricsBindAddress below is a server disabled by a flag\n",
        );
    }
    for w in &loaded.warnings {
        let _ = writeln!(out, "# warning: {w}");
    }
    let _ = writeln!(
        out,
        "# kube-ipvs settings without a field here: {}",
        ours(c).join(" ")
    );
    out.push_str(&serde_saphyr::to_string(&document(c))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RunArgs, file::parse_str, resolve};

    fn resolve_yaml(yaml: &str) -> Loaded {
        let file = parse_str(yaml).unwrap();
        resolve(Some(&file), &RunArgs::default()).unwrap()
    }

    #[test]
    fn our_flags_parse_back_to_the_same_settings() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        for estimation in [None, Some(false), Some(true)] {
            let mut c = resolve(None, &RunArgs::default()).unwrap().config;
            c.ipvs_rate_estimation = estimation;
            c.strict_local = true;
            let flags = ours(&c);
            let args = Cli::try_parse_from(std::iter::once("kube-ipvs".to_owned()).chain(flags))
                .unwrap()
                .run;
            let back = resolve(None, &args).unwrap().config;
            assert_eq!(back.ipvs_rate_estimation, estimation);
            assert!(back.strict_local);
        }
    }

    #[test]
    fn the_document_loads_back_to_the_same_configuration() {
        let yaml = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n\
                    mode: ipvs\nbindAddress: 192.168.1.10\nhostnameOverride: node-7\n\
                    clientConnection: {kubeconfig: /etc/kubeconfig}\n\
                    ipvs: {scheduler: mh, syncPeriod: 1m, minSyncPeriod: 2s, strictARP: true, \
                    excludeCIDRs: [10.1.0.0/16, 'fd00::/8'], tcpTimeout: 15m, udpTimeout: 5m}\n\
                    iptables: {masqueradeBit: 13, masqueradeAll: true}\n\
                    clusterCIDR: 10.244.0.0/16,fd00:10:244::/56\n\
                    nodePortAddresses: [192.168.0.0/16]\nmetricsBindAddress: 0.0.0.0:9999\n\
                    conntrack: {maxPerCore: 0, min: 5, tcpEstablishedTimeout: 0s, \
                    tcpCloseWaitTimeout: 30m, tcpBeLiberal: true, udpStreamTimeout: 2m}\n\
                    logging: {format: json, verbosity: 3}\n";
        let first = resolve_yaml(yaml);
        let text = serde_saphyr::to_string(&document(&first.config)).unwrap();
        let second = resolve_yaml(&text);
        assert_eq!(second.config, first.config, "{text}");
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
        // Other detect-local modes too.
        for extra in [
            "detectLocalMode: NodeCIDR\n",
            "detectLocalMode: BridgeInterface\ndetectLocal: {bridgeInterface: cbr0}\n",
            "detectLocalMode: InterfaceNamePrefix\ndetectLocal: {interfaceNamePrefix: veth}\n",
            "nodePortAddresses: [primary]\n",
        ] {
            let yaml = format!(
                "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n{extra}"
            );
            let first = resolve_yaml(&yaml);
            let text = serde_saphyr::to_string(&document(&first.config)).unwrap();
            assert_eq!(resolve_yaml(&text).config, first.config, "{text}");
        }
    }
}
