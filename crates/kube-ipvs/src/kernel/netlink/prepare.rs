//! What every sync relies on and no plan changes: the dummy device, kube-proxy's ipsets (empty),
//! the sysctls of IPVS mode, the IPVS timeouts. Idempotent: existing objects and set members are
//! kept. It also asks the next kernel read to check the installed rules against the rule sets
//! last written, so a repair restores what was flushed behind our back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nodenet::sysctl::{SysctlConfig, Sysctls, desired};

use super::{KernelError, NetlinkKernel, convert, netns};

/// Creates what is missing; see the module doc.
pub async fn prepare(k: &mut NetlinkKernel) -> Result<(), KernelError> {
    let device = k.cfg.dummy_device.clone();
    k.links
        .ensure_dummy(&device)
        .await
        .map_err(|source| KernelError::Link {
            op: format!("ensure dummy device {device}"),
            source,
        })?;
    ensure_sets(k).await?;
    // A repair re-checks the rules too (someone may have flushed the chains): the repair's read
    // compares what is installed with what we last wrote, off the loop.
    k.rules_due = true;
    let strict_arp = k.cfg.strict_arp;
    let mut optional = conntrack_settings(&k.cfg.conntrack);
    optional.extend(run_estimation_setting(k.cfg.run_estimation));
    netns::blocking(k.cfg.netns.as_deref(), "sysctls", move || {
        apply_sysctls(strict_arp, &optional)
    })
    .await??;
    if let Some(t) = k.cfg.ipvs_timeouts() {
        k.ipvs
            .set_timeouts(&t)
            .await
            .map_err(|source| KernelError::Ipvs {
                op: format!(
                    "set timeouts tcp {} tcpfin {} udp {}",
                    t.tcp, t.tcp_fin, t.udp
                ),
                source,
            })?;
    }
    Ok(())
}

/// Creates every set of the configured families that does not exist. Existing sets are not
/// re-created (their members stay); a set of the right name but another type shows up as
/// failures of the ops that add to it.
async fn ensure_sets(k: &mut NetlinkKernel) -> Result<(), KernelError> {
    let existing: BTreeSet<String> = k
        .ipset
        .list_names()
        .await
        .map_err(|source| KernelError::Ipset {
            op: "list set names".into(),
            source,
        })?
        .into_iter()
        .collect();
    for (kernel_name, name) in convert::our_sets(&k.cfg.families) {
        if existing.contains(&kernel_name) {
            continue;
        }
        let spec = convert::create_spec(&name);
        k.ipset
            .ensure(&spec)
            .await
            .map_err(|source| KernelError::Ipset {
                op: format!("create {kernel_name} {}", spec.set_type),
                source,
            })?;
    }
    Ok(())
}

/// A sysctl stock does not require (conntrack's, IPVS rate estimation) and its wanted value: a
/// missing file is logged, not fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionalSysctl {
    /// Path below `/proc/sys`.
    pub path: &'static str,
    /// Wanted value.
    pub value: u64,
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// The conntrack sysctls kube-proxy sets for this configuration (`nf_conntrack_max` is computed
/// from the CPU count, as stock does).
pub fn conntrack_settings(c: &crate::config::ConntrackSettings) -> Vec<OptionalSysctl> {
    let mut out = Vec::new();
    if let Some(per_core) = c.max_per_core.filter(|p| *p > 0) {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let cpus = u64::try_from(cpus).unwrap_or(1);
        out.push(OptionalSysctl {
            path: "net/netfilter/nf_conntrack_max",
            value: (u64::from(per_core) * cpus).max(u64::from(c.min)),
        });
    }
    let timeouts = [
        (
            "net/netfilter/nf_conntrack_tcp_timeout_established",
            c.tcp_established_timeout,
        ),
        (
            "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
            c.tcp_close_wait_timeout,
        ),
        ("net/netfilter/nf_conntrack_udp_timeout", c.udp_timeout),
        (
            "net/netfilter/nf_conntrack_udp_timeout_stream",
            c.udp_stream_timeout,
        ),
    ];
    for (path, d) in timeouts {
        if let Some(d) = d.filter(|d| !d.is_zero()) {
            out.push(OptionalSysctl {
                path,
                value: secs(d),
            });
        }
    }
    if c.tcp_be_liberal {
        out.push(OptionalSysctl {
            path: "net/netfilter/nf_conntrack_tcp_be_liberal",
            value: 1,
        });
    }
    out
}

/// The stock IPVS-mode sysctls (fatal on failure, as stock), then the optional ones. A missing
/// conntrack file (nf_conntrack not loaded yet), a missing `run_estimation` (a kernel before
/// 5.16) or a refused `nf_conntrack_max` (read-only outside the initial namespace) is logged,
/// not fatal: the next `prepare` tries again.
fn apply_sysctls(strict_arp: bool, optional: &[OptionalSysctl]) -> Result<(), KernelError> {
    let sys = Sysctls::default();
    let kernel = sys.kernel_version()?;
    for change in sys.apply(&desired(SysctlConfig { strict_arp, kernel }))? {
        tracing::info!(sysctl = %change.sysctl, from = change.from, to = change.to, "sysctl set");
    }
    let root = Path::new("/proc/sys");
    for s in optional {
        match write_if_different(&root.join(s.path), s.value) {
            Ok(Some(from)) => {
                tracing::info!(sysctl = s.path, from, to = s.value, "sysctl set");
            }
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && s.path == RUN_ESTIMATION => {
                static WARNED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(
                        sysctl = s.path,
                        "this kernel has no IPVS rate-estimation switch (Linux 5.16+): --ipvs-rate-estimation ignored"
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    sysctl = s.path,
                    "nf_conntrack is not loaded yet: sysctl left for the next full sync"
                );
            }
            Err(e) if s.path.ends_with("nf_conntrack_max") => {
                // Read-only outside the initial network namespace: say it once, not every repair.
                static WARNED: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                if WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!(sysctl = s.path, error = %e, "cannot raise nf_conntrack_max");
                } else {
                    tracing::warn!(sysctl = s.path, error = %e, "cannot raise nf_conntrack_max");
                }
            }
            Err(source) => {
                return Err(KernelError::SysctlFile {
                    path: s.path.to_owned(),
                    op: "write",
                    source,
                });
            }
        }
    }
    Ok(())
}

/// `net/ipv4/vs/run_estimation` (Linux 5.16+): the IPVS rate estimator on or off
/// (`--ipvs-rate-estimation`); `None` leaves the kernel's setting, as stock does.
pub const RUN_ESTIMATION: &str = "net/ipv4/vs/run_estimation";

/// The rate-estimation sysctl for `--ipvs-rate-estimation`, if it is set.
pub fn run_estimation_setting(on: Option<bool>) -> Option<OptionalSysctl> {
    on.map(|on| OptionalSysctl {
        path: RUN_ESTIMATION,
        value: u64::from(on),
    })
}

/// Writes `value` unless the file holds it already; returns the previous value when it wrote.
fn write_if_different(path: &PathBuf, value: u64) -> std::io::Result<Option<u64>> {
    let text = std::fs::read_to_string(path)?;
    let current: u64 = text
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("unexpected content {text:?}")))?;
    if current == value {
        return Ok(None);
    }
    std::fs::write(path, format!("{value}\n"))?;
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_estimation_is_set_only_when_configured() {
        assert_eq!(run_estimation_setting(None), None);
        assert_eq!(
            run_estimation_setting(Some(false)),
            Some(OptionalSysctl {
                path: "net/ipv4/vs/run_estimation",
                value: 0
            })
        );
        assert_eq!(run_estimation_setting(Some(true)).map(|s| s.value), Some(1));
    }

    #[test]
    fn conntrack_sysctls_follow_the_configuration() {
        let stock = crate::config::ConntrackSettings::default();
        let got = conntrack_settings(&stock);
        let paths: Vec<&str> = got.iter().map(|s| s.path).collect();
        assert_eq!(
            paths,
            [
                "net/netfilter/nf_conntrack_max",
                "net/netfilter/nf_conntrack_tcp_timeout_established",
                "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
            ]
        );
        let max = got.first().unwrap().value;
        let cpus =
            u64::try_from(std::thread::available_parallelism().map_or(1, usize::from)).unwrap();
        assert_eq!(max, (32 * 1024 * cpus).max(128 * 1024));
        assert_eq!(got.get(1).unwrap().value, 86400);
        assert_eq!(got.get(2).unwrap().value, 3600);
        let none = crate::config::ConntrackSettings {
            max_per_core: None,
            min: 0,
            tcp_established_timeout: None,
            tcp_close_wait_timeout: None,
            tcp_be_liberal: true,
            udp_timeout: Some(Duration::from_secs(30)),
            udp_stream_timeout: None,
        };
        assert_eq!(
            conntrack_settings(&none),
            [
                OptionalSysctl {
                    path: "net/netfilter/nf_conntrack_udp_timeout",
                    value: 30
                },
                OptionalSysctl {
                    path: "net/netfilter/nf_conntrack_tcp_be_liberal",
                    value: 1
                },
            ]
        );
    }
}
