//! Reproducible layer tarballs, as ko and jib make them: entries sorted, every parent
//! directory present, owner root, one fixed modification time, gzip without a name or time.
//! The same inputs give the same bytes, hence the same digests.
//!
//! Layers stream: files are read from disk as the tar is written, the tar is compressed on
//! every core as it is written ([`super::gzip`]) and the compressed bytes go straight to a
//! file, both digests computed on the way. Memory stays bounded whatever the files' sizes.
//!
//! A [`LayerCache`] keeps finished layers by a fingerprint of their inputs, so a layer whose
//! files did not change is never compressed again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::gzip::ParallelGzip;
use crate::error::{Error, Result};
use crate::oci;

/// Files up to this size are fingerprinted by their contents; larger ones (models, data) by
/// their size, modification time and inode, as cargo and make judge freshness.
const HASHED_FILE_LIMIT: u64 = 64 << 20;

/// A file changed this recently is hashed again next time rather than remembered: a write
/// within the same tick of the filesystem's clock (a jiffy, at most 10 ms) would leave its
/// times as they were, as git's index treats "racily clean" entries.
const SETTLED: std::time::Duration = std::time::Duration::from_millis(100);

/// [`SETTLED`] on a filesystem that keeps whole seconds only (no nanoseconds in the times).
const SETTLED_COARSE: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Bytes in memory (a generated file).
    Bytes(Vec<u8>),
    /// A file on disk, read while the layer is written.
    Path(PathBuf),
}

/// What goes into a layer at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A regular file.
    File {
        /// Permission bits.
        mode: u32,
        /// Its contents.
        source: Source,
    },
}

/// A layer of an image (a base's, or one added on top of it), compressed, on disk.
#[derive(Debug, Clone)]
pub struct BaseLayer {
    /// Its descriptor, with an OCI gzip media type.
    pub descriptor: oci::Descriptor,
    /// The file holding the compressed bytes.
    pub path: PathBuf,
}

/// A layer being put together: relative paths (no leading `/`) to entries.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

/// A finished layer, compressed, in a blob file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// `sha256:` digest of the compressed bytes (the blob digest).
    pub digest: String,
    /// `sha256:` digest of the uncompressed tarball (the config's diff_id).
    pub diff_id: String,
    /// Size of the compressed blob.
    pub size: u64,
    /// Size of the uncompressed tarball.
    pub uncompressed_size: u64,
    /// The blob file.
    pub path: PathBuf,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// Whether the layer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The paths in the layer, in the order they are written.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Adds a file with these contents, and every missing parent directory with mode 0755.
    ///
    /// Paths are relative to the image root; a leading `/` is ignored. Paths with `..` or
    /// empty components are refused, so nothing can be placed outside the root.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<&mut Self> {
        self.insert(
            path,
            Entry::File {
                mode,
                source: Source::Bytes(data),
            },
        )
    }

    /// Adds a file whose contents are read from `source` when the layer is written.
    pub fn file_from(&mut self, path: &str, mode: u32, source: &Path) -> Result<&mut Self> {
        self.insert(
            path,
            Entry::File {
                mode,
                source: Source::Path(source.to_path_buf()),
            },
        )
    }

    /// Adds a directory and its parents.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        self.insert(path, Entry::Dir { mode })
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.parents(&path);
        self.entries.insert(path, entry);
        Ok(self)
    }

    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for component in &components[..components.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            self.entries
                .entry(prefix.clone())
                .or_insert(Entry::Dir { mode: 0o755 });
        }
    }

    /// Writes the tarball into `out`, streaming each file from its source. `mtime` is the time
    /// stamped on every entry. A file that changes size while it is read is an error.
    pub fn write_tar<W: Write>(&self, out: W, mtime: u64) -> Result<W> {
        let mut builder = tar::Builder::new(out);
        // BTreeMap order puts "var" before "var/runtime" before "var/runtime/bootstrap", so
        // every directory precedes what it contains.
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            let io_err = |e| Error::io("could not write the layer entry", path.as_str(), e);
            match entry {
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    header.set_cksum();
                    builder
                        .append_data(&mut header, format!("{path}/"), io::empty())
                        .map_err(io_err)?;
                }
                Entry::File { mode, source } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    append_file(&mut builder, &mut header, path, source)?;
                }
            }
        }
        builder
            .into_inner()
            .map_err(|e| Error::io("could not finish", "layer", e))
    }

    /// The uncompressed tarball in memory (small layers: a Docker build context, tests).
    pub fn tar(&self, mtime: u64) -> Result<Vec<u8>> {
        self.write_tar(Vec::new(), mtime)
    }

    /// The compressed layer in memory and its diff_id (small layers and tests).
    pub fn compress(&self, mtime: u64) -> Result<(Vec<u8>, String)> {
        let gz = ParallelGzip::new(Vec::new(), Compression::default(), threads());
        let gz = self.write_tar(gz, mtime)?;
        let (bytes, finished) = gz
            .finish()
            .map_err(|e| Error::io("could not compress", "layer", e))?;
        Ok((bytes, finished.diff_id))
    }

    /// Writes the compressed layer into `blobs` (a `blobs/sha256` directory), under its
    /// digest: through a temporary file, renamed once complete and hashed, so no partial blob
    /// ever sits under a digest name.
    pub fn build(&self, mtime: u64, blobs: &Path) -> Result<Layer> {
        crate::store::sweep_once(blobs);
        let (staging, file) = crate::store::Staging::file(blobs, "layer")
            .map_err(|e| Error::io("could not create a file in", blobs, e))?;
        // Dropped uncommitted on an error, which removes it.
        self.build_into(mtime, staging, file, blobs)
    }

    fn build_into(
        &self,
        mtime: u64,
        staging: crate::store::Staging,
        file: File,
        blobs: &Path,
    ) -> Result<Layer> {
        let partial = staging.path().to_path_buf();
        let partial = partial.as_path();
        let hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let gz = ParallelGzip::new(hashing, Compression::default(), threads());
        // Entries' errors name the entry; a full disk is the layer file's, so it names that.
        let gz = self.write_tar(gz, mtime).map_err(|e| match e {
            Error::DiskFull { source, .. } => Error::io("could not write", partial, source),
            other => other,
        })?;
        let write_err = |e| Error::io("could not write", partial, e);
        let (hashing, finished) = gz.finish().map_err(write_err)?;
        let (writer, digest, size) = hashing.finish();
        let file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
        file.sync_all().map_err(write_err)?;
        let path = blobs.join(oci::digest_hex(&digest)?);
        staging
            .commit(&path)
            .map_err(|e| Error::io("could not write", &path, e))?;
        Ok(Layer {
            digest,
            diff_id: finished.diff_id,
            size,
            uncompressed_size: finished.size,
            path,
        })
    }

    /// A fingerprint of everything that decides the layer's bytes: every path, kind, mode and
    /// file (its bytes, or for a large file its size, modification time and inode), and the
    /// timestamp. Two builders with the same fingerprint write the same layer.
    ///
    /// With `known`, the content hash of each file is remembered there (by its path, next to
    /// its inode, size and times), so an unchanged bootstrap of tens of megabytes is not read
    /// on every run.
    pub fn fingerprint(&self, mtime: u64, known: Option<&Path>) -> Result<String> {
        let mut sha = Sha256::new();
        // The layer format: bump when the bytes a builder writes change.
        sha.update(format!(
            "layer v2 block {} mtime {mtime}\n",
            super::gzip::BLOCK
        ));
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir { mode } => sha.update(format!("d {mode:o} {path}\n")),
                Entry::File { mode, source } => {
                    sha.update(format!("f {mode:o} {path} "));
                    match source {
                        Source::Bytes(data) => sha.update(Sha256::digest(data)),
                        Source::Path(file) => sha.update(file_identity(file, known)?),
                    }
                    sha.update(b"\n");
                }
            }
        }
        Ok(hex::encode(sha.finalize()))
    }
}

/// Appends one file entry, streamed from its source, refusing one whose size changes.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    path: &str,
    source: &Source,
) -> Result<()> {
    let io_err = |e| Error::io("could not write the layer entry", path, e);
    match source {
        Source::Bytes(data) => {
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder
                .append_data(header, path, data.as_slice())
                .map_err(io_err)
        }
        Source::Path(file) => {
            let read_err = |e| Error::io("could not read the included file", file, e);
            let opened = File::open(file).map_err(read_err)?;
            let size = opened.metadata().map_err(read_err)?.len();
            header.set_size(size);
            header.set_cksum();
            let mut exact = ExactReader {
                inner: opened.take(size),
                read: 0,
            };
            builder
                .append_data(header, path, &mut exact)
                .map_err(io_err)?;
            if exact.read != size {
                return Err(Error::io(
                    "the file changed size while the image was built:",
                    file,
                    io::Error::other(format!("{size} bytes expected, {} read", exact.read)),
                ));
            }
            Ok(())
        }
    }
}

/// Counts what it reads, so a file that shrank while read is noticed.
struct ExactReader<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// What identifies a file's contents in a fingerprint: the SHA-256 of its bytes (remembered
/// under `known`, when given), or for a file over [`HASHED_FILE_LIMIT`] its size, modification
/// time and inode.
fn file_identity(path: &Path, known: Option<&Path>) -> Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let read_err = |e| Error::io("could not read the included file", path, e);
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > HASHED_FILE_LIMIT {
        return Ok(format!(
            "len {} mtime {}.{} dev {} ino {}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.dev(),
            meta.ino()
        )
        .into_bytes());
    }
    // What any change to the file changes: a write moves the change time, which nothing can
    // set back, and replacing the file changes its inode.
    let stat = format!(
        "len {} mtime {}.{} ctime {}.{} dev {} ino {}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.dev(),
        meta.ino()
    );
    // Named by the path's hash, with an extension: in the cache a bare 64-digit name is a
    // blob's, whose bytes hash to it.
    let record = known.map(|dir| {
        let key = Sha256::digest(path.as_os_str().as_encoded_bytes());
        dir.join(format!("{}.hash", hex::encode(key)))
    });
    if let Some(hash) = record.as_deref().and_then(|r| remembered(r, &stat)) {
        return Ok(hash);
    }
    let started = std::time::SystemTime::now();
    let mut sha = Sha256::new();
    let mut file = File::open(path).map_err(read_err)?;
    io::copy(&mut file, &mut sha).map_err(read_err)?;
    let hash = sha.finalize().to_vec();
    let time = |secs: i64, nanos: i64| {
        std::time::UNIX_EPOCH
            + std::time::Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    let changed = time(meta.mtime(), meta.mtime_nsec()).max(time(meta.ctime(), meta.ctime_nsec()));
    let settle = if meta.mtime_nsec() == 0 && meta.ctime_nsec() == 0 {
        SETTLED_COARSE
    } else {
        SETTLED
    };
    let settled = started
        .duration_since(changed)
        .is_ok_and(|age| age >= settle);
    if let (Some(record), true) = (record, settled) {
        crate::registry::keep_cache_file(
            &record,
            format!("{stat}\n{}\n", hex::encode(&hash)).as_bytes(),
        );
    }
    Ok(hash)
}

/// The content hash recorded at `record` for a file whose stat line is `stat`, if it is that.
fn remembered(record: &Path, stat: &str) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(record).ok()?;
    let (recorded, hash) = text.split_once('\n')?;
    let hash = hex::decode(hash.trim()).ok()?;
    (recorded == stat && hash.len() == 32).then_some(hash)
}

/// Hashes and counts what it writes.
pub struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Writes through to `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            sha: Sha256::new(),
            size: 0,
        }
    }

    /// The writer, the `sha256:` digest and the size of what went through.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.sha.finalize()));
        (self.inner, digest, self.size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Stores a layer read from `source` in `blobs` (a `blobs/sha256` directory) as a gzip blob:
/// a gzip stream as it is, anything else (an uncompressed tar, as `docker save` writes) gzipped
/// on the way. Streamed, hashed as it goes, renamed into place once complete. Returns the
/// stored layer and its diff_id (the digest of its uncompressed bytes), for checking against
/// the image config.
pub fn store_layer(mut source: impl Read, blobs: &Path) -> Result<(BaseLayer, String)> {
    crate::store::sweep_once(blobs);
    let (staging, file) = crate::store::Staging::file(blobs, "layer")
        .map_err(|e| Error::io("could not create a file in", blobs, e))?;
    let partial = staging.path().to_path_buf();
    let write_err = |e| Error::io("could not write", &partial, e);
    let read_err = |e| Error::io("could not read", "the layer", e);
    let mut magic = [0u8; 2];
    let mut have = 0;
    while have < 2 {
        match source.read(&mut magic[have..]).map_err(read_err)? {
            0 => break,
            n => have += n,
        }
    }
    let head: &[u8] = &magic[..have];
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let copied = if magic[..have] == [0x1f, 0x8b] {
        io::copy(&mut head.chain(source), &mut out).map(|_| (out, None))
    } else {
        let mut gz = ParallelGzip::new(out, Compression::default(), threads());
        io::copy(&mut head.chain(source), &mut gz)
            .and_then(|_| gz.finish())
            .map(|(out, finished)| (out, Some(finished.diff_id)))
    };
    let (stored, diff_id) = copied.map_err(read_err)?;
    let (writer, digest, size) = stored.finish();
    let file = writer.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    let path = blobs.join(oci::digest_hex(&digest)?);
    staging
        .commit(&path)
        .map_err(|e| Error::io("could not write", &path, e))?;
    let diff_id = match diff_id {
        Some(diff_id) => diff_id,
        None => gunzipped_digest(&path)?,
    };
    let layer = BaseLayer {
        descriptor: oci::Descriptor::new(oci::MEDIA_OCI_LAYER_GZIP, &digest, size),
        path,
    };
    Ok((layer, diff_id))
}

/// The digest of a gzip file's uncompressed bytes.
fn gunzipped_digest(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io("could not open", path, e))?;
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut sink)
        .map_err(|e| Error::io("could not decompress", path, e))?;
    Ok(sink.finish().1)
}

/// Layers by the fingerprint of their inputs, with their blobs in the blob cache: a layer
/// whose inputs did not change is taken from here instead of being compressed again.
#[derive(Debug, Clone)]
pub struct LayerCache {
    blobs: PathBuf,
    records: PathBuf,
    /// The content hashes of input files, by path (see [`LayerBuilder::fingerprint`]).
    hashes: PathBuf,
}

impl LayerCache {
    /// The cache under `dir` (blobs in `dir/blobs/sha256`, records in `dir/layers`, the
    /// hashes of input files in `dir/file-hashes`).
    pub fn new(dir: &Path) -> LayerCache {
        LayerCache {
            blobs: dir.join("blobs/sha256"),
            records: dir.join("layers"),
            hashes: dir.join("file-hashes"),
        }
    }

    /// The recorded layer of `builder`'s inputs, if there is one and its blob is intact.
    pub fn lookup(&self, builder: &LayerBuilder, mtime: u64) -> Result<Option<Layer>> {
        Ok(recorded(&self.record(builder, mtime)?))
    }

    fn record(&self, builder: &LayerBuilder, mtime: u64) -> Result<PathBuf> {
        let fingerprint = builder.fingerprint(mtime, Some(&self.hashes))?;
        Ok(self.records.join(format!("{fingerprint}.json")))
    }

    /// The layer `builder` makes, from the cache when its inputs are unchanged, else built
    /// (into the blob cache) and recorded.
    pub fn get_or_build(&self, builder: &LayerBuilder, mtime: u64) -> Result<Layer> {
        let record = self.record(builder, mtime)?;
        if let Some(layer) = recorded(&record) {
            return Ok(layer);
        }
        let layer = builder.build(mtime, &self.blobs)?;
        std::fs::create_dir_all(&self.records)
            .map_err(|e| Error::io("could not create", &self.records, e))?;
        let data = serde_json::to_vec(&layer)
            .map_err(|e| Error::io("could not write", &record, io::Error::other(e)))?;
        oci::write_atomic(&record, &data)?;
        Ok(layer)
    }
}

/// The layer recorded at `record`, if there is one and its blob is intact.
fn recorded(record: &Path) -> Option<Layer> {
    std::fs::read(record)
        .ok()
        .and_then(|data| serde_json::from_slice::<Layer>(&data).ok())
        .filter(|l| std::fs::metadata(&l.path).is_ok_and(|m| m.len() == l.size))
}

/// How many threads compress a layer: every core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn normalize(path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let ok = !trimmed.is_empty()
        && trimmed
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(Error::InvalidPath {
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(compressed: &[u8]) -> Vec<(String, u32, u64, u64, u64)> {
        let mut out = Vec::new();
        let gz = flate2::read::GzDecoder::new(compressed);
        let mut archive = tar::Archive::new(gz);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            out.push((
                entry.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
            ));
        }
        out
    }

    /// A file's hash is remembered once it has settled, and a change of its bytes is seen
    /// even with its size and modification time put back (the change time moves).
    #[test]
    fn remembered_hashes_are_used_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let known = dir.path().join("known");
        let file = dir.path().join("bootstrap");
        std::fs::write(&file, b"first version").unwrap();
        let mut b = LayerBuilder::new();
        b.file_from("var/runtime/bootstrap", 0o755, &file).unwrap();
        let fresh = b.fingerprint(1, Some(&known)).unwrap();
        assert_eq!(
            std::fs::read_dir(&known).map_or(0, |d| d.count()),
            0,
            "a file changed a moment ago is not remembered"
        );

        std::thread::sleep(SETTLED_COARSE);
        assert_eq!(b.fingerprint(1, Some(&known)).unwrap(), fresh);
        let records: Vec<PathBuf> = std::fs::read_dir(&known)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(records.len(), 1);
        // The remembered hash is what is used: a record naming other bytes changes the
        // fingerprint, so the file was not read again.
        let text = std::fs::read_to_string(&records[0]).unwrap();
        let (stat, _) = text.split_once('\n').unwrap();
        std::fs::write(&records[0], format!("{stat}\n{}\n", "ab".repeat(32))).unwrap();
        assert_ne!(b.fingerprint(1, Some(&known)).unwrap(), fresh);

        // Same size, same modification time, other bytes: the change time gives it away.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, b"other version").unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
        let changed = b.fingerprint(1, Some(&known)).unwrap();
        assert_ne!(changed, fresh);
        assert_eq!(changed, b.fingerprint(1, None).unwrap());
    }

    #[test]
    fn parents_come_first_with_root_owner_and_fixed_time() {
        let mut b = LayerBuilder::new();
        b.file("/var/runtime/bootstrap", 0o755, b"elf".to_vec())
            .unwrap();
        b.file("var/task/data/x.json", 0o644, b"{}".to_vec())
            .unwrap();
        let (compressed, _) = b.compress(1_700_000_000).unwrap();
        let got = entries(&compressed);
        let paths: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "var/",
                "var/runtime/",
                "var/runtime/bootstrap",
                "var/task/",
                "var/task/data/",
                "var/task/data/x.json"
            ]
        );
        assert!(got
            .iter()
            .all(|e| e.2 == 0 && e.3 == 0 && e.4 == 1_700_000_000));
        assert_eq!(got[2].1, 0o755);
        assert_eq!(got[5].1, 0o644);
    }

    #[test]
    fn same_inputs_give_the_same_digests_from_memory_or_disk() {
        let dir = tempfile::tempdir().unwrap();
        let make = |order: &[&str]| {
            let mut b = LayerBuilder::new();
            for p in order {
                b.file(p, 0o644, p.as_bytes().to_vec()).unwrap();
            }
            b.build(0, &dir.path().join("blobs")).unwrap()
        };
        let a = make(&["a/x", "b/y", "a/z"]);
        let b = make(&["b/y", "a/z", "a/x"]);
        assert_eq!((&a.digest, &a.diff_id), (&b.digest, &b.diff_id));
        assert_ne!(a.digest, make(&["a/x", "b/y"]).digest);
        // The same file read from disk gives the same layer as from memory.
        std::fs::write(dir.path().join("y"), b"b/y").unwrap();
        let mut from_disk = LayerBuilder::new();
        from_disk.file("a/x", 0o644, b"a/x".to_vec()).unwrap();
        from_disk
            .file_from("b/y", 0o644, &dir.path().join("y"))
            .unwrap();
        from_disk.file("a/z", 0o644, b"a/z".to_vec()).unwrap();
        let c = from_disk.build(0, &dir.path().join("blobs")).unwrap();
        assert_eq!(c.digest, a.digest);
        assert_eq!(std::fs::read(&c.path).unwrap().len() as u64, c.size);
        assert_eq!(
            oci::sha256_digest(&std::fs::read(&c.path).unwrap()),
            c.digest
        );
    }

    #[test]
    fn diff_id_is_the_digest_of_the_uncompressed_tar() {
        let mut b = LayerBuilder::new();
        b.file("f", 0o644, vec![1, 2, 3]).unwrap();
        let (compressed, diff_id) = b.compress(0).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(oci::sha256_digest(&tar), diff_id);
        assert_eq!(tar, b.tar(0).unwrap());
    }

    #[test]
    fn escaping_paths_are_refused() {
        let mut b = LayerBuilder::new();
        assert!(b.file("../etc/passwd", 0o644, vec![]).is_err());
        assert!(b.file("var/../../x", 0o644, vec![]).is_err());
        assert!(b.file("/", 0o644, vec![]).is_err());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it_and_leaves_no_partial_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = LayerBuilder::new();
        b.file_from("var/task/model.bin", 0o644, &dir.path().join("gone.bin"))
            .unwrap();
        let err = b
            .build(0, &dir.path().join("blobs"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone.bin"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_cache_builds_once_and_notices_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(&dir.path().join("cache"));
        let file = dir.path().join("data.json");
        std::fs::write(&file, b"{\"a\":1}").unwrap();
        let mut b = LayerBuilder::new();
        b.file_from("var/task/data.json", 0o644, &file).unwrap();
        assert_eq!(cache.lookup(&b, 0).unwrap(), None);
        let first = cache.get_or_build(&b, 0).unwrap();
        assert_eq!(cache.lookup(&b, 0).unwrap(), Some(first.clone()));
        assert_eq!(cache.get_or_build(&b, 0).unwrap(), first);
        // Another timestamp is another layer.
        assert_eq!(cache.lookup(&b, 1).unwrap(), None);
        std::fs::write(&file, b"{\"a\":2}").unwrap();
        assert_eq!(cache.lookup(&b, 0).unwrap(), None);
        let changed = cache.get_or_build(&b, 0).unwrap();
        assert_ne!(changed.digest, first.digest);
        // A record whose blob is gone is rebuilt, not trusted.
        std::fs::remove_file(&changed.path).unwrap();
        let rebuilt = cache.get_or_build(&b, 0).unwrap();
        assert_eq!(rebuilt.digest, changed.digest);
        assert!(rebuilt.path.is_file());
    }
}
