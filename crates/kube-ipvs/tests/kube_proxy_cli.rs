//! The built binary under the names distributions run it by: `kube-proxy` (argv[0]) has
//! kube-proxy's command line and no subcommand; `kube-ipvs` keeps its subcommands. Exit status,
//! `--version`, `--write-config-to`, `check-config`, and errors printed with each cause once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kube-ipvs");

/// A directory holding `kube-proxy` and `go-runner` links to the binary, removed on drop.
struct Links(PathBuf);

impl Links {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("kube-proxy-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for link in ["kube-proxy", "go-runner"] {
            let path = dir.join(link);
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(BIN, &path).unwrap();
        }
        Links(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("config.conf");
    std::fs::write(
        &path,
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n{body}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn invoked_as_kube_proxy_it_has_kube_proxys_command_line() {
    let links = Links::new("help");
    let out = run(&links.path("kube-proxy"), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.starts_with("kube-ipvs, invoked as kube-proxy"),
        "{help}"
    );
    for flag in [
        "--config",
        "--hostname-override",
        "--ipvs-scheduler",
        "--oom-score-adj",
        "--v <LEVEL>",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    assert!(!help.contains("Commands:"), "no subcommands:\n{help}");
    // kube-ipvs keeps its subcommands.
    let out = run(Path::new(BIN), &["--help"]);
    assert!(text(&out.stdout).contains("check-config"));

    // `kube-proxy run` is not kube-proxy's command line: a stray argument, a usage error (2).
    let out = run(&links.path("kube-proxy"), &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(&links.path("kube-proxy"), &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&links.path("kube-proxy"), &["--ipvs-sync-period=0s"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_names_the_commit_and_build_date() {
    let links = Links::new("version");
    for program in [links.path("kube-proxy"), PathBuf::from(BIN)] {
        let out = run(&program, &["--version"]);
        assert!(out.status.success());
        let v = text(&out.stdout);
        assert!(v.contains(kube_ipvs::build_info::VERSION), "{v}");
        assert!(v.contains("commit ") && v.contains(", built "), "{v}");
        assert!(v.contains(kube_ipvs::build_info::GIT_COMMIT), "{v}");
    }
}

#[test]
fn write_config_to_writes_the_effective_configuration_and_exits_0() {
    let links = Links::new("write");
    let conf = config(
        &links.0,
        "mode: iptables\nipvs: {scheduler: wlc}\nclusterCIDR: 10.244.0.0/16\n",
    );
    let out_file = links.0.join("effective.yaml");
    let out = run(
        &links.path("kube-proxy"),
        &[
            &format!("--config={}", conf.display()),
            "--hostname-override=node-a",
            "--oom-score-adj=-999",
            &format!("--write-config-to={}", out_file.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        written.contains("# node: node-a (from hostname override)"),
        "{written}"
    );
    assert!(
        written.contains("# warning: --oom-score-adj: "),
        "{written}"
    );
    assert!(
        written.contains("# warning: mode: \"iptables\": kube-ipvs runs"),
        "{written}"
    );
    assert!(written.contains("\nmode: ipvs\n"), "{written}");
    assert!(written.contains("  scheduler: wlc\n"), "{written}");
    // The written file is a configuration kube-ipvs (and kube-proxy) loads.
    let again = run(
        Path::new(BIN),
        &[
            "check-config",
            &format!("--config={}", out_file.display()),
            "--hostname-override=node-a",
        ],
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        !text(&again.stdout).contains("# warning:"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn configuration_errors_exit_1_with_each_cause_once() {
    let links = Links::new("error");
    let conf = config(&links.0, "mode: userspace\n");
    for (program, args) in [
        (
            links.path("kube-proxy"),
            vec![format!("--config={}", conf.display())],
        ),
        (
            PathBuf::from(BIN),
            vec![
                "check-config".to_owned(),
                format!("--config={}", conf.display()),
            ],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&program, &args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        let cause = "mode: \"userspace\" is not a Linux proxy mode";
        assert_eq!(err.matches(cause).count(), 1, "{err}");
        assert!(err.contains(&conf.display().to_string()), "{err}");
    }
}

#[test]
fn an_invalid_rust_log_falls_back_and_says_so() {
    let links = Links::new("rustlog");
    let conf = config(&links.0, "mode: ipvs\nclusterCIDR: 10.0.0.0/8\n");
    let out_file = links.0.join("effective.yaml");
    let out = Command::new(links.path("kube-proxy"))
        .args([
            format!("--config={}", conf.display()),
            format!("--write-config-to={}", out_file.display()),
            "--hostname-override=n1".to_owned(),
        ])
        .env("RUST_LOG", "kube_ipvs=loud")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    // Logging still works (the info line of --write-config-to), and the bad filter is named.
    assert!(
        err.contains("RUST_LOG: invalid log filter \"kube_ipvs=loud\""),
        "{err}"
    );
    assert!(err.contains("wrote the effective configuration"), "{err}");
}

#[test]
fn go_runner_runs_kube_proxy_with_its_logs_in_the_log_file() {
    let links = Links::new("go-runner");
    let conf = config(&links.0, "mode: ipvs\nclusterCIDR: 10.0.0.0/8\n");
    let log = links.0.join("kube-proxy.log");
    let out_file = links.0.join("effective.yaml");
    let kube_proxy = links.path("kube-proxy");
    let out = run(
        &links.path("go-runner"),
        &[
            &format!("--log-file={}", log.display()),
            "--also-stdout",
            kube_proxy.to_str().unwrap(),
            &format!("--config={}", conf.display()),
            "--hostname-override=n1",
            &format!("--write-config-to={}", out_file.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out_file.exists());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("wrote the effective configuration"),
        "{logged}"
    );
    assert!(text(&out.stdout).contains("wrote the effective configuration"));
}
