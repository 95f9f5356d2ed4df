//! Stage 4: check an image against what Lambda accepts, before anything is pushed.
//!
//! Each rule has a name, a verdict and, when it fails, a fix. The image is read back from its
//! OCI layout (not from what the image stage meant to write), including every layer's tar
//! entries (read as container runtimes read them, [`oci::entry`]), so images from elsewhere can
//! be checked too. Besides failures, a verdict can be a note ([`Severity::Note`]): something
//! that works, but not as a container engine would run it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compile::elf;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::oci::entry::{entry_path, LayerTar};
use crate::oci::{self, ImageConfig, Layout, Manifest, RunConfig};
use crate::target::{Arch, GlibcVersion};

/// What the image must be.
#[derive(Debug, Clone, Serialize)]
pub struct Expectations {
    /// The function (for messages).
    pub function: String,
    /// The architecture it is deployed with.
    pub arch: Arch,
    /// The newest glibc the base provides, where known.
    pub base_glibc: Option<GlibcVersion>,
}

impl Expectations {
    /// What a planned function's image must be.
    pub fn for_spec(spec: &FunctionSpec) -> Expectations {
        Expectations {
            function: spec.name.clone(),
            arch: spec.arch,
            base_glibc: spec.base_image.glibc,
        }
    }
}

/// How much a verdict weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The image passes the rule.
    Pass,
    /// The image passes, but Lambda will not run it as a container engine would (it ignores a
    /// setting, say): worth knowing, never a failure.
    Note,
    /// Lambda refuses the image, or cannot run its function.
    Fail,
}

/// The verdict on one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's name.
    pub rule: &'static str,
    /// Whether the image passes it (a note passes).
    pub passed: bool,
    /// Pass, note or fail.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// How to fix it (empty when passed without a note).
    pub help: String,
}

/// All verdicts for one image.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The function.
    pub function: String,
    /// The architecture.
    pub arch: Arch,
    /// The manifest digest checked.
    pub digest: Option<String>,
    /// Every rule, in order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether every rule passed.
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.passed)
    }

    /// The first failure as an error, if any.
    pub fn into_result(self) -> Result<Report> {
        match self.findings.iter().find(|f| !f.passed) {
            Some(f) => Err(Error::CheckFailed {
                function: self.function.clone(),
                arch: self.arch.to_string(),
                rule: f.rule.to_string(),
                message: f.message.clone(),
                help: f.help.clone(),
            }),
            None => Ok(self),
        }
    }
}

/// A path in the image's final filesystem.
#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    mode: u32,
    layer: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    Other,
}

/// What one layer does to the filesystem, in order: everything the rules need of it, so
/// that a layer already read is not read again (see [`check_layout_cached`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerFacts {
    ops: Vec<Op>,
    /// Uncompressed size.
    size: u64,
    /// Entries whose parent directory the layer lacks.
    missing: Vec<String>,
}

/// One entry of a layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    /// `.wh..wh..opq`: the directory's lower contents are gone.
    Opaque(String),
    /// `.wh.NAME`: the path (and what is under it) is gone.
    Whiteout(String),
    /// A file, directory, link or other entry.
    Put(String, Kind, u32),
}

/// What the executable's bytes say, as the `elf-arch` and `glibc` rules need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Executable {
    Elf(elf::ElfInfo),
    /// Not ELF: a script, with its `#!` interpreter (`None` without a `#!` line).
    Script(Option<String>),
    Unparsable(String),
    Unreadable,
}

/// Facts of layers by digest, under the cache directory: a layer's facts depend only on its
/// bytes, and its digest names those.
struct FactCache {
    dir: Option<std::path::PathBuf>,
}

/// Names what the facts hold: change it when they change, so that facts an older version
/// recorded are not read.
const FACTS: &str = "facts v2";

impl FactCache {
    fn path(&self, key: &str) -> Option<std::path::PathBuf> {
        let hex = oci::sha256_digest(format!("{FACTS} {key}").as_bytes());
        Some(self.dir.as_ref()?.join(format!("{}.json", &hex[7..])))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_slice(&std::fs::read(self.path(key)?).ok()?).ok()
    }

    /// Records facts; a cache that cannot be written only costs reading the layer again.
    fn put<T: Serialize>(&self, key: &str, facts: &T) {
        if let (Some(path), Ok(data)) = (self.path(key), serde_json::to_vec(facts)) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = oci::write_atomic(&path, &data);
        }
    }
}

struct Collector {
    findings: Vec<Finding>,
}

impl Collector {
    fn pass(&mut self, rule: &'static str, message: impl Into<String>) {
        self.push(rule, Severity::Pass, message.into(), String::new());
    }
    fn note(&mut self, rule: &'static str, message: impl Into<String>, help: impl Into<String>) {
        self.push(rule, Severity::Note, message.into(), help.into());
    }
    fn fail(&mut self, rule: &'static str, message: impl Into<String>, help: impl Into<String>) {
        self.push(rule, Severity::Fail, message.into(), help.into());
    }
    fn push(&mut self, rule: &'static str, severity: Severity, message: String, help: String) {
        self.findings.push(Finding {
            rule,
            passed: severity != Severity::Fail,
            severity,
            message,
            help,
        });
    }
}

/// Checks the image in an OCI layout directory. Unreadable or malformed images are errors;
/// rule violations are findings in the report.
pub fn check_layout(dir: &Path, expect: &Expectations) -> Result<Report> {
    check_layout_with_limit(dir, expect, crate::lambda::MAX_IMAGE_UNCOMPRESSED)
}

/// [`check_layout`], keeping what each layer holds under `cache` (by the layer's digest), so
/// that layers checked before (a base, unchanged includes) are not read again. The layout's
/// blobs are trusted to be what their names say: they were written, and hashed, by the image
/// stage.
pub fn check_layout_cached(dir: &Path, expect: &Expectations, cache: &Path) -> Result<Report> {
    let facts = FactCache {
        dir: Some(cache.join("check")),
    };
    check_with(dir, expect, crate::lambda::MAX_IMAGE_UNCOMPRESSED, &facts)
}

/// [`check_layout`] with another size limit (for tests of the rule without 10 GB of data).
pub fn check_layout_with_limit(
    dir: &Path,
    expect: &Expectations,
    max_uncompressed: u64,
) -> Result<Report> {
    check_with(dir, expect, max_uncompressed, &FactCache { dir: None })
}

fn check_with(
    dir: &Path,
    expect: &Expectations,
    max_uncompressed: u64,
    facts: &FactCache,
) -> Result<Report> {
    let layout = Layout::open(dir)?;
    let mut c = Collector {
        findings: Vec::new(),
    };
    let report = |c: Collector, digest: Option<String>| Report {
        function: expect.function.clone(),
        arch: expect.arch,
        digest,
        findings: c.findings,
    };
    let entry = match single_manifest(&layout, &mut c)? {
        Ok(entry) => entry,
        // An index, or several images: nothing else can be judged.
        Err(digest) => return Ok(report(c, digest)),
    };
    let manifest = layout.read_manifest(&entry.digest)?;
    let config = layout.read_config(&manifest)?;
    platform(&config, expect, &mut c);
    compressed_layers(&manifest, &mut c);
    let fs = filesystem(&layout, &manifest, max_uncompressed, facts, &mut c)?;
    directory_modes(&fs, &mut c);
    let program = entrypoint(&config.run, &fs, &mut c);
    let bootstrap = bootstrap(program.as_deref(), &fs, &mut c);
    // What runs: the entrypoint (a script, on the provided bases), then the function's
    // executable.
    let mut executed: Vec<(String, usize)> = program
        .as_deref()
        .map(|p| p.trim_start_matches('/').to_string())
        .filter(|p| bootstrap.as_ref().is_none_or(|(b, _)| b != p))
        .and_then(|p| Some((p.clone(), fs.get(&p)?.layer)))
        .into_iter()
        .collect();
    executed.extend(bootstrap.clone());
    let judge_interpreters = !executed.is_empty();
    let mut scripts = Vec::new();
    for (path, layer) in executed {
        let executable = read_executable(&layout, &manifest.layers[layer].digest, &path, facts)?;
        if let Executable::Script(interpreter) = &executable {
            scripts.push((path.clone(), interpreter.clone()));
        }
        if bootstrap.as_ref().is_some_and(|(b, _)| *b == path) {
            elf(executable, &path, expect, &mut c);
        }
    }
    if judge_interpreters {
        interpreters(&scripts, &fs, &mut c);
    }
    user(&config.run, &mut c);
    Ok(report(c, Some(entry.digest)))
}

/// What the file at `path` of a layer is (its facts kept by the layer's digest).
fn read_executable(
    layout: &Layout,
    digest: &str,
    path: &str,
    facts: &FactCache,
) -> Result<Executable> {
    let key = format!("executable {digest} {path}");
    if let Some(known) = facts.get(&key) {
        return Ok(known);
    }
    let mut blob = layout.open_blob(digest)?;
    let executable = executable(read_file(&mut blob, path));
    blob.verify()?;
    facts.put(&key, &executable);
    Ok(executable)
}

/// single-manifest: Lambda refuses image indexes; it needs one manifest for one platform.
/// Returns the manifest's entry, or (as `Err`) the digest to report when there is none.
fn single_manifest(
    layout: &Layout,
    c: &mut Collector,
) -> Result<std::result::Result<oci::Descriptor, Option<String>>> {
    let index = layout.index()?;
    Ok(match index.manifests.as_slice() {
        [one] if !oci::is_index(&one.media_type) => {
            c.pass("single-manifest", "one image manifest");
            Ok(one.clone())
        }
        [one] => {
            c.fail("single-manifest", format!("the image is an index ({})", one.media_type), "Lambda accepts one manifest per architecture; push the per-arch image, not the index");
            Err(Some(one.digest.clone()))
        }
        many => {
            c.fail(
                "single-manifest",
                format!("the layout holds {} entries", many.len()),
                "keep one image per layout directory",
            );
            Err(None)
        }
    })
}

/// platform: linux and the function's architecture.
fn platform(config: &ImageConfig, expect: &Expectations, c: &mut Collector) {
    let (os, arch) = (config.os.as_str(), config.architecture.as_str());
    if os != "linux" {
        c.fail(
            "platform",
            format!("os is `{os}`"),
            "Lambda runs linux images only",
        );
    } else if arch != expect.arch.oci_name() {
        c.fail(
            "platform",
            format!(
                "architecture is `{arch}` but the function is deployed as {}",
                expect.arch
            ),
            format!("build the image with --arch {}", expect.arch),
        );
    } else {
        c.pass("platform", format!("linux/{arch}"));
    }
}

/// compressed-layers: gzip only.
fn compressed_layers(manifest: &Manifest, c: &mut Collector) {
    let bad: Vec<String> = manifest
        .layers
        .iter()
        .filter(|l| !oci::is_gzip_layer(&l.media_type))
        .map(|l| format!("{} ({})", l.digest, l.media_type))
        .collect();
    if bad.is_empty() {
        c.pass(
            "compressed-layers",
            format!("{} gzip layers", manifest.layers.len()),
        );
    } else {
        c.fail("compressed-layers", format!("layers that are not gzip: {}", bad.join(", ")), "Lambda accepts gzip layers only; re-compress with `skopeo copy --dest-compress-format gzip`");
    }
}

/// Reads every gzip layer into the image's final filesystem, judging parent-directories (every
/// entry's parent is in its layer) and size (uncompressed, against the limit) on the way.
fn filesystem(
    layout: &Layout,
    manifest: &Manifest,
    max_uncompressed: u64,
    facts: &FactCache,
    c: &mut Collector,
) -> Result<BTreeMap<String, Node>> {
    let mut fs: BTreeMap<String, Node> = BTreeMap::new();
    let mut sizes: Vec<(u64, usize, String)> = Vec::new();
    let mut missing_parents: Vec<String> = Vec::new();
    for (i, layer) in manifest.layers.iter().enumerate() {
        if !oci::is_gzip_layer(&layer.media_type) {
            continue;
        }
        let key = format!("layer {}", layer.digest);
        let read = match facts.get::<LayerFacts>(&key) {
            Some(known) => known,
            None => {
                // Layers stream through the check: a 10 GB image is never held in memory.
                let mut blob = layout.open_blob(&layer.digest)?;
                let read = read_layer(&mut blob).map_err(|message| Error::InvalidImage {
                    image: format!("{} layer {}", layout.dir.display(), layer.digest),
                    message,
                    help: "the layer must be a valid gzip tarball whose entries stay inside the root filesystem: rebuild it".into(),
                })?;
                blob.verify()?;
                facts.put(&key, &read);
                read
            }
        };
        replay(&read, i, &mut fs);
        let (size, missing) = (read.size, read.missing);
        sizes.push((size, i, layer.digest.clone()));
        missing_parents.extend(missing.into_iter().map(|p| format!("{p} (layer {i})")));
    }
    if missing_parents.is_empty() {
        c.pass(
            "parent-directories",
            "every entry's parent directory is in its layer",
        );
    } else {
        missing_parents.truncate(5);
        c.fail("parent-directories", format!("entries without their parent directory: {}", missing_parents.join(", ")), "Lambda fails such images with MissingParentDirectory; add explicit directory entries to the layer (cargo lambda-image does)");
    }
    let total: u64 = sizes.iter().map(|(size, _, _)| size).sum();
    if total <= max_uncompressed {
        c.pass("size", format!("{:.1} MB uncompressed", total as f64 / 1e6));
    } else {
        // The largest layers first: they are what to make smaller.
        sizes.sort_by_key(|(size, _, _)| std::cmp::Reverse(*size));
        let largest: Vec<String> = sizes
            .iter()
            .take(3)
            .map(|(size, i, digest)| {
                format!(
                    "layer {i} {} ({:.2} GB)",
                    oci::short(digest),
                    *size as f64 / 1e9
                )
            })
            .collect();
        c.fail(
            "size",
            format!(
                "{:.2} GB uncompressed; the largest layers: {}",
                total as f64 / 1e9,
                largest.join(", ")
            ),
            "Lambda's limit is 10 GB uncompressed: use a smaller base or fewer included files",
        );
    }
    Ok(fs)
}

/// entrypoint: the first word of ENTRYPOINT+CMD must be an absolute path to a real file,
/// executable by others. Returns the program when it is one.
fn entrypoint(run: &RunConfig, fs: &BTreeMap<String, Node>, c: &mut Collector) -> Option<String> {
    let program = run.command().into_iter().next().unwrap_or_default();
    let path = program.trim_start_matches('/').to_string();
    if program.is_empty() {
        c.fail(
            "entrypoint",
            "the image has neither ENTRYPOINT nor CMD",
            "set `image.entrypoint` (e.g. [\"/var/runtime/bootstrap\"])",
        );
        return None;
    }
    if !program.starts_with('/') {
        c.fail(
            "entrypoint",
            format!("`{program}` is a relative path"),
            "Lambda needs an absolute ENTRYPOINT path, e.g. /var/runtime/bootstrap",
        );
        return None;
    }
    match fs.get(&path) {
        None => c.fail(
            "entrypoint",
            format!("`{program}` does not exist in the image"),
            "check `image.entrypoint` and the base image",
        ),
        Some(Node {
            kind: Kind::Symlink(target),
            ..
        }) => c.fail(
            "entrypoint",
            format!("`{program}` is a symlink to `{target}`"),
            "point the ENTRYPOINT at the real file",
        ),
        Some(node) if node.kind != Kind::File => c.fail(
            "entrypoint",
            format!("`{program}` is not a regular file"),
            "point the ENTRYPOINT at an executable file",
        ),
        Some(node) if node.mode & 0o005 != 0o005 => c.fail(
            "entrypoint",
            format!(
                "`{program}` has mode {:o}, not readable and executable by others",
                node.mode
            ),
            "Lambda runs as a non-root user: make it mode 0755",
        ),
        Some(_) => {
            c.pass("entrypoint", format!("`{program}`"));
            return Some(program);
        }
    }
    None
}

/// bootstrap: the provided bases' entrypoint execs /var/runtime/bootstrap, which must be an
/// executable file, or a symlink to one in the image; otherwise the entrypoint is the
/// function's executable itself. Returns the executable's path in the image (a symlink
/// resolved) and its layer.
fn bootstrap(
    program: Option<&str>,
    fs: &BTreeMap<String, Node>,
    c: &mut Collector,
) -> Option<(String, usize)> {
    let program = program?;
    if program != crate::lambda::PROVIDED_ENTRYPOINT {
        let path = program.trim_start_matches('/').to_string();
        return fs.get(&path).map(|n| (path, n.layer));
    }
    let shown = format!("/{}", crate::lambda::BOOTSTRAP_PATH);
    let linked = match fs.get(crate::lambda::BOOTSTRAP_PATH) {
        Some(Node {
            kind: Kind::Symlink(target),
            ..
        }) => format!(" (a symlink to `{target}`)"),
        _ => String::new(),
    };
    match resolve(fs, crate::lambda::BOOTSTRAP_PATH) {
        None if linked.is_empty() => c.fail(
            "bootstrap",
            format!("{shown} is missing"),
            format!("the provided base runs {shown}: put the function's executable there"),
        ),
        None => c.fail(
            "bootstrap",
            format!("{shown}{linked} points to nothing in the image"),
            format!("the provided base runs {shown}: point the symlink at the function's executable, or put the executable itself there"),
        ),
        Some((_, node)) if node.kind != Kind::File => c.fail(
            "bootstrap",
            format!("{shown}{linked} is not a regular file"),
            "replace it with the executable itself",
        ),
        Some((_, node)) if node.mode & 0o005 != 0o005 => c.fail(
            "bootstrap",
            format!(
                "{shown}{linked} has mode {:o}, not readable and executable by others",
                node.mode
            ),
            "Lambda runs as a non-root user: make it mode 0755",
        ),
        Some((path, node)) => {
            c.pass("bootstrap", format!("{shown}{linked} is an executable file"));
            return Some((path, node.layer));
        }
    }
    None
}

/// directory-modes: Lambda's user is not root, so it needs read and search permission (r-x)
/// on the root directory, /var/runtime and /var/task, and search permission on /var to reach
/// them. `docker run` runs as root and does not notice.
fn directory_modes(fs: &BTreeMap<String, Node>, c: &mut Collector) {
    let mut denied = Vec::new();
    for (path, needs) in [
        ("", 0o005),
        ("var", 0o001),
        ("var/runtime", 0o005),
        ("var/task", 0o005),
    ] {
        match resolve(fs, path) {
            Some((_, node)) if node.kind == Kind::Dir && node.mode & needs != needs => {
                denied.push(format!("/{path} has mode {:o}", node.mode & 0o7777))
            }
            _ => {}
        }
    }
    if denied.is_empty() {
        c.pass(
            "directory-modes",
            "/, /var, /var/runtime and /var/task are open to a non-root user",
        );
    } else {
        c.fail(
            "directory-modes",
            format!("{}: closed to a non-root user", denied.join(", ")),
            "Lambda runs the function as a non-root user, who needs read and execute permission on /, /var/runtime and /var/task (execute on /var): give them mode 0755 in the base image or the layer that sets them",
        );
    }
}

/// interpreter: the kernel runs a script's `#!` interpreter in its stead, so the interpreter
/// must be in the image and executable by others; a file that is neither an ELF executable nor
/// a `#!` script cannot be run at all. `scripts` are the executed files that are not ELF, with
/// their interpreters.
fn interpreters(
    scripts: &[(String, Option<String>)],
    fs: &BTreeMap<String, Node>,
    c: &mut Collector,
) {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for (path, interpreter) in scripts {
        let Some(interpreter) = interpreter else {
            problems.push(format!(
                "/{path} is neither an ELF executable nor a script starting with `#!`"
            ));
            continue;
        };
        let resolved = interpreter
            .strip_prefix('/')
            .and_then(|relative| resolve(fs, relative));
        match resolved {
            _ if !interpreter.starts_with('/') => problems.push(format!(
                "/{path} runs `{interpreter}`, which is not an absolute path"
            )),
            None => problems.push(format!(
                "/{path} runs `{interpreter}`, which is not in the image"
            )),
            Some((_, node)) if node.kind != Kind::File || node.mode & 0o001 == 0 => problems.push(
                format!("/{path} runs `{interpreter}`, which is not a file executable by others"),
            ),
            Some(_) => found.push(format!("/{path} runs `{interpreter}`")),
        }
    }
    if !problems.is_empty() {
        c.fail("interpreter", problems.join("; "), "put the interpreter in the image (a base that has it), change the script's `#!` line, or run an executable that needs none");
    } else if found.is_empty() {
        c.pass("interpreter", "no script is run");
    } else {
        c.pass("interpreter", found.join("; "));
    }
}

/// user: Lambda ignores the config's `User` and runs the function as a non-root user of its
/// own. The image still runs, so this is a note.
fn user(run: &RunConfig, c: &mut Collector) {
    if run.user.is_empty() {
        c.pass("user", "no User (Lambda runs a non-root user of its own)");
    } else {
        c.note(
            "user",
            format!("the image sets User `{}`, which Lambda ignores", run.user),
            "Lambda runs the function as a non-root user of its own whatever User says: drop User, and keep what the function reads readable by others",
        );
    }
}

/// Resolves `path` (relative to the root) in the image's filesystem the way the kernel does:
/// every symlink on the way, the last component's too, absolute targets from the root and
/// relative ones from the link's directory. `None` when something on the way is missing or not
/// a directory, or after 40 symlinks. Returns the resolved path and its node.
fn resolve<'a>(fs: &'a BTreeMap<String, Node>, path: &str) -> Option<(String, &'a Node)> {
    let mut pending: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        match name.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(name),
        }
        let node = fs.get(&done.join("/"))?;
        match &node.kind {
            Kind::Symlink(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.rsplit('/') {
                    pending.push_front(part.to_string());
                }
            }
            Kind::Dir => {}
            _ if pending.iter().any(|p| !p.is_empty() && p != ".") => return None,
            _ => {}
        }
    }
    let path = done.join("/");
    let node = fs.get(&path)?;
    Some((path, node))
}

/// elf-arch and glibc: the executable's machine, and the glibc its symbols need.
/// What an executable's bytes (if they could be read) are.
fn executable(bytes: Option<Vec<u8>>) -> Executable {
    match bytes {
        Some(bytes) if bytes.starts_with(b"\x7fELF") => match elf::inspect_bytes(&bytes) {
            Ok(info) => Executable::Elf(info),
            Err(message) => Executable::Unparsable(message),
        },
        Some(bytes) => Executable::Script(interpreter(&bytes)),
        None => Executable::Unreadable,
    }
}

/// The interpreter a script's `#!` line names.
fn interpreter(bytes: &[u8]) -> Option<String> {
    let line = bytes.strip_prefix(b"#!")?.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    Some(
        line.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

fn elf(executable: Executable, path: &str, expect: &Expectations, c: &mut Collector) {
    let info = match executable {
        Executable::Elf(info) => info,
        // A script (e.g. a shell bootstrap) has no ELF header to check.
        Executable::Script(_) => {
            return c.pass("elf-arch", format!("/{path} is not an ELF file (script)"))
        }
        Executable::Unreadable => {
            return c.fail(
                "elf-arch",
                format!("/{path} could not be read back"),
                "rebuild the image",
            )
        }
        Executable::Unparsable(message) => {
            return c.fail(
                "elf-arch",
                format!("/{path}: {message}"),
                "the bootstrap must be a 64-bit Linux executable",
            )
        }
    };
    if info.arch == Some(expect.arch) {
        c.pass(
            "elf-arch",
            format!("/{path} is a {} executable", expect.arch),
        );
    } else {
        let found = info
            .arch
            .map(|a| a.to_string())
            .unwrap_or_else(|| format!("machine {}", info.machine));
        c.fail(
            "elf-arch",
            format!("/{path} is built for {found}, the image is {}", expect.arch),
            format!("compile for {}", expect.arch),
        );
    }
    match (info.max_glibc, expect.base_glibc) {
        (Some(need), Some(have)) if need > have => c.fail(
            "glibc",
            format!("/{path} needs GLIBC_{need}, the base provides {have}"),
            format!("build with `--compiler zigbuild` (pins glibc {have}) or `--libc musl`"),
        ),
        (Some(need), _) => c.pass("glibc", format!("needs GLIBC_{need}")),
        (None, _) => c.pass("glibc", "static executable"),
    }
}

/// Reads one layer: its entries in order, its uncompressed size, and the entries whose parent
/// directory the layer lacks.
fn read_layer(gz: impl Read) -> std::result::Result<LayerFacts, String> {
    let mut decoder = flate2::read::GzDecoder::new(gz);
    let mut counted = CountingReader {
        inner: &mut decoder,
        count: 0,
    };
    let mut ops = Vec::new();
    {
        let mut archive = tar::Archive::new(LayerTar::new(&mut counted));
        let mut data_end = 0;
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            data_end = entry.raw_file_position() + entry.header().entry_size().unwrap_or(0);
            ops.push(op_of(&entry)?);
        }
        if !archive.into_inner().holds(data_end) {
            return Err("the layer ends in the middle of its last entry's data".into());
        }
    }
    // Drain the rest (tar padding) so the size is the full tarball's.
    std::io::copy(&mut counted, &mut std::io::sink()).map_err(|e| e.to_string())?;
    let missing = missing_parents(&ops);
    Ok(LayerFacts {
        ops,
        size: counted.count,
        missing,
    })
}

/// What one tar entry does; the root directory's own entry is the path "".
fn op_of<R: Read>(entry: &tar::Entry<R>) -> std::result::Result<Op, String> {
    let raw = entry.path().map_err(|e| e.to_string())?;
    let path = entry_path(&raw)
        .map_err(|m| format!("the entry `{}`: {m}", raw.display()))?
        .join("/");
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d.to_string(), n.to_string()),
        None => (String::new(), path.clone()),
    };
    // Whiteouts delete what lower layers had.
    if name == ".wh..wh..opq" {
        return Ok(Op::Opaque(dir));
    }
    if let Some(target) = name.strip_prefix(".wh.") {
        let victim = if dir.is_empty() {
            target.to_string()
        } else {
            format!("{dir}/{target}")
        };
        return Ok(Op::Whiteout(victim));
    }
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink(
            entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        tar::EntryType::Link => Kind::File,
        _ => Kind::Other,
    };
    Ok(Op::Put(path, kind, header.mode().unwrap_or(0)))
}

/// The entries (whiteouts included) whose parent directory the layer does not hold.
fn missing_parents(ops: &[Op]) -> Vec<String> {
    let dirs: std::collections::BTreeSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put(path, Kind::Dir, _) => Some(path.as_str()),
            _ => None,
        })
        .collect();
    let mut missing = Vec::new();
    for op in ops {
        // A whiteout entry sits where its victim would; an opaque marker inside its directory.
        let entry = match op {
            Op::Put(path, ..) => path.clone(),
            Op::Whiteout(victim) => victim.clone(),
            Op::Opaque(dir) if dir.is_empty() => continue,
            Op::Opaque(dir) => format!("{dir}/.wh..wh..opq"),
        };
        let mut current = entry.as_str();
        while let Some((parent, _)) = current.rsplit_once('/') {
            if !dirs.contains(parent) {
                missing.push(format!("/{parent}/"));
                break;
            }
            current = parent;
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

/// Applies one layer's entries, in order, to the filesystem view.
fn replay(facts: &LayerFacts, index: usize, fs: &mut BTreeMap<String, Node>) {
    for op in &facts.ops {
        match op {
            Op::Opaque(dir) => {
                // An opaque root keeps the root directory itself.
                let prefix = if dir.is_empty() {
                    String::new()
                } else {
                    format!("{dir}/")
                };
                fs.retain(|p, n| n.layer == index || p.is_empty() || !p.starts_with(&prefix));
            }
            Op::Whiteout(victim) => {
                let prefix = format!("{victim}/");
                fs.retain(|p, _| p != victim && !p.starts_with(&prefix));
            }
            Op::Put(path, kind, mode) => {
                fs.insert(
                    path.clone(),
                    Node {
                        kind: kind.clone(),
                        mode: *mode,
                        layer: index,
                    },
                );
            }
        }
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads one file's bytes out of a gzip layer.
fn read_file(gz: impl Read, wanted: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(LayerTar::new(flate2::read::GzDecoder::new(gz)));
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry_path(&entry.path().ok()?).ok()?.join("/") == wanted {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).ok()?;
            return Some(data);
        }
    }
    None
}
