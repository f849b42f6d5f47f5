//! The `fake-apiserver` binary: loads files, writes a kubeconfig, serves until killed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_loaded_files_through_its_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("fake-apiserver-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let objs = dir.join("objs.yaml");
    let kc = dir.join("kubeconfig");
    std::fs::write(
        &objs,
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: x}}\n- {apiVersion: v1, kind: Service, metadata: {name: b, namespace: x}}\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-apiserver"))
        .arg("--load")
        .arg(&objs)
        .arg("--kubeconfig-out")
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let url = BufReader::new(stdout).lines().next().unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let api: Api<Service> = Api::namespaced(kube::Client::try_from(config).unwrap(), "x");
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let _ = std::fs::remove_dir_all(&dir);
}
