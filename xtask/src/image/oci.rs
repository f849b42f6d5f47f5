//! Reproducible layers, and the image written as an OCI image layout and as a `docker load`
//! archive. Layers are GNU tar (entries sorted by name, mtimes clamped to SOURCE_DATE_EPOCH,
//! numeric owners, no user or group names) compressed by `gzip -n` (no name, no time); JSON
//! documents have sorted keys. The same inputs give the same bytes, so the same digests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::output_checked;

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A content-addressed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:HEX`
    pub digest: String,
    pub size: u64,
}

/// A layer blob with the digest of its uncompressed tar (the config's `diff_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
    /// What made it (the config's history).
    pub created_by: String,
}

/// What the image config says besides its layers.
#[derive(Debug)]
pub struct ImageConfig<'a> {
    pub created: &'a str,
    pub entrypoint: &'a [&'a str],
    pub cmd: &'a [&'a str],
    pub env: &'a [&'a str],
    pub labels: &'a [(&'a str, String)],
}

/// The OCI layout under `dir`: `oci-layout`, `index.json`, `blobs/sha256/`.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// A fresh, empty layout (an existing one is replaced).
    pub fn create(dir: &Path) -> Result<Self> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        fs::write(
            dir.join("oci-layout"),
            canonical_json(&json!({"imageLayoutVersion": "1.0.0"})),
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Store bytes as a blob.
    fn put(&self, bytes: &[u8]) -> Result<Blob> {
        let tmp = self.dir.join("blobs/.incoming");
        fs::write(&tmp, bytes)?;
        self.adopt(&tmp)
    }

    /// Move a file into the blob store under its digest.
    fn adopt(&self, file: &Path) -> Result<Blob> {
        let blob = Blob {
            digest: sha256(file)?,
            size: fs::metadata(file)?.len(),
        };
        fs::rename(file, self.blob_path(&blob.digest))?;
        Ok(blob)
    }

    /// Tar `root` (every entry under it, sorted), gzip it, and store it as a layer blob.
    pub fn add_layer(
        &self,
        root: &Path,
        epoch: u64,
        work: &Path,
        created_by: String,
    ) -> Result<Layer> {
        fs::create_dir_all(work)?;
        let tar = work.join("layer.tar");
        let mut entries: Vec<String> = fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        entries.sort();
        let mut cmd = Command::new("tar");
        cmd.args(reproducible_tar_flags(epoch))
            .arg(format!("--file={}", tar.display()))
            .arg("--directory")
            .arg(root)
            .arg("--")
            .args(&entries);
        output_checked(&mut cmd)?;
        let diff_id = sha256(&tar)?;
        let gz = work.join("layer.tar.gz");
        let out = fs::File::create(&gz)?;
        let status = Command::new("gzip")
            .args(["-n", "-6", "-c"])
            .arg(&tar)
            .stdout(out)
            .status()
            .context("cannot start gzip")?;
        if !status.success() {
            bail!("gzip {} failed: {status}", tar.display());
        }
        fs::remove_file(&tar)?;
        Ok(Layer {
            blob: self.adopt(&gz)?,
            diff_id,
            created_by,
        })
    }

    /// Write the config, the manifest and `index.json` naming the image `tag`; returns the
    /// config's and the manifest's blobs.
    pub fn finish(
        &self,
        config: &ImageConfig<'_>,
        layers: &[Layer],
        tag: &str,
    ) -> Result<(Blob, Blob)> {
        let config_blob = self.put(config_json(config, layers).as_bytes())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &config_blob),
            "layers": layers
                .iter()
                .map(|l| descriptor(LAYER_MEDIA_TYPE, &l.blob))
                .collect::<Vec<_>>(),
        });
        let manifest_blob = self.put(canonical_json(&manifest).as_bytes())?;
        let entry = json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_blob.digest,
            "size": manifest_blob.size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        });
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [entry],
        });
        fs::write(self.dir.join("index.json"), canonical_json(&index))?;
        Ok((config_blob, manifest_blob))
    }

    /// The layout plus Docker's `manifest.json` in one tar: `docker load` and `podman load` read
    /// it (as they read what `docker save` writes since Docker 25).
    pub fn write_docker_archive(
        &self,
        out: &Path,
        name: &str,
        config: &Blob,
        layers: &[Layer],
        epoch: u64,
        work: &Path,
    ) -> Result<()> {
        let blob_rel = |b: &Blob| {
            format!(
                "blobs/sha256/{}",
                b.digest.strip_prefix("sha256:").unwrap_or(&b.digest)
            )
        };
        let manifest = json!([{
            "Config": blob_rel(config),
            "RepoTags": [name],
            "Layers": layers.iter().map(|l| blob_rel(&l.blob)).collect::<Vec<_>>(),
        }]);
        fs::create_dir_all(work)?;
        fs::write(work.join("manifest.json"), canonical_json(&manifest))?;
        let mut cmd = Command::new("tar");
        cmd.args(reproducible_tar_flags(epoch))
            .args(["--owner=0", "--group=0", "--mode=u+rw,go+r,go-w"])
            .arg(format!("--file={}", out.display()))
            .arg("--directory")
            .arg(&self.dir)
            .args(["oci-layout", "index.json", "blobs/sha256"])
            .arg("--directory")
            .arg(work)
            .arg("manifest.json");
        output_checked(&mut cmd)?;
        Ok(())
    }
}

/// GNU tar flags that make an archive depend only on the files' contents, modes and owners.
fn reproducible_tar_flags(epoch: u64) -> Vec<String> {
    vec![
        "--create".into(),
        "--format=gnu".into(),
        "--sort=name".into(),
        "--numeric-owner".into(),
        format!("--mtime=@{epoch}"),
        "--clamp-mtime".into(),
        "--no-acls".into(),
        "--no-xattrs".into(),
        "--no-selinux".into(),
    ]
}

fn descriptor(media_type: &str, blob: &Blob) -> Value {
    json!({"mediaType": media_type, "digest": blob.digest, "size": blob.size})
}

pub fn config_json(config: &ImageConfig<'_>, layers: &[Layer]) -> String {
    let labels: serde_json::Map<String, Value> = config
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
        .collect();
    let doc = json!({
        "created": config.created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": config.env,
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd,
            "Labels": labels,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "history": layers
            .iter()
            .map(|l| json!({"created": config.created, "created_by": l.created_by}))
            .collect::<Vec<_>>(),
    });
    canonical_json(&doc)
}

/// JSON with every object's keys sorted, whatever map type serde_json was built with.
pub fn canonical_json(value: &Value) -> String {
    fn sort(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sort(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

/// `sha256:HEX` of a file (coreutils' sha256sum).
pub fn sha256(file: &Path) -> Result<String> {
    let out = output_checked(Command::new("sha256sum").arg(file))?;
    let hex = out
        .split_whitespace()
        .next()
        .filter(|h| h.len() == 64)
        .with_context(|| format!("sha256sum {}: unexpected output {out:?}", file.display()))?;
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_sorted_at_every_depth() {
        let v = json!({"b": 1, "a": {"d": [ {"z": 0, "y": 1} ], "c": 2}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
    }

    #[test]
    fn config_lists_layers_in_order_with_history() {
        let layer = |n: u8| Layer {
            blob: Blob {
                digest: format!("sha256:{n}"),
                size: 1,
            },
            diff_id: format!("sha256:d{n}"),
            created_by: format!("step {n}"),
        };
        let labels = [("org.opencontainers.image.version", "0.1.0".to_string())];
        let config = ImageConfig {
            created: "2026-12-01T00:00:00Z",
            entrypoint: &["/usr/local/bin/kube-ipvs"],
            cmd: &["run"],
            env: &["PATH=/usr/bin"],
            labels: &labels,
        };
        let doc: Value =
            serde_json::from_str(&config_json(&config, &[layer(1), layer(2)])).expect("valid JSON");
        assert_eq!(doc["rootfs"]["diff_ids"], json!(["sha256:d1", "sha256:d2"]));
        assert_eq!(doc["history"][1]["created_by"], "step 2");
        assert_eq!(
            doc["config"]["Entrypoint"],
            json!(["/usr/local/bin/kube-ipvs"])
        );
        assert_eq!(
            doc["config"]["Labels"]["org.opencontainers.image.version"],
            "0.1.0"
        );
    }
}
