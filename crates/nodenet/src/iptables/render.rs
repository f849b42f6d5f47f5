//! The rule set of stock kube-proxy IPVS mode (`pkg/proxy/ipvs/proxier.go`, `writeIptablesRules`
//! and `createAndLinkKubeChain`), rendered as `iptables-restore` input from a typed
//! description. Pure: no I/O. Chain names, set names, comments and rule order follow kube-proxy.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ipnet::IpNet;

use super::{AddressFamily, KubeSet, RuleSet, Table};

/// A user chain of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Chain {
    /// Its table.
    pub table: Table,
    /// Its name.
    pub name: &'static str,
}

const fn nat(name: &'static str) -> Chain {
    Chain {
        table: Table::Nat,
        name,
    }
}
const fn filter(name: &'static str) -> Chain {
    Chain {
        table: Table::Filter,
        name,
    }
}

/// kube-proxy's `iptablesChains`, in its order.
pub const CHAINS: [Chain; 11] = [
    nat("KUBE-SERVICES"),
    nat("KUBE-POSTROUTING"),
    nat("KUBE-NODE-PORT"),
    nat("KUBE-LOAD-BALANCER"),
    nat("KUBE-MARK-MASQ"),
    filter("KUBE-FORWARD"),
    filter("KUBE-NODE-PORT"),
    filter("KUBE-PROXY-FIREWALL"),
    filter("KUBE-SOURCE-RANGES-FIREWALL"),
    filter("KUBE-IPVS-FILTER"),
    filter("KUBE-IPVS-OUT-FILTER"),
];

/// A jump from a built-in chain to one of ours (kube-proxy's `iptablesJumpChain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    /// Table.
    pub table: Table,
    /// Built-in chain jumped from.
    pub from: &'static str,
    /// Our chain jumped to.
    pub to: &'static str,
    /// The rule's comment.
    pub comment: &'static str,
}

const fn jump(table: Table, from: &'static str, to: &'static str, comment: &'static str) -> Jump {
    Jump {
        table,
        from,
        to,
        comment,
    }
}

/// kube-proxy's `iptablesJumpChain`. kube-proxy prepends each one in this order, so on a
/// fresh node a built-in chain starts with these jumps in *reverse* order; see [`jumps_in_order`].
pub const JUMPS: [Jump; 9] = [
    jump(
        Table::Nat,
        "OUTPUT",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    jump(
        Table::Nat,
        "PREROUTING",
        "KUBE-SERVICES",
        "kubernetes service portals",
    ),
    jump(
        Table::Nat,
        "POSTROUTING",
        "KUBE-POSTROUTING",
        "kubernetes postrouting rules",
    ),
    jump(
        Table::Filter,
        "FORWARD",
        "KUBE-FORWARD",
        "kubernetes forwarding rules",
    ),
    jump(
        Table::Filter,
        "INPUT",
        "KUBE-NODE-PORT",
        "kubernetes health check rules",
    ),
    jump(
        Table::Filter,
        "INPUT",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    jump(
        Table::Filter,
        "FORWARD",
        "KUBE-PROXY-FIREWALL",
        "kube-proxy firewall rules",
    ),
    jump(
        Table::Filter,
        "INPUT",
        "KUBE-IPVS-FILTER",
        "kubernetes ipvs access filter",
    ),
    jump(
        Table::Filter,
        "OUTPUT",
        "KUBE-IPVS-OUT-FILTER",
        "kubernetes ipvs access filter",
    ),
];

/// The jumps of one built-in chain, in the order they must head it.
pub fn jumps_in_order(table: Table, from: &str) -> Vec<Jump> {
    JUMPS
        .iter()
        .rev()
        .filter(|j| j.table == table && j.from == from)
        .copied()
        .collect()
}

/// The built-in chains we put jumps into, per table.
pub fn builtin_chains(table: Table) -> BTreeSet<&'static str> {
    JUMPS
        .iter()
        .filter(|j| j.table == table)
        .map(|j| j.from)
        .collect()
}

impl Jump {
    /// The rule body (after `-A CHAIN`), as we write it.
    pub fn rule(&self) -> String {
        format!("-m comment --comment \"{}\" -j {}", self.comment, self.to)
    }
}

/// The rendered rules of one table: our chains and, per chain, the rule bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRules {
    /// The table.
    pub table: Table,
    /// Our chains in declaration order, each with its rules (without `-A CHAIN`).
    pub chains: Vec<(&'static str, Vec<String>)>,
}

impl TableRules {
    fn new(table: Table) -> Self {
        Self {
            table,
            chains: CHAINS
                .iter()
                .filter(|c| c.table == table)
                .map(|c| (c.name, Vec::new()))
                .collect(),
        }
    }

    fn push(&mut self, chain: &str, rule: String) {
        if let Some((_, rules)) = self.chains.iter_mut().find(|(n, _)| *n == chain) {
            rules.push(rule);
        }
    }

    /// `iptables-restore` text for this table's chains (declarations flush them under
    /// `--noflush`), without jumps or `COMMIT`.
    pub fn restore_body(&self) -> String {
        let mut out = String::new();
        for (name, _) in &self.chains {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for (name, rules) in &self.chains {
            for r in rules {
                let _ = writeln!(out, "-A {name} {r}");
            }
        }
        out
    }
}

/// `0x004000`: kube-proxy formats the mark with `%#08x`.
fn mark(bit: u8) -> String {
    format!("{:#08x}", 1u32 << (bit & 31))
}

fn comment(set: KubeSet) -> String {
    format!("-m comment --comment \"{}\"", set.comment())
}

/// Renders the nat and filter rules for `desc` (kube-proxy's `writeIptablesRules`).
pub fn render(desc: &RuleSet) -> (TableRules, TableRules) {
    let mut nat = TableRules::new(Table::Nat);
    let mut filter = TableRules::new(Table::Filter);
    let fam = desc.family;
    let name = |s: KubeSet| s.name(fam);
    let present = |s: KubeSet| desc.nonempty_sets.contains(&s);
    let masq = mark(desc.masquerade_bit);

    let lo = match fam {
        AddressFamily::Inet => "127.0.0.0/8",
        AddressFamily::Inet6 => "::1/128",
    };
    nat.push("KUBE-SERVICES", format!("-s {lo} -j RETURN"));

    // kube-proxy's ipsetWithIptablesChain, in its order.
    let rows: [(KubeSet, Table, &str, &str, &str, &str); 12] = [
        (
            KubeSet::LoopBack,
            Table::Nat,
            "KUBE-POSTROUTING",
            "MASQUERADE",
            "dst,dst,src",
            "",
        ),
        (
            KubeSet::LoadBalancer,
            Table::Nat,
            "KUBE-SERVICES",
            "KUBE-LOAD-BALANCER",
            "dst,dst",
            "",
        ),
        (
            KubeSet::LoadBalancerLocal,
            Table::Nat,
            "KUBE-LOAD-BALANCER",
            "RETURN",
            "dst,dst",
            "",
        ),
        (
            KubeSet::NodePortLocalTcp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst",
            "tcp",
        ),
        (
            KubeSet::NodePortTcp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst",
            "tcp",
        ),
        (
            KubeSet::NodePortLocalUdp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst",
            "udp",
        ),
        (
            KubeSet::NodePortUdp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst",
            "udp",
        ),
        (
            KubeSet::NodePortLocalSctp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "RETURN",
            "dst,dst",
            "sctp",
        ),
        (
            KubeSet::NodePortSctp,
            Table::Nat,
            "KUBE-NODE-PORT",
            "KUBE-MARK-MASQ",
            "dst,dst",
            "sctp",
        ),
        (
            KubeSet::LoadBalancerFw,
            Table::Filter,
            "KUBE-PROXY-FIREWALL",
            "KUBE-SOURCE-RANGES-FIREWALL",
            "dst,dst",
            "",
        ),
        (
            KubeSet::LoadBalancerSourceCidr,
            Table::Filter,
            "KUBE-SOURCE-RANGES-FIREWALL",
            "RETURN",
            "dst,dst,src",
            "",
        ),
        (
            KubeSet::LoadBalancerSourceIp,
            Table::Filter,
            "KUBE-SOURCE-RANGES-FIREWALL",
            "RETURN",
            "dst,dst,src",
            "",
        ),
    ];
    for (set, table, from, to, match_type, proto) in rows {
        if !present(set) {
            continue;
        }
        let proto = if proto.is_empty() {
            String::new()
        } else {
            format!("-p {proto} ")
        };
        let rule = format!(
            "{proto}{} -m set --match-set {} {match_type} -j {to}",
            comment(set),
            name(set)
        );
        match table {
            Table::Nat => nat.push(from, rule),
            Table::Filter => filter.push(from, rule),
        }
    }

    if present(KubeSet::ClusterIp) {
        let head = format!(
            "{} -m set --match-set {}",
            comment(KubeSet::ClusterIp),
            name(KubeSet::ClusterIp)
        );
        let rule = if desc.masquerade_all {
            format!("{head} dst,dst -j KUBE-MARK-MASQ")
        } else if let Some(not_local) = desc.local_detect.if_not_local() {
            format!("{head} dst,dst {not_local} -j KUBE-MARK-MASQ")
        } else {
            format!("{head} src,dst -j KUBE-MARK-MASQ")
        };
        nat.push("KUBE-SERVICES", rule);
    }

    let external_ip_rules = |nat: &mut TableRules, head: &str| {
        nat.push(
            "KUBE-SERVICES",
            format!("{head} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"),
        );
        nat.push(
            "KUBE-SERVICES",
            format!("{head} -m addrtype --dst-type LOCAL -j ACCEPT"),
        );
    };
    if present(KubeSet::ExternalIp) {
        let head = format!(
            "{} -m set --match-set {} dst,dst",
            comment(KubeSet::ExternalIp),
            name(KubeSet::ExternalIp)
        );
        nat.push("KUBE-SERVICES", format!("{head} -j KUBE-MARK-MASQ"));
        external_ip_rules(&mut nat, &head);
    }
    if present(KubeSet::ExternalIpLocal) {
        let head = format!(
            "{} -m set --match-set {} dst,dst",
            comment(KubeSet::ExternalIpLocal),
            name(KubeSet::ExternalIpLocal)
        );
        external_ip_rules(&mut nat, &head);
    }

    nat.push(
        "KUBE-SERVICES",
        "-m addrtype --dst-type LOCAL -j KUBE-NODE-PORT".to_string(),
    );
    nat.push("KUBE-LOAD-BALANCER", "-j KUBE-MARK-MASQ".to_string());
    filter.push("KUBE-SOURCE-RANGES-FIREWALL", "-j DROP".to_string());

    for e in &desc.lb_no_node_access {
        filter.push(
            "KUBE-IPVS-OUT-FILTER",
            format!(
                "-s {ip} -m ipvs --vaddr {ip} --vproto {proto} --vport {port} -j DROP",
                ip = e.ip,
                proto = e.protocol,
                port = e.port
            ),
        );
    }

    // acceptIPVSTraffic: at the end of KUBE-SERVICES.
    for set in [KubeSet::ClusterIp, KubeSet::LoadBalancer] {
        if present(set) {
            nat.push(
                "KUBE-SERVICES",
                format!("-m set --match-set {} dst,dst -j ACCEPT", name(set)),
            );
        }
    }

    filter.push(
        "KUBE-FORWARD",
        format!("-m comment --comment \"kubernetes forwarding rules\" -m mark --mark {masq}/{masq} -j ACCEPT"),
    );
    filter.push(
        "KUBE-FORWARD",
        "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            .to_string(),
    );
    filter.push(
        "KUBE-NODE-PORT",
        format!(
            "{} -m set --match-set {} dst -j ACCEPT",
            comment(KubeSet::HealthCheckNodePort),
            name(KubeSet::HealthCheckNodePort)
        ),
    );

    // KUBE-IPVS-FILTER (kubernetes#72236): service ports pass, anything else new to a
    // kube-ipvs0 address (or, beyond stock, to an extra CIDR or set) is rejected.
    for (set, m) in [
        (KubeSet::LoadBalancer, "dst,dst"),
        (KubeSet::ClusterIp, "dst,dst"),
        (KubeSet::ExternalIp, "dst,dst"),
        (KubeSet::ExternalIpLocal, "dst,dst"),
        (KubeSet::HealthCheckNodePort, "dst"),
    ] {
        filter.push(
            "KUBE-IPVS-FILTER",
            format!("-m set --match-set {} {m} -j RETURN", name(set)),
        );
    }
    filter.push(
        "KUBE-IPVS-FILTER",
        format!(
            "-m conntrack --ctstate NEW -m set --match-set {} dst -j REJECT",
            name(KubeSet::IpvsIps)
        ),
    );
    for set in &desc.extra_reject_sets {
        filter.push(
            "KUBE-IPVS-FILTER",
            format!("-m conntrack --ctstate NEW -m set --match-set {set} dst -j REJECT"),
        );
    }
    for cidr in desc
        .extra_reject_cidrs
        .iter()
        .filter(|c| family_matches(fam, c))
    {
        filter.push(
            "KUBE-IPVS-FILTER",
            format!("-d {} -m conntrack --ctstate NEW -j REJECT", cidr.trunc()),
        );
    }

    nat.push(
        "KUBE-POSTROUTING",
        format!("-m mark ! --mark {masq}/{masq} -j RETURN"),
    );
    nat.push("KUBE-POSTROUTING", format!("-j MARK --xor-mark {masq}"));
    nat.push(
        "KUBE-POSTROUTING",
        format!(
            "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE{}",
            if desc.random_fully {
                " --random-fully"
            } else {
                ""
            }
        ),
    );
    nat.push("KUBE-MARK-MASQ", format!("-j MARK --or-mark {masq}"));
    (nat, filter)
}

/// The whole `iptables-restore --noflush` input for a fresh node: both tables, our chains,
/// and the jumps prepended in kube-proxy's order.
pub fn restore_text(desc: &RuleSet) -> String {
    let (nat, filter) = render(desc);
    let mut out = String::new();
    for t in [nat, filter] {
        let _ = writeln!(out, "*{}", t.table.name());
        out.push_str(&t.restore_body());
        for from in builtin_chains(t.table) {
            for (i, j) in jumps_in_order(t.table, from).iter().enumerate() {
                let _ = writeln!(out, "-I {from} {} {}", i + 1, j.rule());
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Is `net` of `family`?
fn family_matches(family: AddressFamily, net: &IpNet) -> bool {
    AddressFamily::of(net.addr()) == family
}
