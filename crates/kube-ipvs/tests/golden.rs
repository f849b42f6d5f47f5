//! Golden output of `kube-ipvs plan` on examples/cluster.yaml, compared byte for byte.
//! Regenerate after a deliberate change with `UPDATE_GOLDEN=1 cargo test -p kube-ipvs --test golden`.

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
    assert!(out.status.success(), "kube-ipvs {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(golden);
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
    check(&["plan", "-f", "examples/cluster.yaml", "--node", "node-a"], "plan-node-a.txt");
}

#[test]
fn plan_text_node_b_exact_ipvsadm() {
    check(&["plan", "-f", "examples/cluster.yaml", "--node", "node-b", "--no-owners"], "plan-node-b.txt");
}

#[test]
fn plan_json_node_a() {
    check(&["plan", "-f", "examples/cluster.yaml", "--node", "node-a", "--json"], "plan-node-a.json");
}

#[test]
fn against_kernel_says_not_yet() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-ipvs"))
        .current_dir(root())
        .args(["plan", "-f", "examples/cluster.yaml", "--node", "node-a", "--against-kernel"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available yet"));
}
