//! Golden output of `kube-ipvs plan` on examples/cluster.yaml, compared byte for byte.
//! Regenerate after a deliberate change with `UPDATE_GOLDEN=1 cargo test -p kube-ipvs --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(args: &[&str], golden: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-ipvs"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run kube-ipvs");
    assert!(
        out.status.success(),
        "kube-ipvs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &out.stdout).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        out.stdout == want,
        "output differs from {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn plan_text_node_a() {
    check(
        &["plan", "-f", "examples/cluster.yaml", "--node", "node-a"],
        "plan-node-a.txt",
    );
}

#[test]
fn plan_text_node_b_exact_ipvsadm() {
    check(
        &[
            "plan",
            "-f",
            "examples/cluster.yaml",
            "--node",
            "node-b",
            "--no-owners",
        ],
        "plan-node-b.txt",
    );
}

#[test]
fn plan_json_node_a() {
    check(
        &[
            "plan",
            "-f",
            "examples/cluster.yaml",
            "--node",
            "node-a",
            "--json",
        ],
        "plan-node-a.json",
    );
}

/// Outside the lab (no IPVS, or no privilege) `--against-kernel` fails with the reason; the lab
/// test `kernel_apply::against_kernel_prints_the_ops` checks its output on a real IPVS.
#[test]
fn against_kernel_fails_with_the_reason_or_prints_ops() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-ipvs"))
        .current_dir(root())
        .args([
            "plan",
            "-f",
            "examples/cluster.yaml",
            "--node",
            "node-a",
            "--against-kernel",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert!(stderr.is_empty(), "{stderr}");
    } else {
        assert!(
            stderr.contains("the ip_vs module is not loaded")
                || stderr.contains("permission denied"),
            "{stderr}"
        );
    }
}

/// Captured from `ipvsadm -Ln` in the lab (`cargo xtask vm`, Debian 6.1 kernel, 2026-11-21) after
/// `ipvsadm -A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port -p 600`, `-a ... -r 10.244.1.5:8080 -m`,
/// `-A -t 10.0.0.2:80 -s mh -b mh-port`, `-A -u [fd00::1]:53 -s rr -p`.
const LAB_IPVSADM: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 sh (sh-fallback,sh-port) persistent 600
  -> 10.244.1.5:8080              Masq    1      0          0         
TCP  10.0.0.2:80 mh (mh-port)
UDP  [fd00::1]:53 rr persistent 360
";

#[test]
fn ipvsadm_layout_matches_the_lab_capture() {
    use kube_ipvs::render::{TableRow, ipvsadm_table};
    use kube_ipvs::types::{Family, Proto, RealServer, Scheduler, VsFlags, VsKey, VsSpec};
    let k1 = VsKey::new(Proto::Tcp, "10.0.0.1".parse().unwrap(), 80);
    let s1 = VsSpec {
        scheduler: Scheduler::Sh,
        flags: VsFlags(VsFlags::PERSISTENT | VsFlags::SCHED1 | VsFlags::SCHED2),
        timeout: 600,
        netmask: 32,
    };
    let r1 = [RealServer::masq("10.244.1.5".parse().unwrap(), 8080)];
    let k2 = VsKey::new(Proto::Tcp, "10.0.0.2".parse().unwrap(), 80);
    let s2 = VsSpec {
        flags: VsFlags(VsFlags::SCHED2),
        ..VsSpec::plain(Scheduler::Mh, Family::V4)
    };
    let k3 = VsKey::new(Proto::Udp, "fd00::1".parse().unwrap(), 53);
    let s3 = VsSpec {
        flags: VsFlags(VsFlags::PERSISTENT),
        timeout: 360,
        ..VsSpec::plain(Scheduler::Rr, Family::V6)
    };
    let mut out = String::new();
    ipvsadm_table(
        &mut out,
        [
            TableRow {
                key: &k1,
                spec: &s1,
                reals: &r1,
                owner: None,
            },
            TableRow {
                key: &k2,
                spec: &s2,
                reals: &[],
                owner: None,
            },
            TableRow {
                key: &k3,
                spec: &s3,
                reals: &[],
                owner: None,
            },
        ],
    );
    assert_eq!(out, LAB_IPVSADM);
}
