//! What runs inside the guest: `/init` (in the initramfs) and the per-run command script.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::util::shell_quote;

/// Mount tags of the two 9p exports.
pub const ROOT_TAG: &str = "hostroot";
pub const SHARE_TAG: &str = "labshare";

/// Modules every lab run loads before CMD (beyond the IPVS schedulers, found in the kernel).
/// Anything else a command needs is loaded on demand: the guest's kernel.modprobe points at the
/// host's modprobe, run in the shared root against the lab kernel's module tree.
pub const MODULES: &[&str] = &[
    "ip_vs",
    "dummy",
    "veth",
    "bridge",
    "br_netfilter",
    "nlmon",
    "ip_set",
    "ip_set_hash_ip",
    "ip_set_hash_ipport",
    "ip_set_hash_ipportip",
    "ip_set_hash_ipportnet",
    "ip_set_hash_net",
    "ip_set_bitmap_port",
    "ip_set_list_set",
    "xt_set",
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nf_tables",
    "nft_compat",
    "nft_chain_nat",
    "iptable_nat",
    "iptable_filter",
    "iptable_mangle",
    "ip6table_nat",
    "ip6table_filter",
    "ip6table_mangle",
    "xt_mark",
    "xt_MASQUERADE",
    "xt_addrtype",
    "xt_conntrack",
    "xt_comment",
    "xt_multiport",
    "xt_physdev",
    "ipt_REJECT",
    "ip6t_REJECT",
    "xt_ipvs",
    "xt_nat",
    "xt_tcpudp",
];

/// Modules the initramfs itself loads to reach the host's root over virtio 9p.
pub const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// What `/init` needs to know about a run.
#[derive(Debug)]
pub struct InitSpec<'a> {
    /// insmod order for the 9p modules (paths inside the initramfs).
    pub boot_modules: Vec<String>,
    /// The lab kernel's unpacked package root, as a host path (for `modprobe -d`).
    pub kernel_root: &'a Path,
    /// Modules to load before CMD, and those to verify under /sys/module afterwards.
    pub modules: Vec<String>,
    /// Host directories under /tmp or /run that must stay visible over the guest's tmpfs.
    pub keep: Vec<PathBuf>,
}

/// The initramfs `/init` (busybox sh). It reports failures on the console with a `lab-init:` prefix
/// and in the share's `error` file, and always powers the guest off.
pub fn init_script(spec: &InitSpec<'_>) -> String {
    let kroot = shell_quote(&spec.kernel_root.to_string_lossy());
    let mut s = String::from(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
off() { sync; echo o > /proc/sysrq-trigger; sleep 60; }
fail() { echo "lab-init: $*" > /dev/console; [ -d /share/in ] && echo "$*" >> /share/error; off; }
mark() { read -r up _ < /proc/uptime; echo "lab-init: [$up] $*" > /dev/console; }
mark boot
"#,
    );
    for module in &spec.boot_modules {
        let m = shell_quote(module);
        let _ = writeln!(s, "insmod {m} || fail 'insmod {module}'");
    }
    let _ = write!(
        s,
        r#"mkdir -p /mnt /share /keep
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 {ROOT_TAG} /mnt || fail 'mount host root'
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 {SHARE_TAG} /share || fail 'mount share'
mkdir -p /share/in
mark 'host root mounted'
"#
    );
    for (i, path) in spec.keep.iter().enumerate() {
        let p = shell_quote(&path.to_string_lossy());
        let _ = writeln!(
            s,
            "mkdir -p /keep/{i} && mount --bind /mnt{p} /keep/{i} || fail 'keep {p}'"
        );
    }
    s.push_str(
        r#"mount -t proc proc /mnt/proc
mount -t sysfs sysfs /mnt/sys
mount -t devtmpfs devtmpfs /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
mount -t devpts devpts /mnt/dev/pts
mount -t tmpfs tmpfs /mnt/dev/shm
mount -t tmpfs tmpfs /mnt/tmp || fail 'tmpfs /tmp'
mount -t tmpfs tmpfs /mnt/run || fail 'tmpfs /run'
"#,
    );
    for (i, path) in spec.keep.iter().enumerate() {
        let p = shell_quote(&path.to_string_lossy());
        let _ = writeln!(
            s,
            "mkdir -p /mnt{p} && mount --move /keep/{i} /mnt{p} || fail 'restore {p}'"
        );
    }
    let modules = spec.modules.join(" ");
    // Two loaders in parallel: module loading dominates boot time under emulation.
    let (first, second) = spec.modules.split_at(spec.modules.len() / 2);
    let (first, second) = (first.join(" "), second.join(" "));
    let _ = write!(
        s,
        r#"mkdir -p /mnt/run/lab && mount --bind /share /mnt/run/lab || fail 'bind share'
mkdir -p /share/out
printf '#!/bin/sh\nexec chroot /mnt /usr/sbin/modprobe -d {kroot} "$@"\n' > /sbin/lab-modprobe
chmod 755 /sbin/lab-modprobe
echo /sbin/lab-modprobe > /proc/sys/kernel/modprobe
mark 'loading modules'
chroot /mnt /usr/sbin/modprobe -d {kroot} -a {first} 2>> /share/modprobe.log &
chroot /mnt /usr/sbin/modprobe -d {kroot} -a {second} 2>> /share/modprobe.log
wait
mark 'modules loaded'
for m in {modules}; do [ -d /sys/module/$m ] || fail "module $m is not loaded (see modprobe.log)"; done
mark 'modules verified'
hostname lab
ip link set lo up
mark 'starting command'
chroot /mnt /bin/sh /run/lab/in/cmd.sh < /dev/null > /share/stdout 2> /share/stderr
echo $? > /share/rc
mark 'command done'
off
"#
    );
    s
}

/// The per-run script: environment, working directory, then exec CMD.
pub fn command_script(cwd: &Path, argv: &[String], env: &[(String, String)]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for (key, value) in env {
        let _ = writeln!(s, "export {key}={}", shell_quote(value));
    }
    let cwd = shell_quote(&cwd.to_string_lossy());
    let _ = writeln!(
        s,
        "cd {cwd} || {{ echo \"lab: cannot enter {cwd}\" >&2; exit 125; }}"
    );
    let argv: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let _ = writeln!(s, "exec {}", argv.join(" "));
    s
}

/// The host environment passed into the guest: everything with a valid shell name except what
/// describes the host session itself; plus `LAB_SHARE` (the writable share), `KUBE_IPVS_LAB=1` and
/// `LAB_MODULES` (the running kernel's module tree, what a node has at /lib/modules).
pub fn guest_env(share_out: &str, modules: &Path) -> Vec<(String, String)> {
    const SKIP: [&str; 7] = [
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "LAB_SHARE",
        "KUBE_IPVS_LAB",
        "LAB_MODULES",
    ];
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            !SKIP.contains(&k.as_str())
                && k.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|(k, v)| {
            let v = if k == "PATH" { without_shims(&v) } else { v };
            (k, v)
        })
        .collect();
    env.push(("LAB_SHARE".into(), share_out.into()));
    env.push(("KUBE_IPVS_LAB".into(), "1".into()));
    env.push(("LAB_MODULES".into(), modules.to_string_lossy().into_owned()));
    env.sort();
    env
}

/// PATH without pyenv's shim directories when the system has its own python3: a shim is a shell
/// script that spawns a dozen processes per `python3` start, seconds each time under emulation
/// (the traffic tests start a python3 per backend and client).
fn without_shims(path: &str) -> String {
    if !Path::new("/usr/bin/python3").exists() {
        return path.to_string();
    }
    path.split(':')
        .filter(|dir| !dir.contains("/.pyenv/"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_script_quotes_and_enters_cwd() {
        let script = command_script(
            Path::new("/work/my project"),
            &["sh".into(), "-c".into(), "exit 7".into()],
            &[("A".into(), "x y".into())],
        );
        assert_eq!(
            script,
            "#!/bin/sh\nexport A='x y'\ncd '/work/my project' || { echo \"lab: cannot enter '/work/my project'\" >&2; exit 125; }\nexec sh -c 'exit 7'\n"
        );
    }

    #[test]
    fn init_keeps_paths_under_tmp_visible() {
        let spec = InitSpec {
            boot_modules: vec!["/m/9p.ko".into()],
            kernel_root: Path::new("/work/target/lab/kernel/v"),
            modules: vec!["ip_vs".into()],
            keep: vec![PathBuf::from("/tmp/clone")],
        };
        let init = init_script(&spec);
        let bind = init.find("mount --bind /mnt/tmp/clone /keep/0").unwrap();
        let tmpfs = init.find("mount -t tmpfs tmpfs /mnt/tmp").unwrap();
        let restore = init.find("mount --move /keep/0 /mnt/tmp/clone").unwrap();
        assert!(bind < tmpfs && tmpfs < restore);
        assert!(init.contains("insmod /m/9p.ko"));
        assert!(init.trim_end().ends_with("off"));
    }
}
