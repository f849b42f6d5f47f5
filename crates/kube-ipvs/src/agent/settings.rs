//! From the effective configuration ([`Config`]) to what the sync loop runs with: the planner's
//! [`PlannerConfig`], the families this node programs, and the loop's timings; and to what
//! `cleanup` recognises as ours. `run`, `plan`, `cleanup` and `run --cleanup` all derive their
//! settings here ([`Settings::derive`], [`cleanup_options`]), so they cannot disagree.

use std::net::IpAddr;
use std::time::Duration;

use crate::cleanup::CleanupOptions;
use crate::config::{Config, LocalDetection, NodePortAddresses};
use crate::planner_config::PlannerConfig;
use crate::types::Family;

/// How often the drain timer reads connection counters at most (stock: once a minute; our
/// counters come from one read, so finishing drains sooner costs little).
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_secs(5);
/// First delay after a failed kernel read or refused ops; doubles up to the sync period.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(1);
/// The periodic verification reads a large table in this many slices, one per `syncPeriod`: an
/// idle node reads 1/16 of its table per period instead of all of it, and drift (an entry
/// deleted or changed behind the agent's back) is found and repaired within 16 repairs (each
/// `syncPeriod` after the previous one ended, so 16 x (`syncPeriod` + a slice's read)).
pub const DEFAULT_VERIFY_SLICES: usize = 16;
/// Tables of at most this many virtual servers are read whole every `syncPeriod` (one full
/// read, as stock does); a slice of a larger table is never smaller than this.
pub const DEFAULT_VERIFY_SLICE_MIN: usize = 2048;
/// A slice is read and planned in pieces of at most this many virtual servers, back to back:
/// planning a whole slice (6,250 virtual servers at 50,000 Services) held the loop 24-46 ms in
/// the lab, and a change waited behind it.
pub const DEFAULT_VERIFY_PIECE: usize = 1024;

/// The sync loop's timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A repair sync at least this often (`syncPeriod`): a full kernel read + full plan for a
    /// small table, one verification slice of a large one.
    pub sync_period: Duration,
    /// At most one sync this often (`minSyncPeriod`); changes arriving meanwhile are coalesced.
    pub min_sync_period: Duration,
    /// The graceful-termination drain timer, while real servers drain.
    pub drain_interval: Duration,
    /// First retry delay after a kernel failure (doubles, capped at `sync_period`).
    pub retry_min: Duration,
    /// Slices the periodic verification reads a large table in, one per `sync_period`: every
    /// entry is read within `verify_slices` periods.
    pub verify_slices: usize,
    /// Tables up to this many virtual servers are read whole every `sync_period`; no slice
    /// is smaller.
    pub verify_slice_min: usize,
    /// A slice is read, planned and applied in pieces of at most this many virtual servers, back
    /// to back, changes synced between them: the loop's share of a piece is bounded, whatever
    /// the table's size.
    pub verify_piece: usize,
}

impl Timing {
    /// The timings of a configuration.
    pub fn from_config(cfg: &Config) -> Self {
        let sync_period = cfg.sync.period.max(Duration::from_millis(1));
        Self {
            sync_period,
            min_sync_period: cfg.sync.min.min(sync_period),
            drain_interval: DEFAULT_DRAIN_INTERVAL.min(sync_period),
            retry_min: DEFAULT_RETRY_MIN.min(sync_period),
            verify_slices: DEFAULT_VERIFY_SLICES,
            verify_slice_min: DEFAULT_VERIFY_SLICE_MIN,
            verify_piece: DEFAULT_VERIFY_PIECE,
        }
    }
}

/// Everything the sync loop needs besides the kernel, the sources and the observer.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The planner's configuration (node name, families, scheduler, CIDRs, node addresses...).
    pub planner: PlannerConfig,
    /// Loop timings.
    pub timing: Timing,
    /// Where the owner of each virtual server is published for `kube-ipvs list --services`
    /// (`None`: not published).
    pub owners_path: Option<std::path::PathBuf>,
}

impl Settings {
    /// The settings of node `node_name` whose links carry `node_addresses` (every link but the
    /// dummy device): the families it programs ([`families`]), then [`Settings::from_config`].
    pub fn derive(cfg: &Config, node_name: &str, node_addresses: Vec<IpAddr>) -> Self {
        let families = families(cfg, &node_addresses);
        Self::from_config(cfg, node_name, families, node_addresses)
    }

    /// Maps the configuration for node `node_name`, whose kernel lists `node_addresses`
    /// (every link but the dummy device), programming `families`.
    pub fn from_config(
        cfg: &Config,
        node_name: &str,
        families: Vec<Family>,
        node_addresses: Vec<IpAddr>,
    ) -> Self {
        let mut p = PlannerConfig::new(node_name).with_scheduler(cfg.scheduler);
        p.families = families;
        p.service_cidrs.clone_from(&cfg.service_cluster_ip_ranges);
        p.exclude_cidrs.clone_from(&cfg.exclude_cidrs);
        match &cfg.node_port_addresses {
            NodePortAddresses::All => {}
            NodePortAddresses::Primary => p.node_port_primary = true,
            NodePortAddresses::Cidrs(c) => p.node_port_addresses.clone_from(c),
        }
        p.node_addresses = node_addresses;
        // `bindAddress` overrides the Node object's primary IP (as kube-proxy's --bind-address).
        p.primary_node_ips = cfg.node_ip_override.into_iter().collect();
        if let LocalDetection::ClusterCidr(c) = &cfg.local_detection {
            p.pod_cidrs.clone_from(c);
        }
        p.bind_cluster_ips = cfg.bind_cluster_ips;
        p.strict_local = cfg.strict_local;
        p.drain_limit = cfg.drain_limit;
        p.node_port_range = cfg.node_port_range.clone();
        Self {
            planner: p,
            timing: Timing::from_config(cfg),
            owners_path: None,
        }
    }
}

/// What `cleanup` and `run --cleanup` recognise as ours and leave alone, from the same
/// configuration as the agent: the dummy device, the NodePort range and `excludeCIDRs`.
pub fn cleanup_options(cfg: &Config) -> CleanupOptions {
    CleanupOptions {
        dummy_device: cfg.dummy_device.as_str().to_owned(),
        node_port_range: cfg.node_port_range.clone(),
        exclude_cidrs: cfg.exclude_cidrs.clone(),
        ..CleanupOptions::default()
    }
}

/// The families this node programs: those the configuration names (service CIDRs, cluster
/// CIDRs, `bindAddress`, `nodePortAddresses` CIDRs) and those of the node's own addresses
/// (loopback and link-local ignored). With no hint at all, both, as stock kube-proxy runs
/// dual-stack wherever the host supports it.
pub fn families(cfg: &Config, node_addresses: &[IpAddr]) -> Vec<Family> {
    let mut hints: Vec<IpAddr> = Vec::new();
    hints.extend(cfg.service_cluster_ip_ranges.iter().map(|c| c.addr()));
    if let LocalDetection::ClusterCidr(c) = &cfg.local_detection {
        hints.extend(c.iter().map(|c| c.addr()));
    }
    if let NodePortAddresses::Cidrs(c) = &cfg.node_port_addresses {
        hints.extend(c.iter().map(|c| c.addr()));
    }
    hints.extend(cfg.node_ip_override);
    hints.extend(node_addresses.iter().copied().filter(is_global));
    let out: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| hints.iter().any(|ip| Family::of(ip) == *f))
        .collect();
    if out.is_empty() {
        Family::ALL.to_vec()
    } else {
        out
    }
}

/// Not loopback, unspecified or link-local: an address that says the family is in use.
fn is_global(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_unspecified() && !a.is_link_local(),
        IpAddr::V6(a) => !a.is_loopback() && !a.is_unspecified() && !a.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncPeriods;
    use crate::types::Scheduler;

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn families_follow_configuration_and_node_addresses() {
        let v4 = Config {
            service_cluster_ip_ranges: vec!["10.96.0.0/12".parse().unwrap()],
            ..Config::default()
        };
        let dual = Config {
            local_detection: LocalDetection::ClusterCidr(vec![
                "10.244.0.0/16".parse().unwrap(),
                "fd00:10:244::/56".parse().unwrap(),
            ]),
            ..Config::default()
        };
        let cases: [(&Config, Vec<IpAddr>, &[Family]); 6] = [
            (
                &v4,
                ips(&["192.168.1.10", "127.0.0.1", "fe80::1"]),
                &[Family::V4],
            ),
            (&v4, ips(&["192.168.1.10", "fd00:1::10"]), &Family::ALL),
            (&dual, ips(&[]), &Family::ALL),
            (&Config::default(), ips(&["fd00:1::10"]), &[Family::V6]),
            (&Config::default(), ips(&["10.0.0.1"]), &[Family::V4]),
            // Nothing known (a lab VM with only loopback): both, like stock.
            (&Config::default(), ips(&["127.0.0.1", "::1"]), &Family::ALL),
        ];
        for (cfg, addrs, want) in cases {
            assert_eq!(families(cfg, &addrs), want, "{addrs:?}");
        }
    }

    #[test]
    fn planner_config_maps_every_field() {
        let cfg = Config {
            scheduler: "mh".parse().unwrap(),
            exclude_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            node_port_addresses: NodePortAddresses::Primary,
            node_ip_override: Some("192.168.1.10".parse().unwrap()),
            strict_local: true,
            bind_cluster_ips: true,
            drain_limit: None,
            service_cluster_ip_ranges: vec!["10.96.0.0/12".parse().unwrap()],
            node_port_range: 20000..=22767,
            sync: SyncPeriods {
                period: Duration::from_secs(2),
                min: Duration::from_secs(1),
            },
            ..Config::default()
        };
        let c = cleanup_options(&cfg);
        assert_eq!(
            (
                c.node_port_range.clone(),
                c.exclude_cidrs.clone(),
                c.dummy_device.as_str()
            ),
            (20000..=22767, cfg.exclude_cidrs.clone(), "kube-ipvs0")
        );
        let s = Settings::from_config(&cfg, "n1", vec![Family::V4], ips(&["192.168.1.10"]));
        let p = &s.planner;
        assert_eq!(&*p.node_name, "n1");
        assert_eq!(p.scheduler, Scheduler::Mh);
        assert_eq!(
            p.scheduler_flags.0,
            crate::types::VsFlags::SCHED2,
            "mh-port"
        );
        assert_eq!(p.families, [Family::V4]);
        assert_eq!(p.exclude_cidrs, cfg.exclude_cidrs);
        assert!(p.node_port_primary && p.node_port_addresses.is_empty());
        assert_eq!(p.primary_node_ips, ips(&["192.168.1.10"]));
        assert_eq!(p.node_addresses, ips(&["192.168.1.10"]));
        assert!(p.strict_local && p.bind_cluster_ips);
        assert_eq!(p.drain_limit, None);
        assert_eq!(p.service_cidrs, cfg.service_cluster_ip_ranges);
        assert_eq!(p.node_port_range, cfg.node_port_range);
        assert_eq!(
            s.timing,
            Timing {
                sync_period: Duration::from_secs(2),
                min_sync_period: Duration::from_secs(1),
                drain_interval: Duration::from_secs(2),
                retry_min: Duration::from_secs(1),
                verify_slices: DEFAULT_VERIFY_SLICES,
                verify_slice_min: DEFAULT_VERIFY_SLICE_MIN,
                verify_piece: DEFAULT_VERIFY_PIECE,
            }
        );
    }

    #[test]
    fn defaults_are_stock() {
        let s = Settings::from_config(&Config::default(), "n1", Family::ALL.to_vec(), Vec::new());
        assert_eq!(s.planner.scheduler, Scheduler::Rr);
        assert!(s.planner.node_port_addresses.is_empty() && !s.planner.node_port_primary);
        assert_eq!(s.timing.sync_period, Duration::from_secs(30));
        assert_eq!(s.timing.min_sync_period, Duration::ZERO);
        assert_eq!(s.timing.drain_interval, DEFAULT_DRAIN_INTERVAL);
    }
}
