//! Traffic counters and rates of a service or destination (`ipvsadm -Ln --stats` / `--rate`).

mod attribute;

pub use attribute::{StatsAttribute, StatsValue};

/// Counters (since creation or the last zero) and estimated rates (per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled (`--stats` Conns).
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Connections per second (`--rate` CPS).
    pub cps: u64,
    /// Packets in per second.
    pub inpps: u64,
    /// Packets out per second.
    pub outpps: u64,
    /// Bytes in per second.
    pub inbps: u64,
    /// Bytes out per second.
    pub outbps: u64,
}

impl Stats {
    /// Fold a stats nest; unknown attributes are ignored.
    pub fn from_attributes(nlas: &[StatsAttribute]) -> Self {
        let mut s = Self::default();
        for nla in nlas {
            match nla {
                StatsAttribute::Conns(v) => s.conns = v.get(),
                StatsAttribute::InPkts(v) => s.inpkts = v.get(),
                StatsAttribute::OutPkts(v) => s.outpkts = v.get(),
                StatsAttribute::InBytes(v) => s.inbytes = v.get(),
                StatsAttribute::OutBytes(v) => s.outbytes = v.get(),
                StatsAttribute::Cps(v) => s.cps = v.get(),
                StatsAttribute::InPps(v) => s.inpps = v.get(),
                StatsAttribute::OutPps(v) => s.outpps = v.get(),
                StatsAttribute::InBps(v) => s.inbps = v.get(),
                StatsAttribute::OutBps(v) => s.outbps = v.get(),
                _ => {}
            }
        }
        s
    }

    /// The `STATS64` nest the kernel would send for these values.
    pub fn to_attributes64(&self) -> Vec<StatsAttribute> {
        use StatsValue::U64;
        vec![
            StatsAttribute::Conns(U64(self.conns)),
            StatsAttribute::InPkts(U64(self.inpkts)),
            StatsAttribute::OutPkts(U64(self.outpkts)),
            StatsAttribute::InBytes(U64(self.inbytes)),
            StatsAttribute::OutBytes(U64(self.outbytes)),
            StatsAttribute::Cps(U64(self.cps)),
            StatsAttribute::InPps(U64(self.inpps)),
            StatsAttribute::OutPps(U64(self.outpps)),
            StatsAttribute::InBps(U64(self.inbps)),
            StatsAttribute::OutBps(U64(self.outbps)),
        ]
    }
}
