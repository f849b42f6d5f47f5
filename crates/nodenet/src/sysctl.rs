//! The sysctls an IPVS proxier needs (replaces `sysctl -w net.ipv4.vs.conntrack=1` and
//! friends). `desired` is a pure function of a small config; `Sysctls::apply` reads, writes
//! and re-reads under a root directory (`/proc/sys`, or a temp dir in tests).
//!
//! `net/ipv4/conf/*/route_localnet` is deliberately absent from [`Sysctl`]: setting it exposes
//! localhost-bound services to the network (CVE-2020-8558), so this crate cannot write it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A sysctl this crate may set. There is no variant for `route_localnet`, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Sysctl {
    /// `net/ipv4/vs/conntrack`: keep conntrack entries for IPVS connections, which the
    /// masquerade rules need. Fatal if it cannot be set.
    VsConntrack,
    /// `net/ipv4/vs/expire_nodest_conn`: drop connections to a removed real server at once.
    VsExpireNodestConn,
    /// `net/ipv4/vs/expire_quiescent_template`: expire persistence templates of weight-0 servers.
    VsExpireQuiescentTemplate,
    /// `net/ipv4/vs/conn_reuse_mode`: 0 avoids the 1 s SYN stall on kernels 4.1 to 5.8.
    VsConnReuseMode,
    /// `net/ipv4/ip_forward`.
    IpForward,
    /// `net/ipv4/conf/all/arp_ignore` (strictARP): answer ARP only for addresses of the
    /// receiving interface, so VIPs on kube-ipvs0 are not announced.
    ArpIgnoreAll,
    /// `net/ipv4/conf/all/arp_announce` (strictARP): never use a VIP as ARP source.
    ArpAnnounceAll,
}

impl Sysctl {
    /// Path below `/proc/sys`.
    pub fn path(self) -> &'static str {
        match self {
            Sysctl::VsConntrack => "net/ipv4/vs/conntrack",
            Sysctl::VsExpireNodestConn => "net/ipv4/vs/expire_nodest_conn",
            Sysctl::VsExpireQuiescentTemplate => "net/ipv4/vs/expire_quiescent_template",
            Sysctl::VsConnReuseMode => "net/ipv4/vs/conn_reuse_mode",
            Sysctl::IpForward => "net/ipv4/ip_forward",
            Sysctl::ArpIgnoreAll => "net/ipv4/conf/all/arp_ignore",
            Sysctl::ArpAnnounceAll => "net/ipv4/conf/all/arp_announce",
        }
    }

    fn needs_ipvs(self) -> bool {
        self.path().starts_with("net/ipv4/vs/")
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// A kernel release, `major.minor` (from `/proc/sys/kernel/osrelease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl KernelVersion {
    /// Parses `6.1.0-56-amd64`, `5.4.17`, `4.19`: the first two numbers.
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

/// The inputs of [`desired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlConfig {
    /// `ipvs.strictARP`.
    pub strict_arp: bool,
    /// The running kernel.
    pub kernel: KernelVersion,
}

/// One wanted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Setting {
    /// Which sysctl.
    pub sysctl: Sysctl,
    /// Its wanted value.
    pub value: u32,
}

/// `conn_reuse_mode=0` is needed from 4.1 (where the mode appeared) until 5.9, which fixed
/// the 1 s SYN stall of mode 1 (kubernetes#81775); on 5.9+ leaving it at 1 is right.
pub fn conn_reuse_mode_applies(kernel: KernelVersion) -> bool {
    ((4, 1)..(5, 9)).contains(&(kernel.major, kernel.minor))
}

/// The sysctls stock kube-proxy IPVS mode sets, in the order it sets them.
pub fn desired(cfg: SysctlConfig) -> Vec<Setting> {
    let mut out = vec![Setting {
        sysctl: Sysctl::VsConntrack,
        value: 1,
    }];
    if conn_reuse_mode_applies(cfg.kernel) {
        out.push(Setting {
            sysctl: Sysctl::VsConnReuseMode,
            value: 0,
        });
    }
    out.push(Setting {
        sysctl: Sysctl::VsExpireNodestConn,
        value: 1,
    });
    out.push(Setting {
        sysctl: Sysctl::VsExpireQuiescentTemplate,
        value: 1,
    });
    out.push(Setting {
        sysctl: Sysctl::IpForward,
        value: 1,
    });
    if cfg.strict_arp {
        out.push(Setting {
            sysctl: Sysctl::ArpIgnoreAll,
            value: 1,
        });
        out.push(Setting {
            sysctl: Sysctl::ArpAnnounceAll,
            value: 2,
        });
    }
    out
}

/// Failure to read, write or verify one sysctl.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysctlError {
    /// The file does not exist.
    #[error("sysctl {sysctl}: not present{}", if sysctl.needs_ipvs() { " (is the ip_vs module loaded?)" } else { "" })]
    Missing {
        /// Which sysctl.
        sysctl: Sysctl,
    },
    /// Reading or writing failed.
    #[error("sysctl {sysctl}: cannot {op}: {source}")]
    Io {
        /// Which sysctl.
        sysctl: Sysctl,
        /// "read" or "write".
        op: &'static str,
        /// The error (carries the errno).
        #[source]
        source: io::Error,
    },
    /// The file holds something that is not a number.
    #[error("sysctl {sysctl}: unexpected content {content:?}")]
    Garbled {
        /// Which sysctl.
        sysctl: Sysctl,
        /// What it held.
        content: String,
    },
    /// Written, but reads back another value.
    #[error("sysctl {sysctl}: wrote {wanted}, reads back {found}")]
    NotApplied {
        /// Which sysctl.
        sysctl: Sysctl,
        /// What we wrote.
        wanted: u32,
        /// What it reads.
        found: u32,
    },
    /// The kernel release cannot be read or parsed.
    #[error("kernel release: cannot read or parse {0:?}")]
    KernelRelease(String),
}

/// Reads and writes sysctls below a root directory.
#[derive(Debug, Clone)]
pub struct Sysctls {
    root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/proc/sys"),
        }
    }
}

/// One sysctl that `apply` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Which sysctl.
    pub sysctl: Sysctl,
    /// Its value before.
    pub from: u32,
    /// Its value now.
    pub to: u32,
}

impl Sysctls {
    /// Sysctls below `root` instead of `/proc/sys` (tests).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The running kernel's version, from `kernel/osrelease`.
    pub fn kernel_version(&self) -> Result<KernelVersion, SysctlError> {
        let text = std::fs::read_to_string(self.root.join("kernel/osrelease"))
            .map_err(|e| SysctlError::KernelRelease(e.to_string()))?;
        KernelVersion::parse(&text).ok_or(SysctlError::KernelRelease(text))
    }

    /// The current value.
    pub fn read(&self, sysctl: Sysctl) -> Result<u32, SysctlError> {
        let text = std::fs::read_to_string(self.root.join(sysctl.path())).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SysctlError::Missing { sysctl }
            } else {
                SysctlError::Io {
                    sysctl,
                    op: "read",
                    source: e,
                }
            }
        })?;
        text.trim().parse().map_err(|_| SysctlError::Garbled {
            sysctl,
            content: text.clone(),
        })
    }

    /// Writes the settings that differ, verifies each by reading it back, and returns the
    /// changes. Stops at the first failure, naming the sysctl.
    pub fn apply(&self, settings: &[Setting]) -> Result<Vec<Change>, SysctlError> {
        let mut changes = Vec::new();
        for s in settings {
            let from = self.read(s.sysctl)?;
            if from == s.value {
                continue;
            }
            std::fs::write(self.root.join(s.sysctl.path()), format!("{}\n", s.value)).map_err(
                |e| SysctlError::Io {
                    sysctl: s.sysctl,
                    op: "write",
                    source: e,
                },
            )?;
            let found = self.read(s.sysctl)?;
            if found != s.value {
                return Err(SysctlError::NotApplied {
                    sysctl: s.sysctl,
                    wanted: s.value,
                    found,
                });
            }
            changes.push(Change {
                sysctl: s.sysctl,
                from,
                to: s.value,
            });
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KernelVersion {
        KernelVersion::parse(s).unwrap()
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(k("6.1.0-56-amd64"), KernelVersion { major: 6, minor: 1 });
        assert_eq!(k("5.4.17\n"), KernelVersion { major: 5, minor: 4 });
        assert_eq!(
            k("4.19"),
            KernelVersion {
                major: 4,
                minor: 19
            }
        );
        assert_eq!(KernelVersion::parse("linux"), None);
        assert_eq!(KernelVersion::parse("6"), None);
    }

    #[test]
    fn conn_reuse_mode_only_from_4_1_until_5_9() {
        for (release, applies) in [
            ("3.10.0", false),
            ("4.0.9", false),
            ("4.1.0", true),
            ("4.19.0", true),
            ("5.8.18", true),
            ("5.9.0", false),
            ("5.10.0", false),
            ("6.18.0", false),
        ] {
            assert_eq!(conn_reuse_mode_applies(k(release)), applies, "{release}");
        }
    }

    #[test]
    fn desired_follows_strict_arp_and_kernel() {
        let plain = desired(SysctlConfig {
            strict_arp: false,
            kernel: k("6.1"),
        });
        assert_eq!(
            plain
                .iter()
                .map(|s| (s.sysctl.path(), s.value))
                .collect::<Vec<_>>(),
            vec![
                ("net/ipv4/vs/conntrack", 1),
                ("net/ipv4/vs/expire_nodest_conn", 1),
                ("net/ipv4/vs/expire_quiescent_template", 1),
                ("net/ipv4/ip_forward", 1),
            ]
        );
        let strict = desired(SysctlConfig {
            strict_arp: true,
            kernel: k("5.4"),
        });
        assert!(strict.contains(&Setting {
            sysctl: Sysctl::VsConnReuseMode,
            value: 0
        }));
        assert!(strict.contains(&Setting {
            sysctl: Sysctl::ArpIgnoreAll,
            value: 1
        }));
        assert!(strict.contains(&Setting {
            sysctl: Sysctl::ArpAnnounceAll,
            value: 2
        }));
        assert!(
            strict
                .iter()
                .all(|s| !s.sysctl.path().contains("route_localnet"))
        );
    }

    fn fake_root(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("nodenet-sysctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for s in [Sysctl::VsConntrack, Sysctl::IpForward, Sysctl::ArpIgnoreAll] {
            let p = root.join(s.path());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "0\n").unwrap();
        }
        std::fs::create_dir_all(root.join("kernel")).unwrap();
        std::fs::write(root.join("kernel/osrelease"), "5.4.0-1-amd64\n").unwrap();
        root
    }

    #[test]
    fn apply_writes_what_differs_and_is_idempotent() {
        let root = fake_root("apply");
        let sys = Sysctls::with_root(&root);
        assert_eq!(sys.kernel_version().unwrap(), k("5.4"));
        std::fs::write(root.join(Sysctl::IpForward.path()), "1\n").unwrap();
        let settings = [
            Setting {
                sysctl: Sysctl::VsConntrack,
                value: 1,
            },
            Setting {
                sysctl: Sysctl::IpForward,
                value: 1,
            },
            Setting {
                sysctl: Sysctl::ArpIgnoreAll,
                value: 1,
            },
        ];
        let changes = sys.apply(&settings).unwrap();
        assert_eq!(
            changes,
            vec![
                Change {
                    sysctl: Sysctl::VsConntrack,
                    from: 0,
                    to: 1
                },
                Change {
                    sysctl: Sysctl::ArpIgnoreAll,
                    from: 0,
                    to: 1
                },
            ]
        );
        assert_eq!(sys.read(Sysctl::VsConntrack).unwrap(), 1);
        assert!(sys.apply(&settings).unwrap().is_empty());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn missing_ipvs_sysctl_names_it_and_the_module() {
        let root = fake_root("missing");
        let err = Sysctls::with_root(&root)
            .apply(&[Setting {
                sysctl: Sysctl::VsExpireNodestConn,
                value: 1,
            }])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sysctl net/ipv4/vs/expire_nodest_conn: not present (is the ip_vs module loaded?)"
        );
        std::fs::write(root.join(Sysctl::IpForward.path()), "yes\n").unwrap();
        let err = Sysctls::with_root(&root)
            .read(Sysctl::IpForward)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sysctl net/ipv4/ip_forward: unexpected content")
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
