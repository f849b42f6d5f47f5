//! What the real kernel needs to know besides the plan, mapped from the agent's configuration.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{Config, ConntrackSettings, IpvsTimeouts, LocalDetection};
use crate::types::Family;

/// Configuration of [`super::NetlinkKernel`].
#[derive(Clone, Debug, PartialEq)]
pub struct KernelConfig {
    /// The dummy device (`kube-ipvs0`).
    pub dummy_device: String,
    /// Families this node programs (sets, rules and sysctls are made for these).
    pub families: Vec<Family>,
    /// Timeout of every netlink request.
    pub request_timeout: Duration,
    /// Timeout of each `iptables-save` / `iptables-restore` run.
    pub iptables_timeout: Duration,
    /// Network namespace to work in, by path (`/run/netns/x`, `/proc/PID/ns/net`); `None`: the
    /// namespace of the thread that connects.
    pub netns: Option<PathBuf>,
    /// `iptables.masqueradeBit`.
    pub masquerade_bit: u8,
    /// `iptables.masqueradeAll`.
    pub masquerade_all: bool,
    /// `detectLocalMode` with its parameter (cluster CIDRs, bridge, interface prefix).
    pub local_detection: LocalDetection,
    /// The Node's `spec.podCIDRs`, for `detectLocalMode: NodeCIDR` (the agent fills them in
    /// from the Node object; empty: no local detection in that mode).
    pub node_pod_cidrs: Vec<IpNet>,
    /// `ipvs.strictARP`: `arp_ignore=1`, `arp_announce=2`.
    pub strict_arp: bool,
    /// `ipvs.tcpTimeout`, `tcpFinTimeout`, `udpTimeout` (`None`: leave the kernel's value).
    pub ipvs_timeouts: IpvsTimeouts,
    /// `conntrack.*` sysctls (`None` / `false`: leave the kernel's value).
    pub conntrack: ConntrackSettings,
    /// `--ipvs-rate-estimation`: `net.ipv4.vs.run_estimation` (`None`: leave the kernel's value).
    pub run_estimation: Option<bool>,
    /// A fault-injecting layer under every netlink socket (tests of timeouts, lost replies and
    /// reconnects); `None` in production.
    pub faults: Option<netlink_transport::Faults>,
}

/// Conntrack settings that change nothing.
fn conntrack_untouched() -> ConntrackSettings {
    ConntrackSettings {
        max_per_core: None,
        min: 0,
        tcp_established_timeout: None,
        tcp_close_wait_timeout: None,
        tcp_be_liberal: false,
        udp_timeout: None,
        udp_stream_timeout: None,
    }
}

impl KernelConfig {
    /// Stock rule settings (mark bit 14, no masquerade-all, no local detection), no strict ARP,
    /// and the kernel's own IPVS and conntrack timeouts.
    pub fn new(dummy_device: &str, families: &[Family]) -> Self {
        Self {
            dummy_device: dummy_device.to_owned(),
            families: families.to_vec(),
            request_timeout: Duration::from_secs(5),
            iptables_timeout: Duration::from_secs(30),
            netns: None,
            masquerade_bit: 14,
            masquerade_all: false,
            local_detection: LocalDetection::Disabled,
            node_pod_cidrs: Vec::new(),
            strict_arp: false,
            ipvs_timeouts: IpvsTimeouts::default(),
            conntrack: conntrack_untouched(),
            run_estimation: None,
            faults: None,
        }
    }

    /// From the agent's effective configuration.
    pub fn from_config(cfg: &Config, families: &[Family]) -> Self {
        Self {
            masquerade_bit: cfg.masquerade_bit.bit(),
            masquerade_all: cfg.masquerade_all,
            local_detection: cfg.local_detection.clone(),
            strict_arp: cfg.strict_arp,
            ipvs_timeouts: cfg.ipvs_timeouts,
            conntrack: cfg.conntrack,
            run_estimation: cfg.ipvs_rate_estimation,
            ..Self::new(cfg.dummy_device.as_str(), families)
        }
    }

    /// The IPVS timeouts to set (`ipvsadm --set`, 0 = unchanged), or `None` if none is configured.
    pub fn ipvs_timeouts(&self) -> Option<ipvs_netlink::Timeouts> {
        let t = self.ipvs_timeouts;
        if t.tcp.is_none() && t.tcp_fin.is_none() && t.udp.is_none() {
            return None;
        }
        let secs =
            |d: Option<Duration>| d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Some(ipvs_netlink::Timeouts {
            tcp: secs(t.tcp),
            tcp_fin: secs(t.tcp_fin),
            udp: secs(t.udp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config_takes_every_kernel_setting() {
        let cfg = Config {
            strict_arp: true,
            masquerade_all: true,
            masquerade_bit: crate::config::MasqueradeBit::new(15).unwrap(),
            ipvs_timeouts: IpvsTimeouts {
                tcp: Some(Duration::from_secs(900)),
                ..IpvsTimeouts::default()
            },
            local_detection: LocalDetection::ClusterCidr(vec!["10.244.0.0/16".parse().unwrap()]),
            ..Config::default()
        };
        let k = KernelConfig::from_config(&cfg, &[Family::V4]);
        assert_eq!(k.dummy_device, "kube-ipvs0");
        assert_eq!(k.families, vec![Family::V4]);
        assert!(k.strict_arp && k.masquerade_all);
        assert_eq!(k.masquerade_bit, 15);
        assert_eq!(k.local_detection, cfg.local_detection);
        assert_eq!(k.conntrack, cfg.conntrack);
        assert_eq!(
            k.ipvs_timeouts(),
            Some(ipvs_netlink::Timeouts {
                tcp: 900,
                tcp_fin: 0,
                udp: 0
            })
        );
        assert_eq!(KernelConfig::new("kube-ipvs0", &[]).ipvs_timeouts(), None);
    }
}
