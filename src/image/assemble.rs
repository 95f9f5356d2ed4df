//! The daemonless builder: the function's files go into reproducible gzip layers on top of the
//! base's layers (its Lambda extensions, its included files, its bootstrap); the config keeps
//! the base's ENV and ENTRYPOINT and sets CMD, WORKDIR, labels, platform and history. Nothing
//! here needs a Docker engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cargo_metadata::camino::Utf8PathBuf;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::lambda::{self, BOOTSTRAP_PATH, TASK_ROOT};
use crate::oci::{self, Descriptor, ImageConfig, Index, Layout, Manifest};
use crate::progress::Reporter;
use crate::registry::RegistryOptions;
use crate::store::{Held, Lease, Staging};
use crate::target::Arch;

use super::base::{BaseLayer, ResolvedBase};
use super::layer::{LayerBuilder, LayerCache};
use super::resolve::BaseCache;
use super::{entrypoint_and_command, function_dir, Builder, BuiltImage, ImageOptions};

/// Assembles images here, from the bootstrap and the base's layers: reproducible, and no
/// Docker engine needed. Bases are resolved once per (reference, architecture) and shared by
/// every function built with this builder.
#[derive(Debug)]
pub struct Daemonless {
    options: ImageOptions,
    bases: BaseCache,
}

impl Daemonless {
    /// A builder with these image options, pulling bases with these registry options.
    pub fn new(options: ImageOptions, registry: RegistryOptions) -> Daemonless {
        Daemonless {
            options,
            bases: BaseCache::new(registry),
        }
    }
}

impl Builder for Daemonless {
    fn name(&self) -> &'static str {
        "daemonless"
    }

    fn build<'a>(
        &'a self,
        spec: &'a FunctionSpec,
        bootstrap: &'a Path,
        reporter: &'a Reporter,
    ) -> BoxFuture<'a, Result<BuiltImage>> {
        Box::pin(async move {
            let base = self.bases.get(spec, reporter).await?;
            let (spec, bootstrap) = (spec.clone(), bootstrap.to_path_buf());
            let options = self.options.clone();
            // Compressing the layer is most of the work: keep it off the async workers.
            tokio::task::spawn_blocking(move || assemble(&spec, &bootstrap, &base, &options))
                .await
                .map_err(|e| Error::TaskFailed {
                    task: "image",
                    message: e.to_string(),
                })?
        })
    }
}

/// Included files go into layers of at most about this many bytes, split between files, so
/// that a change to one file re-pushes its layer only, and a code change none of them.
pub const INCLUDE_LAYER_BYTES: u64 = 256 << 20;

/// One layer the function adds to its base, and what the image's history says of it.
pub(crate) struct OwnLayer {
    /// Its files.
    pub builder: LayerBuilder,
    /// The history's `created_by`.
    pub created_by: String,
}

/// Assembles the image of one function from its compiled bootstrap and its resolved base:
/// the base's layers, then each Lambda extension in a layer of its own, then the included
/// files in layers of their own, then the bootstrap on top. Layers whose inputs did not change
/// come from the layer cache, not compressed again.
pub fn assemble(
    spec: &FunctionSpec,
    bootstrap: &Path,
    base: &ResolvedBase,
    options: &ImageOptions,
) -> Result<BuiltImage> {
    let mtime = options.source_date_epoch.unwrap_or(0);
    let cache = LayerCache::new(&options.cache_dir());
    let mut layers = base.layers.clone();
    let mut added = Vec::new();
    for own in function_layers(spec, bootstrap)? {
        let layer = cache.get_or_build(&own.builder, mtime)?;
        added.push((layer.diff_id.clone(), own.created_by));
        layers.push(BaseLayer {
            descriptor: Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, &layer.digest, layer.size),
            path: layer.path,
        });
    }
    let config = image_config(spec, base, &added, mtime)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| json_error(spec, e))?;
    write_layout(spec, &base.reference, &config_bytes, &layers)
}

/// The layers the function adds to its base, lowest first: each extension at
/// `/opt/extensions/<name>` (0755) alone in its layer, by name, so that the layer is the same
/// for every function that ships that build of it and no function change touches it; the
/// `include`d files under the task root, in path order, in layers of at most
/// [`INCLUDE_LAYER_BYTES`] (a larger file gets one of its own); then `/var/runtime/bootstrap`
/// with the task root itself.
pub(crate) fn function_layers(spec: &FunctionSpec, bootstrap: &Path) -> Result<Vec<OwnLayer>> {
    let mut own = Vec::new();
    for extension in &spec.extensions {
        let mut layer = LayerBuilder::new();
        layer.file_from(
            &extension.image_path(),
            0o755,
            extension.artifact.as_std_path(),
        )?;
        own.push(OwnLayer {
            builder: layer,
            created_by: format!(
                "cargo-lambda-image: COPY {} /{}",
                extension.name,
                extension.image_path()
            ),
        });
    }
    let mut layers = Vec::new();
    let mut current = LayerBuilder::new();
    let mut bytes = 0;
    for file in included_files(spec)? {
        if !current.is_empty() && bytes + file.size > INCLUDE_LAYER_BYTES {
            layers.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.file_from(&file.path, file.mode, &file.source)?;
        bytes += file.size;
    }
    if !current.is_empty() {
        layers.push(current);
    }
    let count = layers.len();
    own.extend(layers.into_iter().enumerate().map(|(i, builder)| OwnLayer {
        builder,
        created_by: format!(
            "cargo-lambda-image: COPY include {}/{count} /{TASK_ROOT}/",
            i + 1
        ),
    }));
    let mut top = LayerBuilder::new();
    top.file_from(BOOTSTRAP_PATH, 0o755, bootstrap)?;
    top.dir(TASK_ROOT, 0o755)?;
    own.push(OwnLayer {
        builder: top,
        created_by: format!("cargo-lambda-image: COPY {} /{BOOTSTRAP_PATH}", spec.bin),
    });
    Ok(own)
}

/// The files the function adds to its base, as one tree: what the Docker builder's context
/// holds, so both builders put the same files in the image.
pub(crate) fn function_tree(spec: &FunctionSpec, bootstrap: &Path) -> Result<LayerBuilder> {
    let mut tree = LayerBuilder::new();
    tree.file_from(BOOTSTRAP_PATH, 0o755, bootstrap)?;
    tree.dir(TASK_ROOT, 0o755)?;
    for file in included_files(spec)? {
        tree.file_from(&file.path, file.mode, &file.source)?;
    }
    for extension in &spec.extensions {
        tree.file_from(
            &extension.image_path(),
            0o755,
            extension.artifact.as_std_path(),
        )?;
    }
    Ok(tree)
}

/// An included file.
struct Included {
    /// Its path in the image (under the task root).
    path: String,
    /// Where it is read from.
    source: PathBuf,
    /// 0755 when executable, else 0644.
    mode: u32,
    /// Its size.
    size: u64,
}

/// Every `include`d file (a file, or the files of a directory, relative to the package),
/// sorted by its path in the image.
fn included_files(spec: &FunctionSpec) -> Result<Vec<Included>> {
    let package_dir = spec
        .manifest_path
        .parent()
        .map(|p| p.as_std_path().to_path_buf())
        .unwrap_or_default();
    let mut found: BTreeMap<String, Included> = BTreeMap::new();
    for include in &spec.image.include {
        let relative = Path::new(include);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(Error::InvalidPath {
                path: include.to_string(),
            });
        }
        let mut files: Vec<PathBuf> = Vec::new();
        collect_files(&package_dir.join(relative), &mut files)?;
        for file in files {
            let rel = file.strip_prefix(&package_dir).unwrap_or(&file);
            let path = format!("{TASK_ROOT}/{}", rel.to_string_lossy());
            let meta = std::fs::metadata(&file)
                .map_err(|e| Error::io("could not read the included file", &file, e))?;
            let mode = executable_mode(&meta);
            found.insert(
                path.clone(),
                Included {
                    path,
                    source: file,
                    mode,
                    size: meta.len(),
                },
            );
        }
    }
    Ok(found.into_values().collect())
}

/// Writes the OCI layout of `spec`'s image: the config, the layers (blob files, hard-linked
/// where possible), the manifest and, last, `index.json`. It is written into a staging
/// directory, which becomes `images/<name>` once complete (or is dropped, when another process
/// made the same image meanwhile); `oci` is then pointed at it, and images that nothing points
/// at or holds are removed.
pub(crate) fn write_layout(
    spec: &FunctionSpec,
    base_reference: &str,
    config_bytes: &[u8],
    stored_layers: &[BaseLayer],
) -> Result<BuiltImage> {
    let dir = function_dir(spec).into_std_path_buf();
    let images = dir.join(IMAGES);
    crate::compile::sweep_function_dir(&dir);
    crate::store::sweep_once(&images);
    let mut attempts = 0;
    loop {
        let staging = Staging::dir(&images, "image")
            .map_err(|e| Error::io("could not create a directory in", &images, e))?;
        // A full disk, say: the staging directory is removed when dropped.
        let image = write_fresh_layout(
            spec,
            base_reference,
            config_bytes,
            stored_layers,
            staging.path(),
        )?;
        let index = std::fs::read(staging.path().join("index.json"))
            .map_err(|e| Error::io("could not read", staging.path(), e))?;
        let name = oci::sha256_digest(&index).replace(':', "-");
        let dest = images.join(&name);
        let lease = match staging.commit_dir(&dest) {
            Ok(Some(lease)) => Some(lease),
            // The same image, made by another process (or an earlier run): use that one.
            Ok(None) => Lease::take(&dest).map_err(|e| Error::io("could not lock", &dest, e))?,
            Err(e) => return Err(Error::io("could not write", &dest, e)),
        };
        let Some(lease) = lease else {
            // Removed between the two steps by a sweep that found it unused: write it again.
            attempts += 1;
            if attempts < 3 {
                continue;
            }
            return Err(Error::io(
                "could not keep",
                &dest,
                std::io::Error::other("another process keeps removing it"),
            ));
        };
        point_at(&dir, &name)?;
        let current = current_image(&dir);
        crate::store::sweep(&images, &|entry| {
            entry.to_str() != Some(name.as_str()) && Some(entry.to_os_string()) != current
        });
        let layout = Utf8PathBuf::from_path_buf(dest).map_err(|p| Error::InvalidPath {
            path: p.display().to_string(),
        })?;
        return Ok(BuiltImage {
            layout,
            lease: Held::new(lease),
            ..image
        });
    }
}

/// Where the images of a function's directory are.
const IMAGES: &str = "images";

/// Points `<dir>/oci` at `images/<name>`. An `oci` directory left by an older version of the
/// tool (the layout itself) is moved aside and removed first.
fn point_at(dir: &Path, name: &str) -> Result<()> {
    let link = dir.join("oci");
    if std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
        if let Ok(aside) = Staging::dir(dir, "old-oci") {
            let _ = std::fs::rename(&link, aside.path().join("oci"));
        }
    }
    crate::store::point(&link, &Path::new(IMAGES).join(name))
        .map_err(|e| Error::io("could not point", &link, e))
}

/// The name of the image `<dir>/oci` points at.
fn current_image(dir: &Path) -> Option<std::ffi::OsString> {
    std::fs::read_link(dir.join("oci"))
        .ok()
        .and_then(|target| target.file_name().map(|n| n.to_os_string()))
}

/// Writes the layout of [`write_layout`] into the directory `fresh`.
fn write_fresh_layout(
    spec: &FunctionSpec,
    base_reference: &str,
    config_bytes: &[u8],
    stored_layers: &[BaseLayer],
    fresh: &Path,
) -> Result<BuiltImage> {
    let layout = Layout::create(fresh)?;
    let config_digest = layout.write_blob(config_bytes)?;
    let mut layers: Vec<Descriptor> = Vec::new();
    for stored in stored_layers {
        layout.import_blob(&stored.descriptor.digest, &stored.path)?;
        layers.push(stored.descriptor.clone());
    }
    let manifest = Manifest::oci(
        Descriptor::new(
            oci::MEDIA_OCI_CONFIG,
            &config_digest,
            config_bytes.len() as u64,
        ),
        layers.clone(),
    );
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| json_error(spec, e))?;
    let digest = layout.write_blob(&manifest_bytes)?;
    let entry = Descriptor::new(
        oci::MEDIA_OCI_MANIFEST,
        &digest,
        manifest_bytes.len() as u64,
    );
    layout.write_index(&Index::single(entry, spec.arch, &spec.image.tag))?;
    Ok(BuiltImage {
        function: spec.name.clone(),
        arch: spec.arch,
        layout: Utf8PathBuf::from_path_buf(fresh.to_path_buf()).map_err(|p| {
            Error::InvalidPath {
                path: p.display().to_string(),
            }
        })?,
        repository: spec.image.repository.clone(),
        tag: spec.image.tag.clone(),
        digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        layers,
        base: base_reference.to_string(),
        lease: Held::none(),
    })
}

fn json_error(spec: &FunctionSpec, e: serde_json::Error) -> Error {
    Error::InvalidImage {
        image: spec.name.clone(),
        message: e.to_string(),
        help: String::new(),
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io("could not read the included path", path, e))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| Error::io("could not list", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("could not list", path, e))?;
            collect_files(&entry.path(), out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// 0755 for an executable file, 0644 for any other.
fn executable_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// The new image's config: the base's, with our platform, command, workdir, labels, layer and
/// history entry.
fn image_config(
    spec: &FunctionSpec,
    base: &ResolvedBase,
    added: &[(String, String)],
    mtime: u64,
) -> Result<Value> {
    let base_run = ImageConfig::from_value(&base.config).run;
    let mut config = base.config.clone();
    let created = crate::time::rfc3339_secs(mtime);
    let Some(root) = config.as_object_mut() else {
        return Err(Error::InvalidImage {
            image: base.reference.clone(),
            message: "its config is not a JSON object".into(),
            help: "the base image is malformed".into(),
        });
    };
    root.insert("architecture".into(), json!(spec.arch.oci_name()));
    root.insert("os".into(), json!("linux"));
    if spec.arch == Arch::X86_64 {
        root.remove("variant");
    } else {
        root.insert("variant".into(), json!("v8"));
    }
    root.insert("created".into(), json!(created));
    let run = root.entry("config").or_insert_with(|| json!({}));
    if !run.is_object() {
        *run = json!({});
    }
    if let Some(run) = run.as_object_mut() {
        let (entrypoint, command) = entrypoint_and_command(spec, &base_run);
        run.insert("Entrypoint".into(), json!(entrypoint));
        match command {
            Some(command) => run.insert("Cmd".into(), json!(command)),
            None => run.remove("Cmd"),
        };
        run.insert("WorkingDir".into(), json!(spec.image.workdir));
        let env = run.entry("Env").or_insert_with(|| json!([]));
        if let Some(list) = env.as_array_mut() {
            for (key, value) in [
                ("LAMBDA_TASK_ROOT", lambda::TASK_ROOT_DIR),
                ("LAMBDA_RUNTIME_DIR", lambda::RUNTIME_DIR),
            ] {
                let present = list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|e| e.starts_with(&format!("{key}=")));
                if !present {
                    list.push(json!(format!("{key}={value}")));
                }
            }
        }
        if !spec.image.labels.is_empty() {
            let labels = run.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            if let Some(labels) = labels.as_object_mut() {
                for (k, v) in &spec.image.labels {
                    labels.insert(k.clone(), json!(v));
                }
            }
        }
    }
    let rootfs = root
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    rootfs["type"] = json!("layers");
    if rootfs.get("diff_ids").and_then(Value::as_array).is_none() {
        rootfs["diff_ids"] = json!([]);
    }
    if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        ids.extend(added.iter().map(|(diff_id, _)| json!(diff_id)));
    }
    let history = root.entry("history").or_insert_with(|| json!([]));
    if let Some(list) = history.as_array_mut() {
        list.extend(added.iter().map(|(_, created_by)| {
            json!({
                "created": created,
                "created_by": created_by,
                "comment": format!("function {} ({})", spec.name, spec.arch),
            })
        }));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths of each layer the function adds, files only.
    fn files(layers: &[OwnLayer]) -> Vec<Vec<&str>> {
        layers
            .iter()
            .map(|l| {
                l.builder
                    .paths()
                    .filter(|p| p.contains('.') || p.ends_with("bootstrap"))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn includes_come_in_layers_of_their_own_split_on_file_boundaries_under_the_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(package.join("models")).unwrap();
        std::fs::write(package.join("labels.json"), b"[]").unwrap();
        // Sparse files: sizes without the bytes.
        for (name, mib) in [
            ("a.bin", 100),
            ("b.bin", 100),
            ("c.bin", 100),
            ("huge.bin", 300),
        ] {
            let file = std::fs::File::create(package.join("models").join(name)).unwrap();
            file.set_len(mib << 20).unwrap();
        }
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, b"\x7fELF").unwrap();
        let mut spec = crate::config::example_spec("hello", Arch::X86_64, "scratch");
        spec.manifest_path = package.join("Cargo.toml").try_into().unwrap();
        spec.image.include = vec!["models".into(), "labels.json".into()];
        let layers = function_layers(&spec, &bootstrap).unwrap();
        assert_eq!(
            files(&layers),
            [
                vec![
                    "var/task/labels.json",
                    "var/task/models/a.bin",
                    "var/task/models/b.bin"
                ],
                vec!["var/task/models/c.bin"],
                vec!["var/task/models/huge.bin"],
                vec!["var/runtime/bootstrap"],
            ]
        );
        // Every layer carries its own parent directories.
        for layer in &layers {
            assert!(layer.builder.paths().any(|p| p == "var"));
        }
        assert!(layers[3].builder.paths().any(|p| p == "var/task"));
        assert_eq!(
            layers[0].created_by,
            "cargo-lambda-image: COPY include 1/3 /var/task/"
        );
        // The same files give the same split; only the files decide it.
        let again = function_layers(&spec, &bootstrap).unwrap();
        assert_eq!(files(&again), files(&layers));
    }

    /// Each extension is a layer of its own, holding only `/opt/extensions/<name>` (0755) and
    /// its parents, under the included files and the bootstrap; two functions that ship the
    /// same build of it get the same layer, whatever else differs.
    #[test]
    fn extensions_are_layers_of_their_own_under_the_functions_files() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("labels.json"), b"[]").unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let (bootstrap, other) = (file("bootstrap", b"\x7fELF 1"), file("other", b"\x7fELF 2"));
        let (telemetry, agent) = (file("telemetry", b"\x7fELF t"), file("agent", b"\x7fELF a"));
        let mut spec = crate::config::example_spec("hello", Arch::X86_64, "scratch");
        spec.manifest_path = package.join("Cargo.toml").try_into().unwrap();
        spec.image.include = vec!["labels.json".into()];
        for (name, path) in [("agent", &agent), ("telemetry", &telemetry)] {
            spec.extensions.push(crate::config::ExtensionBinary {
                name: name.into(),
                package: format!("{name}-ext"),
                artifact: path.clone().try_into().unwrap(),
            });
        }
        let layers = function_layers(&spec, &bootstrap).unwrap();
        let all: Vec<Vec<&str>> = layers.iter().map(|l| l.builder.paths().collect()).collect();
        assert_eq!(
            all[..2],
            [
                vec!["opt", "opt/extensions", "opt/extensions/agent"],
                vec!["opt", "opt/extensions", "opt/extensions/telemetry"],
            ]
        );
        assert_eq!(
            files(&layers[2..]),
            [vec!["var/task/labels.json"], vec!["var/runtime/bootstrap"]]
        );
        assert_eq!(
            layers[1].created_by,
            "cargo-lambda-image: COPY telemetry /opt/extensions/telemetry"
        );
        let tar = layers[1].builder.tar(0).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let modes: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let header = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            modes,
            [
                ("opt/".to_string(), 0o755, 0),
                ("opt/extensions/".to_string(), 0o755, 0),
                ("opt/extensions/telemetry".to_string(), 0o755, 0),
            ]
        );
        // Another function, another bootstrap, no includes: the extension layers are the same.
        let mut second = spec.clone();
        second.name = "other".into();
        second.image.include.clear();
        let again = function_layers(&second, &other).unwrap();
        for i in 0..2 {
            assert_eq!(
                again[i].builder.fingerprint(0, None).unwrap(),
                layers[i].builder.fingerprint(0, None).unwrap()
            );
            assert_eq!(
                again[i].builder.compress(0).unwrap(),
                layers[i].builder.compress(0).unwrap()
            );
        }
        // The Docker builder's context holds the same files.
        let tree = function_tree(&spec, &bootstrap).unwrap();
        assert!(tree.paths().any(|p| p == "opt/extensions/telemetry"));
    }

    #[test]
    fn an_include_that_disappears_while_imaging_is_named_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(package.join("data")).unwrap();
        std::fs::write(package.join("data/kept.txt"), b"kept").unwrap();
        // Larger than the hashing limit, so its identity is taken from its metadata.
        let gone = package.join("data/gone.bin");
        std::fs::File::create(&gone)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let bootstrap = dir.path().join("bootstrap");
        std::fs::write(&bootstrap, b"\x7fELF").unwrap();
        let mut spec = crate::config::example_spec("hello", Arch::X86_64, "scratch");
        spec.manifest_path = package.join("Cargo.toml").try_into().unwrap();
        spec.image.include = vec!["data".into()];
        // The files are listed, then one goes away before its layer is written.
        let layers = function_layers(&spec, &bootstrap).unwrap();
        std::fs::remove_file(&gone).unwrap();
        let cache = LayerCache::new(&dir.path().join("cache"));
        let err = cache.get_or_build(&layers[0].builder, 0).unwrap_err();
        assert!(
            err.to_string().contains(&gone.display().to_string()),
            "{err}"
        );
        let left: Vec<_> = walk(&dir.path().join("cache"));
        assert!(left.is_empty(), "{left:?}");
    }

    /// Every file under `dir`.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if dir.is_dir() {
            collect_files(dir, &mut out).unwrap();
        }
        out
    }
}
