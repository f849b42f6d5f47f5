//! Forwarding methods (`ipvsadm -m/-i/-g`) and tunnel parameters (`--tun-type/--tun-port/...`).

const IP_VS_CONN_F_MASQ: u32 = 0x0000;
const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;

const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;

const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;

/// How packets reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`-m`, "Masq"): what kube-proxy uses.
    Masquerade,
    /// Deliver locally ("Local"); the kernel picks it for a local address.
    Local,
    /// IP-in-IP / GUE / GRE tunnel (`-i`, "Tunnel").
    Tunnel {
        /// Encapsulation.
        kind: TunnelType,
        /// GUE destination port (host order); 0 otherwise.
        port: u16,
        /// Checksum options (GUE/GRE).
        flags: TunnelFlags,
    },
    /// Direct routing (`-g`, "Route").
    DirectRoute,
}

impl ForwardMethod {
    /// A plain IPIP tunnel.
    pub const IPIP: Self = Self::Tunnel {
        kind: TunnelType::Ipip,
        port: 0,
        flags: TunnelFlags::NOCSUM,
    };

    /// `IPVS_DEST_ATTR_FWD_METHOD` value.
    pub fn number(&self) -> u32 {
        match self {
            Self::Masquerade => IP_VS_CONN_F_MASQ,
            Self::Local => IP_VS_CONN_F_LOCALNODE,
            Self::Tunnel { .. } => IP_VS_CONN_F_TUNNEL,
            Self::DirectRoute => IP_VS_CONN_F_DROUTE,
        }
    }

    /// Build from the wire fields; `None` for a method the kernel does not allow on destinations.
    pub fn from_parts(method: u32, tun_type: u8, tun_port: u16, tun_flags: u16) -> Option<Self> {
        Some(match method & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Self::Masquerade,
            IP_VS_CONN_F_LOCALNODE => Self::Local,
            IP_VS_CONN_F_TUNNEL => Self::Tunnel {
                kind: TunnelType::from_number(tun_type)?,
                port: tun_port,
                flags: TunnelFlags(tun_flags),
            },
            IP_VS_CONN_F_DROUTE => Self::DirectRoute,
            _ => return None,
        })
    }

    /// The word `ipvsadm -Ln` prints in the Forward column.
    pub fn ipvsadm_name(&self) -> &'static str {
        match self {
            Self::Masquerade => "Masq",
            Self::Local => "Local",
            Self::Tunnel { .. } => "Tunnel",
            Self::DirectRoute => "Route",
        }
    }
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// IP in IP (default).
    Ipip,
    /// Generic UDP Encapsulation; needs a port.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelType {
    /// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    pub fn number(self) -> u8 {
        match self {
            Self::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            Self::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            Self::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
        }
    }

    /// From `IP_VS_CONN_F_TUNNEL_TYPE_*`.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Some(Self::Ipip),
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => Some(Self::Gue),
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => Some(Self::Gre),
            _ => None,
        }
    }
}

/// Tunnel checksum flags (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`); unknown bits kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    /// No checksum.
    pub const NOCSUM: Self = Self(0);
    /// Checksum.
    pub const CSUM: Self = Self(IP_VS_TUNNEL_ENCAP_FLAG_CSUM);
    /// Remote checksum offload.
    pub const REMCSUM: Self = Self(IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM);
}
