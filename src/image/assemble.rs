//! The daemonless builder: the function's files go into one reproducible gzip layer on top of
//! the base's layers; the config keeps the base's ENV and ENTRYPOINT and sets CMD, WORKDIR,
//! labels, platform and history. Nothing here needs a Docker engine.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::lambda::{self, BOOTSTRAP_PATH, TASK_ROOT};
use crate::oci::{self, Descriptor, ImageConfig, Index, Layout, Manifest};
use crate::progress::Reporter;
use crate::registry::RegistryOptions;
use crate::target::Arch;

use super::base::{BaseCache, BaseLayer, ResolvedBase};
use super::layer::{self, LayerBuilder};
use super::{entrypoint_and_command, layout_dir, Builder, BuiltImage, ImageOptions};

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
    stored_layers: &[BaseLayer],
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
