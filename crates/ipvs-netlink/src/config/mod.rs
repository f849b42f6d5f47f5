//! Connection timeouts (`ipvsadm --set tcp tcpfin udp`, `ipvsadm -L --timeout`):
//! SET_CONFIG / GET_CONFIG with the top-level `IPVS_CMD_ATTR_TIMEOUT_*` attributes.

use crate::message::IpvsAttribute;

/// Protocol timeouts in seconds. On a set, 0 leaves that timeout unchanged (as ipvsadm does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Established TCP sessions.
    pub tcp: u32,
    /// TCP sessions after a FIN.
    pub tcp_fin: u32,
    /// UDP "sessions".
    pub udp: u32,
}

impl Timeouts {
    /// The attributes of SET_CONFIG / a GET_CONFIG reply.
    pub fn to_attributes(&self) -> Vec<IpvsAttribute> {
        vec![
            IpvsAttribute::TimeoutTcp(self.tcp),
            IpvsAttribute::TimeoutTcpFin(self.tcp_fin),
            IpvsAttribute::TimeoutUdp(self.udp),
        ]
    }

    /// Fold a GET_CONFIG reply; absent values are 0.
    pub fn from_attributes(nlas: &[IpvsAttribute]) -> Self {
        let mut t = Self::default();
        for nla in nlas {
            match nla {
                IpvsAttribute::TimeoutTcp(v) => t.tcp = *v,
                IpvsAttribute::TimeoutTcpFin(v) => t.tcp_fin = *v,
                IpvsAttribute::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        t
    }
}
