//! Image fixtures: the compiled echo function, plans pointed at temporary directories, layouts
//! crafted layer by layer (to break one Lambda rule at a time), tar layers written byte for byte
//! (as malicious, or as odd as other builders' layers, as needed), and a stand-in for
//! `public.ecr.aws/lambda/provided:al2` made from Debian's static busybox.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cargo_lambda_image::config::{self, FunctionSpec, Overrides, PlanRequest, Selection};
use cargo_lambda_image::emulate::rootfs::{self, ImageRuntime};
use cargo_lambda_image::image::layer::LayerBuilder;
use cargo_lambda_image::oci::sha256_digest;
use cargo_lambda_image::oci::{self, Descriptor, Index, Layout, Manifest, Platform};
use cargo_lambda_image::target::Arch;
use serde_json::{json, Value};

use super::{cli, fixture_target_dir, fixture_workspace, run, texts};

/// The echo function's bootstraps (x86_64, arm64), compiled once per test binary.
pub fn echo_bootstrap(arch: Arch) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = cli();
        cmd.args([
            "build",
            "-p",
            "echo",
            "--arch",
            "x86_64,arm64",
            "--locked",
            "-q",
            "--manifest-path",
        ])
        .arg(fixture_workspace().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", fixture_target_dir("musl"));
        let out = run(&mut cmd);
        assert!(out.status.success(), "{:?}", texts(&out));
    });
    fixture_target_dir("musl").join(format!(
        "lambda-image/fixture-echo/{}/bootstrap",
        arch.lambda_name()
    ))
}

/// The plan of the echo function for one arch and base, with its artifact (and so its image
/// layout) moved into `dir`, holding a copy of `bootstrap`.
pub fn echo_spec(arch: Arch, base: &str, dir: &Path, bootstrap: &Path) -> FunctionSpec {
    let request = PlanRequest {
        selection: Selection {
            manifest_path: Some(fixture_workspace().join("Cargo.toml")),
            packages: vec!["echo".into()],
            ..Default::default()
        },
        overrides: Overrides {
            arch: Some(vec![arch]),
            base_image: Some(base.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut spec = config::plan(&request).expect("plan").functions.remove(0);
    let artifact = dir.join(arch.lambda_name()).join("bootstrap");
    std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    std::fs::copy(bootstrap, &artifact).unwrap();
    spec.artifact = artifact.try_into().expect("utf-8 path");
    spec
}

/// Writes an OCI layout with one image made of the given config and layers
/// (`(media type, blob)`), and returns the manifest digest.
pub fn craft_layout(dir: &Path, config: &Value, layers: &[(&str, Vec<u8>)]) -> String {
    let layout = Layout::create(dir).unwrap();
    let config_bytes = serde_json::to_vec(config).unwrap();
    let config_digest = layout.write_blob(&config_bytes).unwrap();
    let descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|(media, data)| {
            Descriptor::new(media, &layout.write_blob(data).unwrap(), data.len() as u64)
        })
        .collect();
    let manifest = Manifest::oci(
        Descriptor::new(
            oci::MEDIA_OCI_CONFIG,
            &config_digest,
            config_bytes.len() as u64,
        ),
        descriptors,
    );
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = layout.write_blob(&bytes).unwrap();
    let entry = Descriptor::new(oci::MEDIA_OCI_MANIFEST, &digest, bytes.len() as u64);
    write_tagged_index(&layout, entry, "latest");
    digest
}

/// Writes the layout's `index.json`: `entry` alone, under the tag `tag`.
pub fn write_tagged_index(layout: &Layout, mut entry: Descriptor, tag: &str) {
    entry.annotations.insert(oci::REF_NAME.into(), tag.into());
    layout
        .write_index(&Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_OCI_INDEX.into()),
            manifests: vec![entry],
            annotations: Default::default(),
        })
        .unwrap();
}

/// A config for `arch` with the given entrypoint and cmd and one diff_id per layer.
pub fn config_for(
    arch: Arch,
    entrypoint: &[&str],
    cmd: &[&str],
    layers: &[(&str, Vec<u8>)],
) -> Value {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, data)| {
            let mut raw = Vec::new();
            if data.starts_with(&[0x1f, 0x8b]) {
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(data.as_slice()),
                    &mut raw,
                )
                .unwrap();
            } else {
                raw = data.clone();
            }
            sha256_digest(&raw)
        })
        .collect();
    json!({
        "architecture": arch.oci_name(), "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": "/var/task",
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
}

/// A raw tar (not gzip) with entries written exactly as given: `(path, kind, mode, data)`
/// where kind is `f` (file), `d` (dir) or `l:TARGET` (symlink). No parent directories are
/// added, so rules about them can be broken.
pub fn raw_tar(entries: &[(&str, &str, u32, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(*mode);
        header.set_mtime(0);
        match *kind {
            "d" => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_cksum();
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            "f" => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append_data(&mut header, path, *data).unwrap();
            }
            link => {
                let target = link.strip_prefix("l:").expect("kind f, d or l:TARGET");
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// One tar entry written as is.
pub enum Raw<'a> {
    /// A directory.
    Dir(&'a str, u32),
    /// A regular file with its mode and content.
    File(&'a str, u32, &'a [u8]),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
    /// A hard link and its target.
    HardLink(&'a str, &'a str),
    /// A character device.
    CharDevice(&'a str),
    /// A FIFO.
    Fifo(&'a str),
}

/// A raw tar whose names and link names are copied into the headers byte for byte (the tar
/// crate's builder refuses `..` and absolute paths, which these tests need).
pub fn evil_tar(entries: &[Raw]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_old();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let (path, link, kind, mode, data): (&str, &str, tar::EntryType, u32, &[u8]) = match entry {
            Raw::Dir(p, m) => (p, "", tar::EntryType::Directory, *m, &[]),
            Raw::File(p, m, d) => (p, "", tar::EntryType::Regular, *m, d),
            Raw::Symlink(p, l) => (p, l, tar::EntryType::Symlink, 0o777, &[]),
            Raw::HardLink(p, l) => (p, l, tar::EntryType::Link, 0o644, &[]),
            Raw::CharDevice(p) => (p, "", tar::EntryType::Char, 0o644, &[]),
            Raw::Fifo(p) => (p, "", tar::EntryType::Fifo, 0o644, &[]),
        };
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        let old = header.as_old_mut();
        assert!(path.len() < 100 && link.len() < 100);
        old.name = [0; 100];
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `tar` as umoci writes its layers: cut right after the last entry's data, without the padding
/// and the two zero blocks that close an archive.
pub fn unclosed(tar: &[u8]) -> Vec<u8> {
    let mut end = 0;
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        end = entry.raw_file_position() + entry.size();
    }
    tar[..end as usize].to_vec()
}

/// Unpacks a crafted layout (in `dir/layout`) of `layers` (raw tars, gzipped here) into
/// `dir/rootfs`; returns the layers' digests too.
pub fn unpack_layers(
    dir: &Path,
    layers: &[Vec<u8>],
) -> (Vec<String>, cargo_lambda_image::Result<ImageRuntime>) {
    let layers: Vec<(&str, Vec<u8>)> = layers
        .iter()
        .map(|tar| (oci::MEDIA_OCI_LAYER_GZIP, gzip(tar)))
        .collect();
    let config = config_for(
        Arch::Arm64,
        &["/var/runtime/bootstrap"],
        &["handler"],
        &layers,
    );
    let layout = dir.join("layout");
    craft_layout(&layout, &config, &layers);
    let digests = layers
        .iter()
        .map(|(_, blob)| cargo_lambda_image::oci::sha256_digest(blob))
        .collect();
    (digests, rootfs::unpack(&layout, &dir.join("rootfs")))
}

/// The permission bits of a path (not following a symlink).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Gzips bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, data).unwrap();
    encoder.finish().unwrap()
}

/// The script of provided.al2's `/lambda-entrypoint.sh`, same behaviour: one handler argument,
/// then exec the bootstrap directly (Runtime API given) or under the RIE.
pub const LAMBDA_ENTRYPOINT: &str = r#"#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"#;

/// The files a provided-style stand-in base starts from: busybox as /bin/sh (the host's static
/// one), the entrypoint script, and the runtime, task and tmp directories.
pub fn provided_like_layer() -> LayerBuilder {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox: `cargo xtask ci` installs busybox-static");
    let mut layer = LayerBuilder::new();
    layer.file("bin/sh", 0o755, busybox).unwrap();
    layer
        .file(
            "lambda-entrypoint.sh",
            0o755,
            LAMBDA_ENTRYPOINT.as_bytes().to_vec(),
        )
        .unwrap();
    layer.dir("var/runtime", 0o755).unwrap();
    layer.dir("var/task", 0o755).unwrap();
    layer.dir("tmp", 0o1777).unwrap();
    layer
}

/// The layer (gzip) and config of [`fake_provided_base_with_env`].
fn fake_provided_parts(extra_env: &[&str]) -> (Vec<u8>, Value) {
    let (compressed, diff_id) = provided_like_layer().compress(0).unwrap();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=en_US.UTF-8", "TZ=:/etc/localtime",
                    "LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
                    "LAMBDA_TASK_ROOT=/var/task", "LAMBDA_RUNTIME_DIR=/var/runtime"],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "WorkingDir": "/var/task"
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "fake provided.al2 for tests"}]
    });
    let mut config = config;
    if let Some(env) = config["config"]["Env"].as_array_mut() {
        env.extend(extra_env.iter().map(|e| json!(e)));
    }
    (compressed, config)
}

/// Writes the blobs of an image of one gzip layer (`compressed`) and `config` into `layout`;
/// returns the manifest's descriptor for an index, with its platform.
pub fn write_one_layer_image(
    layout: &Layout,
    config: &Value,
    compressed: &[u8],
    architecture: &str,
) -> Descriptor {
    let config_bytes = serde_json::to_vec(config).unwrap();
    let config_digest = layout.write_blob(&config_bytes).unwrap();
    let layer_digest = layout.write_blob(compressed).unwrap();
    let manifest = Manifest::oci(
        Descriptor::new(
            oci::MEDIA_OCI_CONFIG,
            &config_digest,
            config_bytes.len() as u64,
        ),
        vec![Descriptor::new(
            oci::MEDIA_OCI_LAYER_GZIP,
            &layer_digest,
            compressed.len() as u64,
        )],
    );
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = layout.write_blob(&manifest_bytes).unwrap();
    let mut entry = Descriptor::new(
        oci::MEDIA_OCI_MANIFEST,
        &manifest_digest,
        manifest_bytes.len() as u64,
    );
    entry.platform = Some(Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: None,
    });
    entry
}

/// A stand-in for provided.al2 (x86_64 only: Debian's busybox-static is the host's): busybox
/// as /bin/sh, the entrypoint script, Lambda's env, written as an OCI layout with an index, as
/// ECR Public serves it. Returns the layout directory.
pub fn fake_provided_base(dir: &Path) -> PathBuf {
    fake_provided_base_with_env(dir, &[])
}

/// [`fake_provided_base`] with `extra_env` (`KEY=value`) in its config's `Env`.
pub fn fake_provided_base_with_env(dir: &Path, extra_env: &[&str]) -> PathBuf {
    let (compressed, config) = fake_provided_parts(extra_env);
    let layout_dir = dir.join("provided-al2");
    let layout = Layout::create(&layout_dir).unwrap();
    let platform_entry = write_one_layer_image(&layout, &config, &compressed, "amd64");
    let index = Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_OCI_INDEX.into()),
        manifests: vec![platform_entry],
        annotations: Default::default(),
    };
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let index_digest = layout.write_blob(&index_bytes).unwrap();
    let mut top = Descriptor::new(
        oci::MEDIA_OCI_INDEX,
        &index_digest,
        index_bytes.len() as u64,
    );
    top.annotations.insert(oci::REF_NAME.into(), "al2".into());
    layout
        .write_index(&Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_OCI_INDEX.into()),
            manifests: vec![top],
            annotations: Default::default(),
        })
        .unwrap();
    layout_dir
}

/// An image imported into the Docker engine by a test, untagged (`docker rmi`) when dropped.
pub struct EngineImage {
    /// Its name, `repository:tag`.
    pub name: String,
}

impl Drop for EngineImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "--force", &self.name])
            .output();
    }
}

/// [`fake_provided_base`] imported into the Docker engine (`docker import`, with the config's
/// ENTRYPOINT, ENV and WORKDIR as `--change`s) under a name no registry has, as a base built
/// or imported locally is: `fakeprovided-<unique>:al2` (amd64, the engine's own platform).
pub fn engine_provided_base(dir: &Path) -> EngineImage {
    let (compressed, config) = fake_provided_parts(&[]);
    let layer = dir.join("fake-provided-layer.tar.gz");
    std::fs::write(&layer, compressed).unwrap();
    let name = format!("{}:al2", super::unique("fakeprovided"));
    let mut cmd = std::process::Command::new("docker");
    cmd.arg("import")
        .args(["--change", r#"ENTRYPOINT ["/lambda-entrypoint.sh"]"#])
        .args(["--change", "WORKDIR /var/task"]);
    for env in config["config"]["Env"].as_array().unwrap() {
        cmd.args(["--change", &format!("ENV {}", env.as_str().unwrap())]);
    }
    let out = run(cmd.arg(&layer).arg(&name));
    assert!(out.status.success(), "docker import: {:?}", texts(&out));
    EngineImage { name }
}
