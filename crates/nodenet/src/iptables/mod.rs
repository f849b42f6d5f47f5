//! The constant iptables rule set of IPVS mode (replaces kube-proxy's `iptables-restore
//! --noflush` of `KUBE-*` chains and its `iptables -I ... -j KUBE-*` jump rules, and
//! `iptables -F/-X` on cleanup).
//!
//! - [`render`]: the rules as a pure function of a small [`RuleSet`] description;
//! - [`save`]: parsing `iptables-save -t TABLE` and comparing rules in normalized form;
//! - [`backend`]: nft or legacy, `--random-fully`, running the binaries with a timeout;
//! - [`Iptables::apply`]: restore only when what is installed differs, touching nothing but
//!   our chains and our jumps (kept first in the built-in chains); [`Iptables::remove`].
//!
//! The calls are blocking (they run `iptables-save`/`iptables-restore`): from async code use
//! `tokio::task::spawn_blocking`.

pub mod backend;
pub mod render;
pub mod save;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use backend::{Backend, IptablesError};
use render::{Jump, TableRules, builtin_chains, jumps_in_order};
use save::{SavedTable, normalize};

use crate::AddressFamily;

/// The two tables we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// `nat`.
    Nat,
    /// `filter`.
    Filter,
}

impl Table {
    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// The ipsets the rules reference (kube-proxy's `ipsetInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KubeSet {
    /// KUBE-LOOP-BACK, hash:ip,port,ip.
    LoopBack,
    /// KUBE-CLUSTER-IP, hash:ip,port.
    ClusterIp,
    /// KUBE-EXTERNAL-IP, hash:ip,port.
    ExternalIp,
    /// KUBE-EXTERNAL-IP-LOCAL, hash:ip,port.
    ExternalIpLocal,
    /// KUBE-LOAD-BALANCER, hash:ip,port.
    LoadBalancer,
    /// KUBE-LOAD-BALANCER-FW, hash:ip,port.
    LoadBalancerFw,
    /// KUBE-LOAD-BALANCER-LOCAL, hash:ip,port.
    LoadBalancerLocal,
    /// KUBE-LOAD-BALANCER-SOURCE-IP, hash:ip,port,ip.
    LoadBalancerSourceIp,
    /// KUBE-LOAD-BALANCER-SOURCE-CIDR, hash:ip,port,net.
    LoadBalancerSourceCidr,
    /// KUBE-NODE-PORT-TCP, bitmap:port.
    NodePortTcp,
    /// KUBE-NODE-PORT-LOCAL-TCP, bitmap:port.
    NodePortLocalTcp,
    /// KUBE-NODE-PORT-UDP, bitmap:port.
    NodePortUdp,
    /// KUBE-NODE-PORT-LOCAL-UDP, bitmap:port.
    NodePortLocalUdp,
    /// KUBE-NODE-PORT-SCTP-HASH, hash:ip,port.
    NodePortSctp,
    /// KUBE-NODE-PORT-LOCAL-SCTP-HASH, hash:ip,port.
    NodePortLocalSctp,
    /// KUBE-HEALTH-CHECK-NODE-PORT, bitmap:port.
    HealthCheckNodePort,
    /// KUBE-IPVS-IPS, hash:ip.
    IpvsIps,
}

impl KubeSet {
    /// Every set, in kube-proxy's `ipsetInfo` order.
    pub const ALL: [KubeSet; 17] = [
        KubeSet::LoopBack,
        KubeSet::ClusterIp,
        KubeSet::ExternalIp,
        KubeSet::ExternalIpLocal,
        KubeSet::LoadBalancer,
        KubeSet::LoadBalancerFw,
        KubeSet::LoadBalancerLocal,
        KubeSet::LoadBalancerSourceIp,
        KubeSet::LoadBalancerSourceCidr,
        KubeSet::NodePortTcp,
        KubeSet::NodePortLocalTcp,
        KubeSet::NodePortUdp,
        KubeSet::NodePortLocalUdp,
        KubeSet::NodePortSctp,
        KubeSet::NodePortLocalSctp,
        KubeSet::HealthCheckNodePort,
        KubeSet::IpvsIps,
    ];

    /// The IPv4 name.
    pub fn v4_name(self) -> &'static str {
        match self {
            KubeSet::LoopBack => "KUBE-LOOP-BACK",
            KubeSet::ClusterIp => "KUBE-CLUSTER-IP",
            KubeSet::ExternalIp => "KUBE-EXTERNAL-IP",
            KubeSet::ExternalIpLocal => "KUBE-EXTERNAL-IP-LOCAL",
            KubeSet::LoadBalancer => "KUBE-LOAD-BALANCER",
            KubeSet::LoadBalancerFw => "KUBE-LOAD-BALANCER-FW",
            KubeSet::LoadBalancerLocal => "KUBE-LOAD-BALANCER-LOCAL",
            KubeSet::LoadBalancerSourceIp => "KUBE-LOAD-BALANCER-SOURCE-IP",
            KubeSet::LoadBalancerSourceCidr => "KUBE-LOAD-BALANCER-SOURCE-CIDR",
            KubeSet::NodePortTcp => "KUBE-NODE-PORT-TCP",
            KubeSet::NodePortLocalTcp => "KUBE-NODE-PORT-LOCAL-TCP",
            KubeSet::NodePortUdp => "KUBE-NODE-PORT-UDP",
            KubeSet::NodePortLocalUdp => "KUBE-NODE-PORT-LOCAL-UDP",
            KubeSet::NodePortSctp => "KUBE-NODE-PORT-SCTP-HASH",
            KubeSet::NodePortLocalSctp => "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
            KubeSet::HealthCheckNodePort => "KUBE-HEALTH-CHECK-NODE-PORT",
            KubeSet::IpvsIps => "KUBE-IPVS-IPS",
        }
    }

    /// The name for `family`: IPv6 sets are `KUBE-6-...`, cut to ipset's 31 characters,
    /// as kube-proxy names them.
    pub fn name(self, family: AddressFamily) -> String {
        let v4 = self.v4_name();
        match family {
            AddressFamily::Inet => v4.to_string(),
            AddressFamily::Inet6 => {
                let mut n = v4.replacen("KUBE-", "KUBE-6-", 1);
                n.truncate(31);
                n
            }
        }
    }

    /// The set's comment, used in the rules that match it.
    pub fn comment(self) -> &'static str {
        match self {
            KubeSet::LoopBack => {
                "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"
            }
            KubeSet::ClusterIp => "Kubernetes service cluster ip + port for masquerade purpose",
            KubeSet::ExternalIp => {
                "Kubernetes service external ip + port for masquerade and filter purpose"
            }
            KubeSet::ExternalIpLocal => {
                "Kubernetes service external ip + port with externalTrafficPolicy=local"
            }
            KubeSet::LoadBalancer => "Kubernetes service lb portal",
            KubeSet::LoadBalancerFw => {
                "Kubernetes service load balancer ip + port for load balancer with sourceRange"
            }
            KubeSet::LoadBalancerLocal => {
                "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
            }
            KubeSet::LoadBalancerSourceIp => {
                "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
            }
            KubeSet::LoadBalancerSourceCidr => {
                "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
            }
            KubeSet::NodePortTcp => "Kubernetes nodeport TCP port for masquerade purpose",
            KubeSet::NodePortLocalTcp => {
                "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
            }
            KubeSet::NodePortUdp => "Kubernetes nodeport UDP port for masquerade purpose",
            KubeSet::NodePortLocalUdp => {
                "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
            }
            KubeSet::NodePortSctp => {
                "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"
            }
            KubeSet::NodePortLocalSctp => {
                "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"
            }
            KubeSet::HealthCheckNodePort => "Kubernetes health check node port",
            KubeSet::IpvsIps => "Addresses on the ipvs interface",
        }
    }
}

/// How traffic from local pods is told from off-cluster traffic (`detectLocalMode`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LocalDetect {
    /// No detection: the ClusterIP rule masquerades by `src,dst` as kube-proxy does then.
    #[default]
    None,
    /// `ClusterCIDR`: local means `-s CIDR`.
    ClusterCidr(IpNet),
    /// `InterfaceNamePrefix`: local means `-i PREFIX+`.
    InterfaceNamePrefix(String),
    /// `BridgeInterface`: local means `-i BRIDGE`.
    BridgeInterface(String),
}

impl LocalDetect {
    fn if_not_local(&self) -> Option<String> {
        match self {
            LocalDetect::None => None,
            LocalDetect::ClusterCidr(c) => Some(format!("! -s {}", c.trunc())),
            LocalDetect::InterfaceNamePrefix(p) => Some(format!("! -i {p}+")),
            LocalDetect::BridgeInterface(b) => Some(format!("! -i {b}")),
        }
    }
}

/// Transport protocol of an `-m ipvs` match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// A LoadBalancer VIP:port the node itself must not reach (loadBalancerSourceRanges that do
/// not include the node: kubernetes#119656), rendered into KUBE-IPVS-OUT-FILTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoNodeAccess {
    /// The LoadBalancer ingress IP.
    pub ip: IpAddr,
    /// Protocol.
    pub protocol: Protocol,
    /// Port.
    pub port: u16,
}

/// Everything the rule set depends on. The rule count is constant in the number of
/// Services: membership lives in the ipsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Family of the rules.
    pub family: AddressFamily,
    /// `iptables.masqueradeBit` (default 14: mark 0x4000).
    pub masquerade_bit: u8,
    /// `iptables.masqueradeAll`.
    pub masquerade_all: bool,
    /// `detectLocalMode` and its parameter.
    pub local_detect: LocalDetect,
    /// `MASQUERADE --random-fully` is available.
    pub random_fully: bool,
    /// Sets that have members: kube-proxy writes the rules matching a set only then.
    pub nonempty_sets: BTreeSet<KubeSet>,
    /// Beyond stock: more destinations whose new connections on non-service ports are
    /// rejected (service CIDRs made local by a prefix route rather than bound addresses).
    pub extra_reject_cidrs: BTreeSet<IpNet>,
    /// Beyond stock: sets (`hash:ip`/`hash:net`) of such destinations.
    pub extra_reject_sets: BTreeSet<String>,
    /// LoadBalancer VIPs the node must not reach.
    pub lb_no_node_access: BTreeSet<NoNodeAccess>,
}

impl RuleSet {
    /// Stock defaults for `family`: mark bit 14, no masquerade-all, no local detection.
    pub fn new(family: AddressFamily) -> Self {
        Self {
            family,
            masquerade_bit: 14,
            masquerade_all: false,
            local_detect: LocalDetect::None,
            random_fully: false,
            nonempty_sets: BTreeSet::new(),
            extra_reject_cidrs: BTreeSet::new(),
            extra_reject_sets: BTreeSet::new(),
            lb_no_node_access: BTreeSet::new(),
        }
    }
}

/// What [`Iptables::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Installed rules already matched; nothing was run but `iptables-save`.
    Unchanged,
    /// `iptables-restore --noflush` was run for that many tables.
    Restored(usize),
}

/// Applies and removes the rule set with one back end and family.
#[derive(Debug, Clone)]
pub struct Iptables {
    backend: Backend,
    family: AddressFamily,
    timeout: Duration,
}

/// Whether the jumps of one built-in chain are exactly at its head, in order, once.
fn jumps_ok(saved: &SavedTable, table: Table, from: &str) -> bool {
    let want: Vec<Vec<String>> = jumps_in_order(table, from)
        .iter()
        .map(|j| normalize(&j.rule()))
        .collect();
    let have: Vec<Vec<String>> = saved.rules(from).iter().map(|r| normalize(r)).collect();
    let ours = |r: &Vec<String>| want.contains(r);
    have.get(..want.len()) == Some(&want[..])
        && have.iter().filter(|r| ours(r)).count() == want.len()
}

fn chains_ok(saved: &SavedTable, rules: &TableRules) -> bool {
    rules.chains.iter().all(|(name, want)| {
        saved.has_chain(name) && {
            let have: Vec<Vec<String>> = saved.rules(name).iter().map(|r| normalize(r)).collect();
            let want: Vec<Vec<String>> = want.iter().map(|r| normalize(r)).collect();
            have == want
        }
    })
}

/// Restore text that moves our jumps of `from` to its head: every existing copy deleted
/// (by its saved text), then inserted at 1..n.
fn jump_fix(saved: &SavedTable, table: Table, from: &str, out: &mut String) {
    let jumps: Vec<Jump> = jumps_in_order(table, from);
    let want: Vec<Vec<String>> = jumps.iter().map(|j| normalize(&j.rule())).collect();
    for r in saved.rules(from) {
        if want.contains(&normalize(r)) {
            out.push_str(&format!("-D {from} {r}\n"));
        }
    }
    for (i, j) in jumps.iter().enumerate() {
        out.push_str(&format!("-I {from} {} {}\n", i + 1, j.rule()));
    }
}

impl Iptables {
    /// Uses `backend` for `family`; every command is bounded by `timeout`.
    pub fn new(backend: Backend, family: AddressFamily, timeout: Duration) -> Self {
        Self {
            backend,
            family,
            timeout,
        }
    }

    /// Detects the back end the host uses (see [`Backend::detect`]).
    pub fn detect(family: AddressFamily, timeout: Duration) -> Result<Self, IptablesError> {
        Ok(Self::new(
            Backend::detect(family, timeout)?,
            family,
            timeout,
        ))
    }

    /// The back end in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether `MASQUERADE --random-fully` can be used.
    pub fn random_fully(&self) -> Result<bool, IptablesError> {
        self.backend.random_fully(self.family, self.timeout)
    }

    /// `iptables-save -t TABLE`, parsed.
    pub fn save(&self, table: Table) -> Result<SavedTable, IptablesError> {
        let text = self.backend.run(
            self.family,
            backend::Tool::Save,
            &["-t", table.name()],
            None,
            self.timeout,
        )?;
        Ok(SavedTable::parse(&text))
    }

    /// Brings our chains and jumps to `desc`, restoring only the tables that differ.
    pub fn apply(&self, desc: &RuleSet) -> Result<Applied, IptablesError> {
        let (text, tables) = self.pending(desc)?;
        if tables == 0 {
            return Ok(Applied::Unchanged);
        }
        self.restore(&text)?;
        Ok(Applied::Restored(tables))
    }

    /// Whether the installed chains and jumps already are `desc` (what [`Iptables::apply`] would
    /// leave unchanged). Reads with `iptables-save`, writes nothing.
    pub fn installed(&self, desc: &RuleSet) -> Result<bool, IptablesError> {
        Ok(self.pending(desc)?.1 == 0)
    }

    /// The `iptables-restore` input that brings the tables that differ from `desc` to it, and
    /// how many tables that is.
    fn pending(&self, desc: &RuleSet) -> Result<(String, usize), IptablesError> {
        if desc.family != self.family {
            return Err(IptablesError::FamilyMismatch);
        }
        let (nat, filter) = render::render(desc);
        let mut text = String::new();
        let mut tables = 0;
        for rules in [nat, filter] {
            let saved = self.save(rules.table)?;
            let builtins = builtin_chains(rules.table);
            let chains_current = chains_ok(&saved, &rules);
            let bad_jumps: Vec<&str> = builtins
                .iter()
                .copied()
                .filter(|b| !jumps_ok(&saved, rules.table, b))
                .collect();
            if chains_current && bad_jumps.is_empty() {
                continue;
            }
            tables += 1;
            text.push_str(&format!("*{}\n", rules.table.name()));
            text.push_str(&rules.restore_body());
            for b in bad_jumps {
                jump_fix(&saved, rules.table, b, &mut text);
            }
            text.push_str("COMMIT\n");
        }
        Ok((text, tables))
    }

    fn restore(&self, text: &str) -> Result<(), IptablesError> {
        self.backend
            .run(
                self.family,
                backend::Tool::Restore,
                &["--noflush"],
                Some(text),
                self.timeout,
            )
            .map(|_| ())
    }

    /// Removes our jumps, then flushes and deletes our chains (`--cleanup`). Other rules
    /// and chains are untouched; absent ones are fine.
    pub fn remove(&self) -> Result<(), IptablesError> {
        let mut text = String::new();
        for table in [Table::Nat, Table::Filter] {
            let saved = self.save(table)?;
            let ours: Vec<&str> = render::CHAINS
                .iter()
                .filter(|c| c.table == table && saved.has_chain(c.name))
                .map(|c| c.name)
                .collect();
            let mut body = String::new();
            for from in builtin_chains(table) {
                let want: Vec<Vec<String>> = jumps_in_order(table, from)
                    .iter()
                    .map(|j| normalize(&j.rule()))
                    .collect();
                for r in saved.rules(from) {
                    if want.contains(&normalize(r)) {
                        body.push_str(&format!("-D {from} {r}\n"));
                    }
                }
            }
            for c in &ours {
                body.push_str(&format!(":{c} - [0:0]\n"));
            }
            for c in &ours {
                body.push_str(&format!("-X {c}\n"));
            }
            if !body.is_empty() {
                text.push_str(&format!("*{}\n{body}COMMIT\n", table.name()));
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        self.restore(&text)
    }
}
