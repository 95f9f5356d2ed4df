//! Stage 3: assemble a Lambda container image per (function, arch), without a Docker daemon.
//!
//! The bootstrap (and any `include` files) go into one reproducible gzip layer on top of the
//! base's layers; the config keeps the base's ENV and ENTRYPOINT and sets CMD, WORKDIR, labels,
//! platform and history. The result is an OCI image layout directory under
//! `target/lambda-image/<function>/<arch>/oci`, optionally also a docker-archive tarball.

pub mod base;
pub mod docker_build;
pub mod layer;
pub mod oci;

use std::path::{Path, PathBuf};

use cargo_metadata::camino::Utf8PathBuf;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::target::Arch;

use base::ResolvedBase;
use layer::LayerBuilder;
use oci::{Descriptor, Layout, Manifest};

/// Where Lambda's provided runtimes look for the function's executable.
pub const BOOTSTRAP_PATH: &str = "var/runtime/bootstrap";
/// Where `include` files go (Lambda's task root).
pub const TASK_ROOT: &str = "var/task";

/// Options of the image stage.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// The timestamp for every file and the config (`SOURCE_DATE_EPOCH`); 0 if unset.
    pub source_date_epoch: Option<u64>,
}

impl ImageOptions {
    /// Options with `SOURCE_DATE_EPOCH` from the process environment.
    pub fn from_env() -> ImageOptions {
        ImageOptions {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// An assembled image, stored as an OCI layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuiltImage {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// The OCI layout directory.
    pub layout: Utf8PathBuf,
    /// The repository name from the configuration.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The manifest digest (what a registry will report after push).
    pub digest: String,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The config digest.
    pub config_digest: String,
    /// The layers, base first; the last is the function's.
    pub layers: Vec<Descriptor>,
    /// The base reference.
    pub base: String,
}

impl BuiltImage {
    /// The directory, as a std path.
    pub fn layout_dir(&self) -> &Path {
        self.layout.as_std_path()
    }
}

/// The layout directory for a function: next to its bootstrap.
pub fn layout_dir(spec: &FunctionSpec) -> Utf8PathBuf {
    spec.artifact
        .parent()
        .map(|p| p.join("oci"))
        .unwrap_or_else(|| Utf8PathBuf::from("oci"))
}

/// Assembles the image of one function from its compiled bootstrap and its resolved base.
pub fn assemble(
    spec: &FunctionSpec,
    bootstrap: &Path,
    base: &ResolvedBase,
    options: &ImageOptions,
) -> Result<BuiltImage> {
    let mtime = options.source_date_epoch.unwrap_or(0);
    let layer = function_tree(spec, bootstrap)?.build(mtime)?;
    let config = image_config(spec, base, &layer.diff_id, mtime)?;
    let config_bytes = serde_json::to_vec(&config).map_err(|e| json_error(spec, e))?;
    write_layout(
        spec,
        &base.reference,
        &config_bytes,
        &base.layers,
        Some(&layer),
    )
}

/// The files the function adds to its base: `/var/runtime/bootstrap`, the task root, and the
/// `include`d files under it. The daemonless layer and the Docker build context are both made
/// from this tree, so both builders put the same files in the image.
pub(crate) fn function_tree(spec: &FunctionSpec, bootstrap: &Path) -> Result<LayerBuilder> {
    let mut builder = LayerBuilder::new();
    let binary = std::fs::read(bootstrap).map_err(|e| Error::io("could not read", bootstrap, e))?;
    builder.file(BOOTSTRAP_PATH, 0o755, binary)?;
    builder.dir(TASK_ROOT, 0o755)?;
    let package_dir = spec
        .manifest_path
        .parent()
        .map(|p| p.as_std_path().to_path_buf())
        .unwrap_or_default();
    for include in &spec.image.include {
        add_include(&mut builder, &package_dir, include)?;
    }
    Ok(builder)
}

/// Writes the OCI layout of `spec`'s image: the config, the layers already stored as blob
/// files (a base's), optionally one more layer held in memory (the function's), then the
/// manifest and, last, `index.json`, so a layout with an index is always complete.
pub(crate) fn write_layout(
    spec: &FunctionSpec,
    base_reference: &str,
    config_bytes: &[u8],
    stored_layers: &[base::BaseLayer],
    own_layer: Option<&layer::Layer>,
) -> Result<BuiltImage> {
    let layout = Layout::create(layout_dir(spec).as_std_path())?;
    let config_digest = layout.write_blob(config_bytes)?;
    let mut layers: Vec<Descriptor> = Vec::new();
    for stored in stored_layers {
        layout.import_blob(&stored.descriptor.digest, &stored.path)?;
        layers.push(stored.descriptor.clone());
    }
    if let Some(layer) = own_layer {
        layout.write_blob_with_digest(&layer.digest, &layer.compressed)?;
        layers.push(Descriptor::new(
            oci::MEDIA_OCI_LAYER_GZIP,
            &layer.digest,
            layer.compressed.len() as u64,
        ));
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_OCI_MANIFEST.into()),
        config: Descriptor::new(
            oci::MEDIA_OCI_CONFIG,
            &config_digest,
            config_bytes.len() as u64,
        ),
        layers: layers.clone(),
        annotations: Default::default(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| json_error(spec, e))?;
    let digest = layout.write_blob(&manifest_bytes)?;

    let mut entry = Descriptor::new(
        oci::MEDIA_OCI_MANIFEST,
        &digest,
        manifest_bytes.len() as u64,
    );
    entry.platform = Some(oci::Platform {
        architecture: spec.arch.oci_name().into(),
        os: "linux".into(),
        variant: None,
    });
    entry
        .annotations
        .insert(oci::REF_NAME.into(), spec.image.tag.clone());
    layout.write_index(&oci::Index {
        schema_version: 2,
        media_type: Some(oci::MEDIA_OCI_INDEX.into()),
        manifests: vec![entry],
        annotations: Default::default(),
    })?;
    let mut keep: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
    keep.push(config_digest.clone());
    keep.push(digest.clone());
    layout.retain_blobs(&keep)?;

    Ok(BuiltImage {
        function: spec.name.clone(),
        arch: spec.arch,
        layout: layout_dir(spec),
        repository: spec.image.repository.clone(),
        tag: spec.image.tag.clone(),
        digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        layers,
        base: base_reference.to_string(),
    })
}

fn json_error(spec: &FunctionSpec, e: serde_json::Error) -> Error {
    Error::InvalidImage {
        image: spec.name.clone(),
        message: e.to_string(),
        help: String::new(),
    }
}

/// Adds an `include` entry (a file or a directory, relative to the package) under the task root.
fn add_include(builder: &mut LayerBuilder, package_dir: &Path, include: &str) -> Result<()> {
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
    let source = package_dir.join(relative);
    let mut files: Vec<PathBuf> = Vec::new();
    collect_files(&source, &mut files)?;
    files.sort();
    for file in files {
        let rel = file.strip_prefix(package_dir).unwrap_or(&file);
        let data = std::fs::read(&file)
            .map_err(|e| Error::io("could not read the included file", &file, e))?;
        let mode = executable_mode(&file)?;
        builder.file(
            &format!("{TASK_ROOT}/{}", rel.to_string_lossy()),
            mode,
            data,
        )?;
    }
    Ok(())
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

#[cfg(unix)]
fn executable_mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::io("could not read", path, e))?
        .permissions()
        .mode();
    Ok(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

#[cfg(not(unix))]
fn executable_mode(_path: &Path) -> Result<u32> {
    Ok(0o644)
}

/// The new image's config: the base's, with our platform, command, workdir, labels, layer and
/// history entry.
fn image_config(
    spec: &FunctionSpec,
    base: &ResolvedBase,
    diff_id: &str,
    mtime: u64,
) -> Result<Value> {
    let mut config = base.config.clone();
    let created = rfc3339(mtime);
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
        let (entrypoint, command) = entrypoint_and_command(spec, run);
        run.insert("Entrypoint".into(), json!(entrypoint));
        match command {
            Some(command) => run.insert("Cmd".into(), json!(command)),
            None => run.remove("Cmd"),
        };
        run.insert("WorkingDir".into(), json!(spec.image.workdir));
        let env = run.entry("Env").or_insert_with(|| json!([]));
        if let Some(list) = env.as_array_mut() {
            for (key, value) in [
                ("LAMBDA_TASK_ROOT", "/var/task"),
                ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
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
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(diff_id)),
        None => rootfs["diff_ids"] = json!([diff_id]),
    }
    let history = root.entry("history").or_insert_with(|| json!([]));
    if let Some(list) = history.as_array_mut() {
        list.push(json!({
            "created": created,
            "created_by": format!("cargo-lambda-image: COPY {} /{BOOTSTRAP_PATH}", spec.bin),
            "comment": format!("function {} ({})", spec.name, spec.arch),
        }));
    }
    Ok(config)
}

/// The ENTRYPOINT and CMD of the new image, decided from the base's actual config rather than
/// its name, so a mirrored or locally stored provided.al2 is treated as what it is.
///
/// Configured values win. Otherwise the base's ENTRYPOINT is kept; under provided.*'s
/// `/lambda-entrypoint.sh`, which needs exactly one argument (the handler name, any string)
/// and then execs /var/runtime/bootstrap, CMD becomes `["bootstrap"]`. A base without an
/// ENTRYPOINT (scratch) gets the bootstrap itself.
pub fn entrypoint_and_command(
    spec: &FunctionSpec,
    base_run: &serde_json::Map<String, Value>,
) -> (Vec<String>, Option<Vec<String>>) {
    let base_entrypoint = string_list(base_run.get("Entrypoint"));
    let base_command = string_list(base_run.get("Cmd"));
    let (entrypoint, from_base) = match &spec.image.entrypoint {
        Some(e) => (e.clone(), false),
        None if !base_entrypoint.is_empty() => (base_entrypoint, true),
        None => (vec![format!("/{BOOTSTRAP_PATH}")], false),
    };
    let command = match &spec.image.command {
        Some(c) => Some(c.clone()),
        None if entrypoint.first().map(String::as_str) == Some("/lambda-entrypoint.sh") => {
            Some(vec!["bootstrap".to_string()])
        }
        None if from_base && !base_command.is_empty() => Some(base_command),
        None => None,
    };
    (entrypoint, command.filter(|c| !c.is_empty()))
}

/// The strings of a JSON array in an image config (`Entrypoint`, `Cmd`, `Env`); nothing for a
/// missing or non-array value, and non-string items are skipped.
pub(crate) fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Formats seconds since the epoch as RFC 3339 UTC, to the second (image `created` fields).
pub fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::emulate::format::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Writes the image as a tarball that `docker load` accepts (a `manifest.json` plus the OCI
/// layout, as Docker 25+ writes it, so it is also an OCI archive).
pub fn write_docker_archive(image: &BuiltImage, path: &Path) -> Result<()> {
    let layout = Layout::open(image.layout_dir())?;
    let repo_tag = format!("{}:{}", image.repository, image.tag);
    let blob_name = |digest: &str| -> Result<String> {
        Ok(format!("blobs/sha256/{}", oci::digest_hex(digest)?))
    };
    let manifest_json = json!([{
        "Config": blob_name(&image.config_digest)?,
        "RepoTags": [repo_tag],
        "Layers": image.layers.iter().map(|l| blob_name(&l.digest)).collect::<Result<Vec<_>>>()?,
    }]);
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io("could not create", &tmp, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let io = |e| Error::io("could not write", path, e);
    let mut add = |name: &str, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data).map_err(io)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = std::fs::read(layout.dir.join("index.json"))
        .map_err(|e| Error::io("could not read", &layout.dir, e))?;
    add("index.json", &index)?;
    add("manifest.json", manifest_json.to_string().as_bytes())?;
    let mut digests: Vec<&str> = vec![&image.digest, &image.config_digest];
    digests.extend(image.layers.iter().map(|l| l.digest.as_str()));
    for digest in digests {
        add(&blob_name(digest)?, &layout.read_blob(digest)?)?;
    }
    let writer = tar.into_inner().map_err(io)?;
    writer
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads or pulls a base image for one architecture, whatever its source.
pub async fn resolve_base(
    reference: &str,
    arch: Arch,
    registry: &crate::registry::RegistryOptions,
    progress: &crate::progress::Progress,
) -> Result<ResolvedBase> {
    match base::BaseSource::parse(reference) {
        base::BaseSource::Scratch => Ok(base::scratch(arch)),
        base::BaseSource::Layout { dir, tag } => {
            base::from_layout(&dir, tag.as_deref(), arch, reference)
        }
        base::BaseSource::DockerArchive(file) => {
            base::from_docker_archive(&file, &registry.cache().join("blobs/sha256"), reference)
        }
        base::BaseSource::Registry(r) => {
            crate::registry::pull_base(&r, arch, registry, progress).await
        }
    }
}

/// Assembles the image of every compiled function of a plan (artifacts in plan order, as
/// [`crate::compile::compile`] returns them), resolving each base once per architecture.
pub async fn assemble_all(
    plan: &crate::config::Plan,
    artifacts: &[crate::compile::Artifact],
    options: &ImageOptions,
    registry: &crate::registry::RegistryOptions,
    progress: &crate::progress::Progress,
) -> Result<Vec<BuiltImage>> {
    let mut bases: std::collections::BTreeMap<(String, Arch), ResolvedBase> = Default::default();
    let mut images = Vec::new();
    for (spec, artifact) in plan.functions.iter().zip(artifacts) {
        let key = (spec.base_image.reference.clone(), spec.arch);
        if !bases.contains_key(&key) {
            let base = resolve_base(&key.0, spec.arch, registry, progress).await?;
            bases.insert(key.clone(), base);
        }
        let Some(base) = bases.get(&key) else {
            continue;
        };
        let image = assemble(spec, artifact.path.as_std_path(), base, options)?;
        progress.line(&format!(
            "✓ Image {}:{} ({}) {}",
            image.repository,
            image.tag,
            image.arch,
            crate::registry::short(&image.digest)
        ));
        images.push(image);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
