//! Domain types of the effective configuration, each parsed from the text that stock kube-proxy
//! accepts for it, with an error message that quotes the bad value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;

/// Longest interface name (`IFNAMSIZ` is 16 with the NUL).
const IFNAME_MAX: usize = 15;

/// The fwmark bit that marks packets for masquerading (`iptables.masqueradeBit`, 0..=31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MasqueradeBit(u8);

impl MasqueradeBit {
    /// The stock default: bit 14, mark `0x4000`.
    pub const DEFAULT: MasqueradeBit = MasqueradeBit(14);

    pub fn new(bit: i64) -> Result<Self, String> {
        u8::try_from(bit)
            .ok()
            .filter(|b| *b <= 31)
            .map(MasqueradeBit)
            .ok_or_else(|| format!("masquerade bit {bit} is outside 0..=31"))
    }

    pub fn bit(self) -> u8 {
        self.0
    }

    /// The mark value (`1 << bit`), as in `--or-mark 0x4000`.
    pub fn mark(self) -> u32 {
        1u32 << self.0
    }
}

impl Default for MasqueradeBit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for MasqueradeBit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bit: i64 = s
            .parse()
            .map_err(|_| format!("invalid masquerade bit {s:?}: expected 0..=31"))?;
        Self::new(bit)
    }
}

/// A network interface name (the dummy device, a bridge for `detectLocalMode: BridgeInterface`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceName(String);

impl InterfaceName {
    /// The stock dummy device.
    pub fn kube_ipvs0() -> Self {
        InterfaceName("kube-ipvs0".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InterfaceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The kernel's dev_valid_name(): non-empty, < IFNAMSIZ, not "." or "..", no '/', ':' or
        // whitespace.
        let valid = !s.is_empty()
            && s.len() <= IFNAME_MAX
            && s != "."
            && s != ".."
            && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
        if valid {
            Ok(InterfaceName(s.to_owned()))
        } else {
            Err(format!(
                "invalid interface name {s:?}: expected 1 to {IFNAME_MAX} bytes without '/', ':' \
                 or whitespace"
            ))
        }
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Log output format (`--log-format`, `logging.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "invalid log format {s:?}: expected \"text\" or \"json\""
            )),
        }
    }
}

/// Where Services, EndpointSlices and the Node come from (`--source`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Source {
    /// Watch the Kubernetes API server.
    #[default]
    Kubernetes,
    /// Read objects from YAML files, reloaded when they change.
    File(PathBuf),
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "kubernetes" {
            return Ok(Source::Kubernetes);
        }
        match s.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(Source::File(PathBuf::from(path))),
            _ => Err(format!(
                "invalid source {s:?}: expected \"kubernetes\" or \"file:PATH\""
            )),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Kubernetes => f.write_str("kubernetes"),
            Source::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Which node addresses serve NodePorts (`nodePortAddresses`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum NodePortAddresses {
    /// Every local address except the dummy device, loopback and IPv6 link-local (stock default).
    #[default]
    All,
    /// Only the Node object's primary IPv4 and/or IPv6 address.
    Primary,
    /// Local addresses inside one of these ranges.
    Cidrs(Vec<IpNet>),
}

/// One `nodePortAddresses` entry as written: a CIDR or the keyword `primary`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodePortAddress {
    Primary,
    Cidr(IpNet),
}

impl FromStr for NodePortAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "primary" {
            Ok(NodePortAddress::Primary)
        } else {
            parse_cidr(s)
                .map(NodePortAddress::Cidr)
                .map_err(|e| format!("{e} (or the keyword \"primary\")"))
        }
    }
}

impl NodePortAddresses {
    /// Combines parsed entries; `primary` must stand alone, as in kube-proxy.
    pub fn from_entries(entries: &[NodePortAddress]) -> Result<Self, String> {
        if entries.is_empty() {
            return Ok(NodePortAddresses::All);
        }
        if entries.contains(&NodePortAddress::Primary) {
            return if entries.len() == 1 {
                Ok(NodePortAddresses::Primary)
            } else {
                Err("\"primary\" cannot be combined with CIDRs".to_owned())
            };
        }
        let cidrs = entries
            .iter()
            .filter_map(|e| match e {
                NodePortAddress::Cidr(c) => Some(*c),
                NodePortAddress::Primary => None,
            })
            .collect();
        Ok(NodePortAddresses::Cidrs(cidrs))
    }
}

/// How traffic from local pods is recognised (`detectLocalMode`, `detectLocal`, `clusterCIDR`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum LocalDetection {
    /// No local-traffic detection: `ClusterCIDR` mode without a `clusterCIDR` (kube-proxy logs the
    /// same limitation and masquerades less precisely).
    #[default]
    Disabled,
    /// Sources inside these pod ranges (one per IP family).
    ClusterCidr(Vec<IpNet>),
    /// Sources inside the Node object's `spec.podCIDRs`.
    NodeCidr,
    /// Packets arriving from this bridge.
    BridgeInterface(InterfaceName),
    /// Packets arriving from interfaces whose names start with this prefix.
    InterfaceNamePrefix(String),
}

/// Parses an IPv4 or IPv6 CIDR like Go's `net.ParseCIDR`; host bits are dropped (`10.1.2.3/8`
/// means `10.0.0.0/8`).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    IpNet::from_str(s.trim())
        .map(|n| n.trunc())
        .map_err(|_| format!("invalid CIDR {s:?}"))
}

/// Parses `clusterCIDR`: one CIDR, or a comma-separated dual-stack pair (one IPv4, one IPv6).
pub fn parse_cluster_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    let cidrs = s
        .split(',')
        .map(parse_cidr)
        .collect::<Result<Vec<_>, _>>()?;
    match cidrs.as_slice() {
        [_] => Ok(cidrs),
        [a, b] if is_v4(a) != is_v4(b) => Ok(cidrs),
        [_, _] => Err(format!(
            "{s:?} is not a dual-stack pair: expected one IPv4 and one IPv6 CIDR"
        )),
        _ => Err(format!(
            "{s:?}: expected one CIDR or a dual-stack pair (e.g. 10.244.0.0/16,fd00:10:244::/56)"
        )),
    }
}

fn is_v4(n: &IpNet) -> bool {
    matches!(n, IpNet::V4(_))
}

/// Parses a server address: `IP:port`, `[IPv6]:port`, or a bare IP that gets `default_port` (as
/// kube-proxy's `AppendPortIfNeeded`). Port 0 is rejected as kube-proxy does.
pub fn parse_bind_address(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let addr = if let Ok(ip) = IpAddr::from_str(s) {
        SocketAddr::new(ip, default_port)
    } else if let Ok(ip) = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or(())
        .and_then(|r| IpAddr::from_str(r).map_err(|_| ()))
    {
        SocketAddr::new(ip, default_port)
    } else {
        SocketAddr::from_str(s).map_err(|_| {
            format!("invalid bind address {s:?}: expected IP:port, [IPv6]:port or an IP")
        })?
    };
    if addr.port() == 0 {
        return Err(format!(
            "invalid bind address {s:?}: port must be 1..=65535"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_bit_range() {
        assert_eq!(MasqueradeBit::DEFAULT.mark(), 0x4000);
        assert_eq!(MasqueradeBit::new(0).unwrap().mark(), 1);
        assert_eq!(MasqueradeBit::new(31).unwrap().mark(), 0x8000_0000);
        assert!(MasqueradeBit::new(32).unwrap_err().contains("32"));
        assert!(MasqueradeBit::new(-1).is_err());
        assert!("x".parse::<MasqueradeBit>().is_err());
    }

    #[test]
    fn interface_names() {
        assert_eq!(InterfaceName::kube_ipvs0().as_str(), "kube-ipvs0");
        assert!("cbr0".parse::<InterfaceName>().is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "eth0:1", "sixteen-chars-xx"] {
            assert!(bad.parse::<InterfaceName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!("kubernetes".parse::<Source>().unwrap(), Source::Kubernetes);
        assert_eq!(
            "file:examples/cluster.yaml".parse::<Source>().unwrap(),
            Source::File("examples/cluster.yaml".into())
        );
        for bad in ["", "file:", "k8s", "File:x"] {
            assert!(bad.parse::<Source>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("10.0.0/8").unwrap_err(),
            "invalid CIDR \"10.0.0/8\""
        );
        assert!(parse_cidr("10.0.0.1").is_err());
        assert_eq!(parse_cluster_cidrs("10.244.0.0/16").unwrap().len(), 1);
        assert_eq!(
            parse_cluster_cidrs("10.244.0.0/16,fd00::/56")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_cluster_cidrs("10.0.0.0/8,11.0.0.0/8").is_err());
        assert!(parse_cluster_cidrs("10.0.0.0/8,fd00::/8,fd01::/8").is_err());
        assert!(parse_cluster_cidrs("").is_err());
    }

    #[test]
    fn node_port_addresses() {
        let p = |s: &str| s.parse::<NodePortAddress>().unwrap();
        assert_eq!(
            NodePortAddresses::from_entries(&[]).unwrap(),
            NodePortAddresses::All
        );
        assert_eq!(
            NodePortAddresses::from_entries(&[p("primary")]).unwrap(),
            NodePortAddresses::Primary
        );
        assert!(NodePortAddresses::from_entries(&[p("primary"), p("10.0.0.0/8")]).is_err());
        assert!("10.0.0/8".parse::<NodePortAddress>().is_err());
    }

    #[test]
    fn bind_addresses() {
        let ok = |s: &str| parse_bind_address(s, 10256).unwrap().to_string();
        assert_eq!(ok("0.0.0.0:10256"), "0.0.0.0:10256");
        assert_eq!(ok("127.0.0.1"), "127.0.0.1:10256");
        assert_eq!(ok("::"), "[::]:10256");
        assert_eq!(ok("[::1]"), "[::1]:10256");
        assert_eq!(ok("[::1]:9000"), "[::1]:9000");
        for bad in [
            "",
            "localhost:10256",
            "0.0.0.0:0",
            "0.0.0.0:65536",
            "1.2.3:4",
            ":10256",
        ] {
            assert!(parse_bind_address(bad, 10256).is_err(), "{bad}");
        }
    }
}
