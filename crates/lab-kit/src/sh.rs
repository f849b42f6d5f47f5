//! Shell one-liners: lab setup (`ip`, `sysctl`) and the reference tools' view of the kernel
//! (`ipvsadm -Ln`, `ipset list`, `iptables-save`) that tests compare ours against.

use std::process::{Command, Output};

/// Runs `cmd` with `sh -c` in the current directory; its output, whatever its status.
pub fn sh_output(cmd: &str) -> Output {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("spawn sh")
}

/// Runs `cmd` with `sh -c`; panics with its stdout and stderr unless it succeeds; its stdout.
pub fn sh(cmd: &str) -> String {
    let out = sh_output(cmd);
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` with `sh -c`: whether it succeeded, and its stdout followed by its stderr.
pub fn sh_try(cmd: &str) -> (bool, String) {
    let out = sh_output(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `cmd` with `sh -c`: whether it succeeded (its output is dropped).
pub fn sh_ok(cmd: &str) -> bool {
    sh_output(cmd).status.success()
}

/// `ipvsadm ARGS` output, one line per entry with runs of spaces collapsed (its columns are
/// padded to widths that depend on the content).
pub fn ipvsadm_lines(args: &str) -> Vec<String> {
    sh(&format!("ipvsadm {args}"))
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}
