//! The container image, run as the DaemonSet runs it, in the lab: the layers `cargo xtask image`
//! wrote (target/image/oci) are unpacked into a root filesystem, and the agent starts from it under
//! chroot with the DaemonSet's exact command, arguments and environment (deploy/daemonset.yaml),
//! the ConfigMap (deploy/configmap.yaml) at its mount path, the hostPath volumes (/lib/modules of
//! the running kernel, /run/xtables.lock), the service account files and the API server address
//! that a kubelet provides (the fake API server behind TLS). A ClusterIP then answers from a client
//! namespace and /healthz answers 200: the image's packages, paths and iptables back ends work,
//! which the tests of the host-built binary cannot show.
// Test code: helpers outside #[test] fns may panic too (clippy.toml only covers the fns).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use kube_ipvs_e2e::{NODE, Procs, VIP, ask_vip, cluster_yaml, sh, slice_yaml, spawn_in_netns};
use nix::sched::{CloneFlags, unshare};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(rel: &str) -> Value {
    let path = workspace().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

/// `path` (absolute, as the container sees it) inside `root`, following symlinks as the
/// container would: an absolute link target starts again at `root`.
fn in_root(root: &Path, path: &str) -> PathBuf {
    let mut resolved = root.to_path_buf();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if resolved != root {
                resolved.pop();
            }
            continue;
        }
        let next = resolved.join(&part);
        match std::fs::read_link(&next) {
            Ok(target) => {
                hops += 1;
                assert!(hops < 40, "symlink loop resolving {path}");
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                }
                for c in target.components().rev() {
                    if let Component::Normal(c) = c {
                        pending.push(c.to_string_lossy().into_owned());
                    } else if c == Component::ParentDir {
                        pending.push("..".into());
                    }
                }
            }
            Err(_) => resolved = next,
        }
    }
    resolved
}

/// The image: its layers unpacked in order into `root`; returns the image config.
fn unpack_image(layout: &Path, root: &Path) -> Value {
    let index = json_file(&layout.join("index.json"));
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let manifest = json_file(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json_file(&blob(manifest["config"]["digest"].as_str().unwrap()));
    std::fs::create_dir_all(root).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let file = blob(layer["digest"].as_str().unwrap());
        sh(&format!(
            "tar --numeric-owner -xzf '{}' -C '{}'",
            file.display(),
            root.display()
        ));
    }
    config
}

/// A self-signed certificate for 127.0.0.1 (the address the kubelet's environment names), with
/// its key: (cert PEM path, key PEM path).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("apiserver.crt"), dir.join("apiserver.key"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
         -subj /CN=fake-apiserver -addext subjectAltName=IP:127.0.0.1 \
         -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
         -keyout '{}' -out '{}' 2>/dev/null",
        key.display(),
        cert.display()
    ));
    (cert, key)
}

/// Terminates TLS on a local port and forwards each connection to the (plain HTTP) fake API
/// server: the in-cluster client speaks only HTTPS. Returns the port.
fn tls_front(backend: SocketAddr, cert: &Path, key: &Path) -> u16 {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::ring};

    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    port
}

/// `$(VAR)` references in a container's command and args, expanded as the kubelet does.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// GET `path` on 127.0.0.1:`port`: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
#[ignore = "needs IPVS and target/image (cargo xtask image): cargo xtask test"]
fn image_runs_as_the_daemonset_and_serves_a_clusterip() {
    let layout = std::env::var_os("KUBE_IPVS_IMAGE")
        .map_or_else(|| workspace().join("target/image/oci"), PathBuf::from);
    assert!(
        layout.join("index.json").exists(),
        "no image at {}: build it with `cargo xtask image` (cargo xtask test does)",
        layout.display()
    );
    // A network namespace for the node and a mount namespace for the container's mounts.
    lab_kit::enter_fresh_netns();
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    sh("mount --make-rprivate / && sysctl -qw net.ipv4.ip_forward=1");
    let base = std::env::var_os("LAB_SHARE").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("kube-ipvs-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("agent.log");
    eprintln!("image e2e: agent log in {}", log.display());
    // The root filesystem lives on tmpfs: unpacking onto the 9p share would be slow.
    let root = std::env::temp_dir().join(format!("kube-ipvs-rootfs-{}", std::process::id()));
    let config = unpack_image(&layout, &root);

    // The DaemonSet's container, as the kubelet would start it.
    let ds = yaml("deploy/daemonset.yaml");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kube-ipvs")
        .unwrap();
    assert_eq!(container["securityContext"]["privileged"], true);
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(f)) if f == "spec.nodeName" => NODE.to_owned(),
            other => panic!("env {name}: unexpected source {other:?}"),
        };
        env.insert(name, value);
    }
    let argv: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|a| expand(a.as_str().unwrap(), &env))
        .collect();
    // The image's entrypoint is what the DaemonSet's command overrides; it must be the same binary.
    assert_eq!(config["config"]["Entrypoint"][0].as_str(), Some(&*argv[0]));
    for alias in ["/usr/local/bin/kube-ipvs", "/usr/local/bin/kube-proxy"] {
        let path = in_root(&root, alias);
        assert!(path.is_file(), "{alias} missing from the image");
    }

    // Volumes: the ConfigMap's keys as files, hostPaths from this node.
    let configmap = yaml("deploy/configmap.yaml");
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let volume = volumes[mount["name"].as_str().unwrap()];
        let target = in_root(&root, mount["mountPath"].as_str().unwrap());
        let source = if let Some(name) = volume["configMap"]["name"].as_str() {
            assert_eq!(configmap["metadata"]["name"].as_str(), Some(name));
            let files = dir.join(format!("configmap-{name}"));
            std::fs::create_dir_all(&files).unwrap();
            for (key, value) in configmap["data"].as_object().unwrap() {
                std::fs::write(files.join(key), value.as_str().unwrap()).unwrap();
            }
            files
        } else {
            let host = volume["hostPath"]["path"].as_str().unwrap();
            match host {
                // The lab's node runs the lab kernel, whose modules are not in the shared root's
                // /lib/modules: the lab names their directory.
                "/lib/modules" => PathBuf::from(
                    std::env::var("LAB_MODULES").expect("LAB_MODULES (set by the lab)"),
                ),
                other => {
                    // As the kubelet does for these types.
                    if volume["hostPath"]["type"] == "FileOrCreate" {
                        sh(&format!("touch '{other}'"));
                    } else if volume["hostPath"]["type"] == "DirectoryOrCreate" {
                        std::fs::create_dir_all(other).unwrap();
                    }
                    PathBuf::from(other)
                }
            }
        };
        if source.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, "").unwrap();
        }
        let ro = if mount["readOnly"] == true { ",ro" } else { "" };
        sh(&format!(
            "mount --bind '{}' '{}' && mount -o remount,bind{ro} '{}'",
            source.display(),
            target.display(),
            target.display()
        ));
    }
    // What a privileged container gets from its runtime: /proc, /sys (of the node's network
    // namespace), /dev.
    sh(&format!(
        "mount -t proc proc '{r}/proc' && mount -t sysfs sysfs '{r}/sys' && mount --rbind /dev '{r}/dev'",
        r = root.display()
    ));

    // The API server, reached as in a pod: HTTPS at KUBERNETES_SERVICE_HOST:PORT, the service
    // account's token and CA in /var/run/secrets/kubernetes.io/serviceaccount.
    let api = FakeApiServer::start_on_own_thread().unwrap();
    let cluster = format!("{}---\n{}", cluster_yaml(), slice_yaml(&[1]));
    api.apply_bytes(cluster.as_bytes()).unwrap();
    let (cert, key) = certificate(&dir);
    let port = tls_front(api.addr(), &cert, &key);
    let sa = in_root(&root, "/var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::copy(&cert, sa.join("ca.crt")).unwrap();
    std::fs::write(sa.join("token"), "fake-token").unwrap();
    std::fs::write(sa.join("namespace"), "kube-system").unwrap();
    env.insert("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into());
    env.insert("KUBERNETES_SERVICE_PORT".into(), port.to_string());
    for e in config["config"]["Env"].as_array().unwrap() {
        let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
        env.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }

    let mut procs = Procs::default();
    spawn_in_netns(
        &mut procs,
        1,
        &["python3", "-c", kube_ipvs_e2e::SERVER, "b1"],
    );
    let client = spawn_in_netns(&mut procs, 100, &["sleep", "3600"]);

    let logfile = std::fs::File::create(&log).unwrap();
    let agent: Child = Command::new("chroot")
        .arg(&root)
        .args(&argv)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(logfile.try_clone().unwrap())
        .stderr(logfile)
        .spawn()
        .expect("chroot");
    procs.0.push(agent);

    // /healthz: 200 once the agent has synced (healthzBindAddress of the ConfigMap).
    let deadline = Instant::now() + Duration::from_secs(180);
    let body = loop {
        match http_get(10256, "/healthz") {
            Some((200, body)) => break body,
            other => assert!(
                Instant::now() < deadline,
                "/healthz: {other:?}; agent log:\n{}",
                log_of(&log)
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(body.contains("lastUpdated"), "{body}");

    let deadline = Instant::now() + Duration::from_secs(120);
    let answers = loop {
        let answers = ask_vip(client, VIP, 80, 3);
        if answers.iter().all(|a| a == "b1") && answers.len() == 3 {
            break answers;
        }
        assert!(
            Instant::now() < deadline,
            "the ClusterIP answered {answers:?}; agent log:\n{}",
            log_of(&log)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(answers, ["b1", "b1", "b1"]);

    // The rules were written with the image's own iptables (whichever back end it chose).
    let saved = Command::new("chroot")
        .arg(&root)
        .args([
            "sh",
            "-c",
            "iptables-nft-save -t nat; iptables-legacy-save -t nat",
        ])
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    let saved = String::from_utf8_lossy(&saved.stdout);
    assert!(
        saved.contains("-j KUBE-SERVICES"),
        "no KUBE-SERVICES jump in the image's iptables-save:\n{saved}\nagent log:\n{}",
        log_of(&log)
    );
    drop(procs);
    eprintln!("image e2e: ClusterIP and /healthz answer from the image");
}
