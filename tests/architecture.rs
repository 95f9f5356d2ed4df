//! The shape of the code, checked: the binary stays thin, no function grows past 120 lines, and
//! no module imports from a stage above it (the ground floor imports no stage at all).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Each top-level module of the library and its floor: a module may import from its own floor
/// and the ones below, never from above. The stages go config -> compile -> image -> check
/// -> emulate/test -> publish -> deploy -> template; the pipeline and its events sit on top.
const FLOORS: &[(&str, u32)] = &[
    ("error", 0),
    ("target", 0),
    ("time", 0),
    ("lambda", 0),
    ("oci", 0),
    ("progress", 0),
    ("registry", 0),
    ("docker", 0),
    ("aws", 0),
    ("envfile", 0),
    ("samples", 0),
    ("scaffold", 0),
    ("store", 0),
    ("config", 1),
    ("watch", 1),
    ("compile", 2),
    ("image", 3),
    ("check", 4),
    ("emulate", 5),
    ("testing", 5),
    ("serve", 5),
    ("doctor", 5),
    ("publish", 6),
    ("deploy", 7),
    ("template", 8),
    ("event", 9),
    ("render", 9),
    ("pipeline", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a library file belongs to (`src/image/base.rs` -> `image`).
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main" | "cli")).then(|| name.to_string())
}

#[test]
fn every_library_module_has_a_floor() {
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        if let Some(module) = module_of(&file) {
            assert!(
                floors.contains_key(module.as_str()),
                "{} belongs to `{module}`, which has no floor in tests/architecture.rs",
                file.display()
            );
        }
    }
}

#[test]
fn no_module_imports_from_a_stage_above_it() {
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let own = floors[module.as_str()];
        let text = std::fs::read_to_string(&file).unwrap();
        // Test modules may build fixtures from anywhere.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (line_number, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (start, _) in line.match_indices("crate::") {
                let rest = &line[start + "crate::".len()..];
                let used: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // `crate::{a, b}` groups are spelled out elsewhere in this code base.
                if let Some(&floor) = floors.get(used.as_str()) {
                    if floor > own {
                        violations.push(format!(
                            "{}:{}: `{module}` (floor {own}) uses `{used}` (floor {floor})",
                            file.display(),
                            line_number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Every function and method with its first and last line.
struct Functions {
    found: Vec<(String, usize, usize)>,
}

impl Functions {
    /// From the `fn` keyword to the closing brace; doc comments and attributes do not count.
    fn record(&mut self, sig: &syn::Signature, block: &syn::Block) {
        let first = sig.fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        self.found.push((sig.ident.to_string(), first, last));
    }
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.record(&item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.record(&item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }
}

#[test]
fn no_function_in_src_is_over_120_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut functions = Functions { found: Vec::new() };
        functions.visit_file(&ast);
        for (name, first, last) in functions.found {
            let lines = last - first + 1;
            if lines > 120 {
                long.push(format!("{}: `{name}` has {lines} lines", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_binary_is_thin() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(lines <= 150, "src/main.rs has {lines} lines");
    // It parses and dispatches; the pipeline and its decisions live in the library.
    for forbidden in ["config::plan", "Pipeline::new", "deploy::", "compile::"] {
        assert!(!main.contains(forbidden), "src/main.rs uses {forbidden}");
    }
}

/// Cargo.toml turns `autotests` off so that the integration tests are one binary: a file in
/// tests/ that tests/main.rs does not declare would never be compiled, its tests silently gone.
#[test]
fn every_test_file_is_declared_in_main() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(tests.join("main.rs")).unwrap();
    let declared: Vec<&str> = main
        .lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".rs"))
        else {
            continue;
        };
        if name != "main" && !declared.contains(&name) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "tests/main.rs does not declare {missing:?}: add `mod NAME;` for each"
    );
    assert!(declared.contains(&"architecture") && declared.contains(&"support"));
}
