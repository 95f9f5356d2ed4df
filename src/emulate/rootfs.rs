//! Unpacking an image (an OCI layout) into a root filesystem directory, for the runners that
//! run its function without a container engine.
//!
//! Entry paths are read as container runtimes read them ([`oci::entry`]): a leading `/` or
//! `./` is dropped, `..` is resolved lexically, and an entry for the root directory itself sets
//! the root's mode. A truncated end of the archive (umoci's layers) is accepted.
//!
//! Layers are untrusted input: an entry that could write outside the destination, or turn it
//! into something other than a plain tree of files, is refused with [`Error::UnsafeLayer`]
//! (naming the layer and the entry) instead of being skipped. Refused are
//!
//! - paths (of entries and hard-link targets) whose `..` components would leave the root;
//! - a root entry that is not a directory, and data cut short by the end of the layer;
//! - entries whose path goes through a symlink: parents are checked with `symlink_metadata`
//!   and symlinks are never followed while writing;
//! - symlinks whose target would leave the root filesystem (an absolute target is resolved
//!   against the root filesystem, as it will be inside the sandbox);
//! - hard links to something not extracted yet, or not a regular file;
//! - device nodes, FIFOs and sparse files.
//!
//! Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied. File modes are kept, exec bits
//! included, except set-uid and set-gid bits, which are dropped: the function runs as a
//! non-root user, as on Lambda, and the files stay owned by whoever unpacked them.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::entry::{entry_path, LayerTar};
use crate::oci::{self, ImageConfig, Layout, Manifest};
use crate::store::{Held, Lease, Staging};
use crate::target::Arch;

/// What a runner needs to run an unpacked image: its root filesystem and the parts of its
/// config that Lambda honours (ENTRYPOINT, CMD, ENV, WORKDIR) and its architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRuntime {
    /// The unpacked root filesystem.
    pub rootfs: PathBuf,
    /// The image's ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// The image's CMD.
    pub cmd: Vec<String>,
    /// The image's ENV, in order.
    pub env: Vec<(String, String)>,
    /// The image's WORKDIR (`/` when unset).
    pub workdir: String,
    /// The image's architecture.
    pub arch: Arch,
    /// What keeps `rootfs` from being removed while runtimes may start from it: a lease on a
    /// shared tree, or the private tree itself.
    pub hold: Held,
}

impl ImageRuntime {
    /// ENTRYPOINT followed by CMD: the command Lambda runs.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint
            .iter()
            .chain(self.cmd.iter())
            .cloned()
            .collect()
    }
}

/// The root filesystem of the image of the OCI layout `layout_dir`, unpacked under `trees`
/// (one directory per image and unpacker), shared by every process that runs that image: the
/// sandbox mounts it read-only, so an image that did not change is not unpacked again. The
/// runtime returned holds a lease on its tree; trees of other images that no process holds are
/// removed, and so are trees left half-unpacked by a process that was killed.
pub fn unpack_reusing(layout_dir: &Path, trees: &Path) -> Result<ImageRuntime> {
    let index = layout_dir.join("index.json");
    let identity = fs::read(&index)
        .map(|bytes| format!("{UNPACKER}\n{}", oci::sha256_digest(&bytes)))
        .map_err(|e| Error::io("could not read", &index, e))?;
    let name = oci::sha256_digest(identity.as_bytes()).replace("sha256:", "tree-");
    let dest = trees.join(&name);
    crate::store::sweep(trees, &|entry| entry.to_str() != Some(name.as_str()));
    for _ in 0..3 {
        if let Some(lease) =
            Lease::take(&dest).map_err(|e| Error::io("could not lock", &dest, e))?
        {
            let layout = Layout::open(layout_dir)?;
            let config = layout.read_config(&layout.single_manifest()?)?;
            let root = dest
                .canonicalize()
                .map_err(|e| Error::io("could not resolve", &dest, e))?;
            let runtime = runtime_from_config(layout_dir, &config, &root)?;
            return Ok(ImageRuntime {
                hold: Held::new(lease),
                ..runtime
            });
        }
        let staging = Staging::dir(trees, "tree")
            .map_err(|e| Error::io("could not create a directory in", trees, e))?;
        unpack_into(layout_dir, staging.path())?;
        // Another process may have unpacked the same image meanwhile: either tree will do, and
        // the next turn of the loop leases whichever is there.
        staging
            .commit_dir(&dest)
            .map_err(|e| Error::io("could not write", &dest, e))?;
    }
    Err(Error::io(
        "could not keep",
        &dest,
        io::Error::other("another process keeps removing it"),
    ))
}

/// Names the unpacker's behaviour in [`unpack_reusing`]'s tree names: change it when unpacking
/// changes, so older unpacked trees are not reused.
const UNPACKER: &str = "rootfs v2";

/// Unpacks the single image of the OCI layout `layout_dir` into a new tree of this process's
/// own under `trees`, removed when the runtime returned (and its clones) are dropped: for a
/// runner whose root filesystem is writable.
pub fn unpack_private(layout_dir: &Path, trees: &Path) -> Result<ImageRuntime> {
    crate::store::sweep_once(trees);
    let staging = Staging::dir(trees, "private")
        .map_err(|e| Error::io("could not create a directory in", trees, e))?;
    let runtime = unpack_into(layout_dir, staging.path())?;
    Ok(ImageRuntime {
        hold: Held::new(staging),
        ..runtime
    })
}

/// Unpacks the single image of the OCI layout `layout_dir` into `dest` (replaced if there)
/// and returns how to run it.
pub fn unpack(layout_dir: &Path, dest: &Path) -> Result<ImageRuntime> {
    remove_path(dest)?;
    fs::create_dir_all(dest).map_err(|e| Error::io("could not create", dest, e))?;
    unpack_into(layout_dir, dest).inspect_err(|_| {
        // Nothing of a tree that could not be unpacked stays behind.
        let _ = remove_path(dest);
    })
}

/// Unpacks the single image of the OCI layout `layout_dir` into the empty directory `dest`.
fn unpack_into(layout_dir: &Path, dest: &Path) -> Result<ImageRuntime> {
    let layout = Layout::open(layout_dir)?;
    let manifest = layout.single_manifest()?;
    let config = layout.read_config(&manifest)?;
    // Never follow a symlink that `dest` itself may be reached through: work on its real path.
    let root = dest
        .canonicalize()
        .map_err(|e| Error::io("could not resolve", dest, e))?;
    fill(&layout, layout_dir, &manifest, &root)?;
    runtime_from_config(layout_dir, &config, &root)
}

/// Applies the layers of `manifest` to the empty tree `root`.
fn fill(layout: &Layout, layout_dir: &Path, manifest: &Manifest, root: &Path) -> Result<()> {
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for layer in &manifest.layers {
        // Checked whole before a byte of it is unpacked, then streamed: layers can be
        // gigabytes, and a layer that is not what its digest says is never unpacked.
        layout.open_blob(&layer.digest)?.verify()?;
        let blob = layout.open_blob(&layer.digest)?;
        let reader: Box<dyn Read> = if oci::is_gzip_layer(&layer.media_type) {
            Box::new(flate2::read::GzDecoder::new(blob))
        } else if layer.media_type == oci::MEDIA_OCI_LAYER_TAR
            || layer.media_type == oci::MEDIA_DOCKER_LAYER_TAR
        {
            Box::new(blob)
        } else {
            return Err(Error::InvalidImage {
                image: layout_dir.display().to_string(),
                message: format!(
                    "layer {} has media type {}, which cannot be unpacked",
                    layer.digest, layer.media_type
                ),
                help: "only gzip and uncompressed tar layers are supported".into(),
            });
        };
        apply_layer(root, &layer.digest, reader, &mut dir_modes)?;
    }
    // Directory modes last (deepest first), so that a read-only directory could still be
    // filled by later entries and layers.
    dir_modes.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode) in dir_modes {
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("could not set the mode of", &path, e))?;
        }
    }
    Ok(())
}

/// Removes a file, symlink or directory tree, if there is one.
fn remove_path(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| Error::io("could not remove", path, e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io("could not remove", path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("could not inspect", path, e)),
    }
}

fn runtime_from_config(
    layout_dir: &Path,
    config: &ImageConfig,
    dest: &Path,
) -> Result<ImageRuntime> {
    let arch: Arch = config
        .architecture
        .parse()
        .map_err(|message| Error::InvalidImage {
            image: layout_dir.display().to_string(),
            message,
            help: "Lambda runs linux/amd64 and linux/arm64 images".into(),
        })?;
    let run = &config.run;
    Ok(ImageRuntime {
        rootfs: dest.to_path_buf(),
        entrypoint: run.entrypoint.clone(),
        cmd: run.cmd.clone(),
        env: run.env_pairs(),
        workdir: if run.working_dir.is_empty() {
            "/".to_string()
        } else {
            run.working_dir.clone()
        },
        arch,
        hold: Held::none(),
    })
}

/// Applies one layer's entries under `root`.
fn apply_layer(
    root: &Path,
    digest: &str,
    reader: impl Read,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> Result<()> {
    let mut archive = tar::Archive::new(LayerTar::new(reader));
    let read_error = |e: io::Error| Error::InvalidImage {
        image: digest.to_string(),
        message: format!("could not read the layer: {e}"),
        help: "the layer is not a valid (gzip) tar archive".into(),
    };
    // What this layer wrote, so that its own opaque whiteouts do not remove it.
    let mut written: HashSet<PathBuf> = HashSet::new();
    // Where the last entry's data ends, and the entry.
    let mut data_end = (0, String::new());
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let raw_path = entry.path().map_err(read_error)?.into_owned();
        let shown = raw_path.display().to_string();
        let unsafe_entry = |message: String| Error::UnsafeLayer {
            layer: digest.to_string(),
            entry: shown.clone(),
            message,
        };
        let size = entry.header().entry_size().map_err(read_error)?;
        data_end = (entry.raw_file_position() + size, shown.clone());
        let parts = entry_path(&raw_path).map_err(|m| unsafe_entry(m.to_string()))?;
        let Some((name, parents)) = parts.split_last() else {
            root_entry(root, &entry, dir_modes).map_err(unsafe_entry)?;
            continue;
        };
        let parent = ensure_parents(root, parents).map_err(unsafe_entry)?;
        let target = parent.join(name);

        // Whiteouts.
        if name == ".wh..wh..opq" {
            clear_dir(&parent, &written)
                .map_err(|e| unsafe_entry(format!("could not apply the whiteout: {e}")))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_entry("malformed whiteout".into()));
            }
            remove_any(&parent.join(hidden))
                .map_err(|e| unsafe_entry(format!("could not apply the whiteout: {e}")))?;
            continue;
        }

        if write_entry(
            root,
            &mut entry,
            &target,
            parents,
            dir_modes,
            &unsafe_entry,
            &read_error,
        )? {
            written.insert(target);
        }
    }
    let (end, last) = data_end;
    if !archive.into_inner().holds(end) {
        return Err(Error::UnsafeLayer {
            layer: digest.to_string(),
            entry: last,
            message: "the layer ends in the middle of its data".into(),
        });
    }
    Ok(())
}

/// The entry of the root directory itself (`/`, `./`): its mode becomes the root's, as
/// container runtimes apply it. Anything but a directory there is refused.
fn root_entry<R: Read>(
    root: &Path,
    entry: &tar::Entry<R>,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> std::result::Result<(), String> {
    let header = entry.header();
    if header.entry_type() != tar::EntryType::Directory {
        return Err("the root of the image can only be a directory".into());
    }
    let mode = header.mode().map_err(|e| e.to_string())? & 0o1777;
    dir_modes.retain(|(p, _)| p != root);
    dir_modes.push((root.to_path_buf(), mode));
    Ok(())
}

/// Writes one entry of a layer at `target` (its parents made already): a directory (its mode
/// set at the end, in `dir_modes`), a file, a symlink or a hard link that stays inside the
/// root. Returns whether something was written; devices and other special files are refused.
fn write_entry<R: Read>(
    root: &Path,
    entry: &mut tar::Entry<R>,
    target: &Path,
    parents: &[String],
    dir_modes: &mut Vec<(PathBuf, u32)>,
    unsafe_entry: &dyn Fn(String) -> Error,
    read_error: &dyn Fn(io::Error) -> Error,
) -> Result<bool> {
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(read_error)? & 0o1777;
    let existing = fs::symlink_metadata(target).ok();
    match kind {
        tar::EntryType::Directory => {
            match existing {
                Some(meta) if meta.is_dir() => {}
                Some(_) => {
                    remove_any(target).map_err(|e| unsafe_entry(e.to_string()))?;
                    create_dir(target).map_err(|e| unsafe_entry(e.to_string()))?;
                }
                None => create_dir(target).map_err(|e| unsafe_entry(e.to_string()))?,
            }
            dir_modes.retain(|(p, _)| p != target);
            dir_modes.push((target.to_path_buf(), mode));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            if existing.is_some() {
                remove_any(target).map_err(|e| unsafe_entry(e.to_string()))?;
            }
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(target)
                .map_err(|e| unsafe_entry(format!("could not create it: {e}")))?;
            io::copy(entry, &mut file).map_err(read_error)?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("could not set the mode of", target, e))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(read_error)?
                .ok_or_else(|| unsafe_entry("a symlink without a target".into()))?
                .into_owned();
            check_symlink_target(parents, &link).map_err(unsafe_entry)?;
            if existing.is_some() {
                remove_any(target).map_err(|e| unsafe_entry(e.to_string()))?;
            }
            std::os::unix::fs::symlink(&link, target)
                .map_err(|e| unsafe_entry(format!("could not create the symlink: {e}")))?;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(read_error)?
                .ok_or_else(|| unsafe_entry("a hard link without a target".into()))?
                .into_owned();
            let link_parts =
                entry_path(&link).map_err(|m| unsafe_entry(format!("hard link target: {m}")))?;
            let source = existing_file(root, &link_parts)
                .map_err(|m| unsafe_entry(format!("hard link to `{}`: {m}", link.display())))?;
            if source == target {
                return Ok(false);
            }
            if existing.is_some() {
                remove_any(target).map_err(|e| unsafe_entry(e.to_string()))?;
            }
            fs::hard_link(&source, target)
                .map_err(|e| unsafe_entry(format!("could not create the hard link: {e}")))?;
        }
        tar::EntryType::Char => return Err(unsafe_entry("a character device".into())),
        tar::EntryType::Block => return Err(unsafe_entry("a block device".into())),
        tar::EntryType::Fifo => return Err(unsafe_entry("a FIFO".into())),
        tar::EntryType::GNUSparse => {
            return Err(unsafe_entry("a sparse file (not supported)".into()))
        }
        // Metadata entries the tar crate applies itself, or that carry nothing to write.
        tar::EntryType::XGlobalHeader
        | tar::EntryType::XHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => return Ok(false),
        other => {
            return Err(unsafe_entry(format!(
                "an entry of unsupported type {:?}",
                other
            )))
        }
    }
    Ok(true)
}

/// Makes sure each parent directory exists under `root` as a real directory (creating missing
/// ones), never going through a symlink; returns the deepest.
fn ensure_parents(root: &Path, parents: &[String]) -> std::result::Result<PathBuf, String> {
    let mut dir = root.to_path_buf();
    for (i, name) in parents.iter().enumerate() {
        dir.push(name);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "its path goes through the symlink `{}`",
                    parents[..=i].join("/")
                ))
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "its parent `{}` is not a directory",
                    parents[..=i].join("/")
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(&dir).map_err(|e| format!("could not create its parent: {e}"))?
            }
            Err(e) => return Err(format!("could not inspect its parent: {e}")),
        }
    }
    Ok(dir)
}

/// An already extracted regular file under `root`, reached without symlinks.
fn existing_file(root: &Path, parts: &[String]) -> std::result::Result<PathBuf, String> {
    let Some((name, parents)) = parts.split_last() else {
        return Err("it is the root directory".into());
    };
    let mut path = root.to_path_buf();
    for (i, dir) in parents.iter().enumerate() {
        path.push(dir);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "its path goes through the symlink `{}`",
                    parents[..=i].join("/")
                ))
            }
            _ => return Err("it is not extracted (yet)".into()),
        }
    }
    path.push(name);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err("it is not a regular file".into()),
        Err(_) => Err("it is not extracted (yet)".into()),
    }
}

/// Refuses a symlink (at `parents/NAME`) whose target, resolved lexically, would leave the
/// root: an absolute target starts at the root, a relative one at the link's directory.
fn check_symlink_target(parents: &[String], target: &Path) -> std::result::Result<(), String> {
    let from: PathBuf = parents.iter().collect();
    entry_path(&from.join(target))
        .map(|_| ())
        .map_err(|m| format!("the symlink's target `{}`: {m}", target.display()))
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(path)
}

/// Removes a file, symlink (not what it points to) or directory tree; missing is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An opaque whiteout: removes what lower layers put in `dir`, keeping this layer's entries.
fn clear_dir(dir: &Path, keep: &HashSet<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if !keep.contains(&path) {
            remove_any(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_are_resolved_inside_the_root() {
        let parents = vec!["usr".to_string(), "bin".to_string()];
        assert!(check_symlink_target(&parents, Path::new("../lib/x")).is_ok());
        assert!(check_symlink_target(&parents, Path::new("../../etc/passwd")).is_ok());
        assert!(check_symlink_target(&parents, Path::new("../../../etc/passwd")).is_err());
        assert!(check_symlink_target(&parents, Path::new("/etc/passwd")).is_ok());
        assert!(check_symlink_target(&parents, Path::new("/../etc/passwd")).is_err());
        assert!(check_symlink_target(&[], Path::new("a/../../b")).is_err());
    }
}
