//! Fuzz smoke on the stable toolchain: `cargo fuzz` needs a nightly compiler, which these
//! machines cannot fetch, so seeded random mutations stand in for it. Mutated layers, index
//! files, config blobs and `[package.metadata.lambda]` tables go through the layer unpacker,
//! the check rules and the metadata validator. None may panic, and the unpacker must never
//! create or change anything outside its rootfs. The seeds are fixed, so a failure reproduces;
//! `CARGO_LAMBDA_IMAGE_FUZZ_ITERATIONS` raises the count for a longer run.
//!
//! Beside the fuzzing, the entry names that container runtimes accept (containerd's rules) and
//! the escapes they refuse are cases of their own.

use crate::support;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cargo_lambda_image::check::{self, Expectations};
use cargo_lambda_image::config::schema;
use cargo_lambda_image::emulate::rootfs;
use cargo_lambda_image::error::Source;
use cargo_lambda_image::oci;
use cargo_lambda_image::target::Arch;
use cargo_lambda_image::Error;
use serde_json::{json, Value};
use support::images::{
    config_for, craft_layout, evil_tar, gzip, mode, raw_tar, unclosed, unpack_layers, Raw,
};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn iterations(default: usize) -> usize {
    std::env::var("CARGO_LAMBDA_IMAGE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One random change: bytes overwritten, a cut, a tar header scrambled, or a slice repeated.
fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.is_empty() {
        return out;
    }
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
        }
        1 => out.truncate(rng.below(out.len())),
        2 => {
            // Somewhere in one 512-byte tar header: name, mode, size, type, link name.
            let block = rng.below(out.len() / 512) * 512;
            for _ in 0..1 + rng.below(16) {
                let i = (block + rng.below(512)).min(out.len() - 1);
                out[i] = b"./../\0/7x"[rng.below(9)];
            }
        }
        _ => {
            let start = rng.below(out.len());
            let end = (start + 1 + rng.below(600)).min(out.len());
            let slice = out[start..end].to_vec();
            let at = rng.below(out.len());
            out.splice(at..at, slice);
        }
    }
    out
}

/// A well-formed layer: directories, an executable, a file, a symlink inside the tree.
fn seed_layer() -> Vec<u8> {
    raw_tar(&[
        ("var", "d", 0o755, b""),
        ("var/runtime", "d", 0o755, b""),
        ("var/runtime/bootstrap", "f", 0o755, b"#!/bin/sh\necho hi\n"),
        ("var/task", "d", 0o755, b""),
        ("var/task/data.txt", "f", 0o644, b"some data"),
        ("var/task/link", "l:../runtime/bootstrap", 0o777, b""),
    ])
}

/// Every path under `dir`, with its size, except those under the skipped subdirectories.
fn snapshot(dir: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, u64> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            found.insert(path.clone(), meta.len());
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

fn expectations() -> Expectations {
    Expectations {
        function: "fuzz".into(),
        arch: Arch::X86_64,
        base_glibc: None,
    }
}

#[test]
fn mutated_layers_never_panic_the_unpacker_or_the_checks_nor_escape_the_rootfs() {
    let mut rng = Rng(0x5eed_1a7e_u64);
    let seed = seed_layer();
    let work = tempfile::tempdir().unwrap();
    // Files the unpacker must leave alone: beside the rootfs, and one level up.
    std::fs::write(work.path().join("canary"), b"untouched").unwrap();
    let mut accepted = 0;
    for i in 0..iterations(300) {
        let dir = work.path().join(format!("case{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let tar = mutate(&mut rng, &seed);
        let layers = vec![(oci::MEDIA_OCI_LAYER_GZIP, gzip(&tar))];
        let config = config_for(Arch::X86_64, &["/var/runtime/bootstrap"], &[], &layers);
        let layout = dir.join("layout");
        craft_layout(&layout, &config, &layers);
        let rootfs = dir.join("rootfs");
        let before = snapshot(work.path(), &[&rootfs]);

        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let unpacked = rootfs::unpack(&layout, &rootfs);
            let _ = check::check_layout(&layout, &expectations());
            unpacked.is_ok()
        }));
        let Ok(ok) = outcome else {
            std::fs::write(work.path().join("failing.tar"), &tar).unwrap();
            panic!("case {i} panicked; its tar is {:?}", tar);
        };
        accepted += usize::from(ok);
        assert_eq!(
            snapshot(work.path(), &[&rootfs]),
            before,
            "case {i} changed something outside its rootfs"
        );
        assert_eq!(
            std::fs::read(work.path().join("canary")).unwrap(),
            b"untouched"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Some mutations (in file contents, say) leave a valid layer: the harness really unpacks.
    assert!(accepted > 0, "no mutated layer was accepted at all");
}

#[test]
fn mutated_index_and_config_blobs_are_errors_not_panics() {
    let mut rng = Rng(0x0c1_da7a_u64);
    let layers = vec![(oci::MEDIA_OCI_LAYER_GZIP, gzip(&seed_layer()))];
    let config = config_for(Arch::X86_64, &["/var/runtime/bootstrap"], &[], &layers);
    let work = tempfile::tempdir().unwrap();
    let pristine = work.path().join("pristine");
    craft_layout(&pristine, &config, &layers);
    let index = std::fs::read(pristine.join("index.json")).unwrap();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = cargo_lambda_image::oci::sha256_digest(&config_bytes);
    let config_path = pristine
        .join("blobs/sha256")
        .join(oci::digest_hex(&config_digest).unwrap());
    assert!(config_path.is_file());

    for i in 0..iterations(200) {
        let layout = work.path().join(format!("case{i}"));
        craft_layout(&layout, &config, &layers);
        if i % 2 == 0 {
            std::fs::write(layout.join("index.json"), mutate(&mut rng, &index)).unwrap();
        } else {
            let blob = layout
                .join("blobs/sha256")
                .join(oci::digest_hex(&config_digest).unwrap());
            std::fs::write(&blob, mutate(&mut rng, &config_bytes)).unwrap();
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _ = check::check_layout(&layout, &expectations());
            let _ = rootfs::unpack(&layout, &work.path().join(format!("rootfs{i}")));
            let _ = std::fs::read(layout.join("index.json"))
                .ok()
                .map(|b| serde_json::from_slice::<oci::Index>(&b));
        }));
        assert!(outcome.is_ok(), "case {i} panicked");
    }
}

/// containerd (and Docker with it) strips a leading `/` or `./`, resolves `..` inside the
/// name, applies the root's own entry to the root directory and reads an archive that stops
/// after its last entry's data (umoci writes all of these): such a layer unpacks to the tree
/// `docker run` would see, and `check` reads it the same way.
#[test]
fn names_containerd_accepts_unpack_inside_the_root() {
    let work = tempfile::tempdir().unwrap();
    let layer = unclosed(&evil_tar(&[
        Raw::Dir("/", 0o750),
        Raw::Dir("/etc/", 0o755),
        Raw::File("/etc/abs", 0o644, b"absolute"),
        Raw::Dir("./var/", 0o755),
        Raw::File("./var/dot", 0o600, b"dot"),
        Raw::File("var/gone/../up", 0o644, b"up"),
        Raw::HardLink("/etc/hard", "/etc/abs"),
        Raw::Symlink("/etc/link", "/var/dot"),
        Raw::Dir("./var/runtime", 0o755),
        Raw::File("var/runtime/bootstrap", 0o755, b"#!/bin/sh\n"),
    ]));
    let (_, unpacked) = unpack_layers(work.path(), &[layer]);
    let layout = work.path().join("layout");
    let root = unpacked.expect("a layer containerd accepts unpacks").rootfs;
    assert_eq!(std::fs::read(root.join("etc/abs")).unwrap(), b"absolute");
    assert_eq!(std::fs::read(root.join("var/dot")).unwrap(), b"dot");
    assert_eq!(mode(&root.join("var/dot")), 0o600);
    assert_eq!(std::fs::read(root.join("var/up")).unwrap(), b"up");
    assert!(!root.join("var/gone").exists());
    assert_eq!(std::fs::read(root.join("etc/hard")).unwrap(), b"absolute");
    assert_eq!(
        std::fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("/var/dot")
    );
    assert_eq!(mode(&root), 0o750, "the root entry's mode is the root's");
    assert_eq!(
        snapshot(work.path(), &[&root, &layout]).len(),
        0,
        "nothing beside the rootfs and the layout"
    );

    // check reads the same names, and sees the root's mode.
    let report = check::check_layout(&layout, &expectations()).unwrap();
    let modes = report
        .findings
        .iter()
        .find(|f| f.rule == "directory-modes")
        .unwrap();
    assert!(
        !modes.passed && modes.message.contains("/ has mode 750"),
        "{modes:?}"
    );
    let parents = report
        .findings
        .iter()
        .find(|f| f.rule == "parent-directories")
        .unwrap();
    assert!(parents.passed, "{parents:?}");
}

/// What would leave the root filesystem stays refused, however the name is spelled: `..`
/// above the root (also after a leading `/`, where containerd would stop at the root), links
/// out of it, device nodes, a root entry that is not a directory, and data cut short.
#[test]
fn escapes_stay_refused_however_they_are_spelled() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("canary"), b"untouched").unwrap();
    let mut cut = evil_tar(&[Raw::File("big", 0o644, &[1u8; 2000])]);
    cut.truncate(512 + 1000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("..", evil_tar(&[Raw::File("../escaped", 0o644, b"x")])),
        (
            "..",
            evil_tar(&[Raw::File("./var/../../escaped", 0o644, b"x")]),
        ),
        ("..", evil_tar(&[Raw::File("/../escaped", 0o644, b"x")])),
        ("outside", evil_tar(&[Raw::Symlink("/up", "../../escaped")])),
        ("outside", evil_tar(&[Raw::Symlink("up", "/../escaped")])),
        (
            "outside",
            evil_tar(&[Raw::HardLink("up", "/../../etc/passwd")]),
        ),
        ("device", evil_tar(&[Raw::CharDevice("/dev/null")])),
        ("root", evil_tar(&[Raw::File("/", 0o644, b"x")])),
        ("middle of its data", cut),
    ];
    for (i, (why, tar)) in cases.into_iter().enumerate() {
        let dir = work.path().join(format!("case{i}"));
        let (_, unpacked) = unpack_layers(&dir, &[tar]);
        match unpacked {
            Err(e @ Error::UnsafeLayer { .. }) => {
                assert!(e.to_string().contains(why), "case {i}: {e}")
            }
            other => panic!("case {i} ({why}) was not refused: {other:?}"),
        }
        assert!(!dir.join("rootfs").exists(), "case {i} left a rootfs");
    }
    assert!(!work.path().join("escaped").exists());
    assert_eq!(
        std::fs::read(work.path().join("canary")).unwrap(),
        b"untouched"
    );
}

/// Values of every JSON type, including ones out of range and of the wrong shape.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => json!(rng.next() as i64 % 20_000 - 5_000),
        1 => json!(["x86_64", "arm64", "x86", "", "musl", "gnu", "provided:al2"][rng.below(7)]),
        2 => json!(rng.below(2) == 0),
        3 => json!(1.5),
        4 => Value::Null,
        5 => Value::Array(
            (0..rng.below(3))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(4) {
                map.insert(random_key(rng), random_value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

/// A key of the schema (any table's), or one it does not know.
fn random_key(rng: &mut Rng) -> String {
    const UNKNOWN: &[&str] = &["memroy", ""];
    let keys = cargo_lambda_image::config::keys::KEYS;
    if rng.below(5) == 0 {
        return UNKNOWN[rng.below(UNKNOWN.len())].to_string();
    }
    keys[rng.below(keys.len())].split().1.to_string()
}

#[test]
fn random_metadata_tables_are_validated_without_panics() {
    let mut rng = Rng(0xc0_ffee_u64);
    let source = Source::Manifest {
        path: PathBuf::from("fuzz/Cargo.toml"),
        table: "package.metadata.lambda".into(),
    };
    let mut valid = 0;
    let mut invalid = 0;
    for i in 0..iterations(2000) {
        let mut table = serde_json::Map::new();
        for _ in 0..rng.below(6) {
            table.insert(random_key(&mut rng), random_value(&mut rng, 0));
        }
        let value = Value::Object(table);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            schema::validate(&value, &source, rng.below(2) == 0).map(|_| ())
        }));
        match outcome {
            Ok(Ok(())) => valid += 1,
            Ok(Err(e)) => {
                // Every refusal names where the table came from.
                assert!(
                    e.to_string().contains("fuzz/Cargo.toml")
                        || format!("{e:?}").contains("fuzz/Cargo.toml"),
                    "case {i}: {e} for {value}"
                );
                invalid += 1;
            }
            Err(_) => panic!("case {i} panicked on {value}"),
        }
    }
    assert!(valid > 0 && invalid > 0, "valid {valid}, invalid {invalid}");
}
