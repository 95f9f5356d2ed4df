//! The shape of the code, checked: the binary stays thin, no function grows past 120 lines, no
//! module imports from a stage above it (the ground floor imports no stage at all), the files
//! of the deploy and image stages import one another without cycles, and the deploy's planner
//! and model never meet the AWS SDK.

use std::collections::{BTreeMap, BTreeSet};
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

/// A library file's module path: `src/deploy/aws/lambda.rs` -> `crate::deploy::aws::lambda`,
/// `src/deploy/mod.rs` -> `crate::deploy`.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut path = vec!["crate".to_string()];
    path.extend(
        relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

/// Whether an item is compiled for tests only; test modules may build fixtures from anywhere.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

/// Every path a file names outside its tests, from its `use` items and its code, each as
/// written and, when it starts at `crate`, `self` or `super`, as an absolute module path.
struct Paths {
    /// The module the visitor is in (inline modules included).
    module: Vec<String>,
    /// Each path as written, and as an absolute module path when it starts at `crate`, `self`
    /// or `super` (a crate's or a name in scope is not resolved).
    found: Vec<(Vec<String>, Option<Vec<String>>)>,
}

impl Paths {
    /// The paths of one library file.
    fn of(file: &Path) -> Paths {
        let text = std::fs::read_to_string(file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut paths = Paths {
            module: module_path(file),
            found: Vec::new(),
        };
        paths.visit_file(&ast);
        paths
    }

    /// Keeps a path met in the module the visitor is in.
    fn record(&mut self, segments: Vec<String>) {
        let absolute = self.absolute(&segments);
        self.found.push((segments, absolute));
    }

    /// `super::lambda::get` in `crate::deploy::aws::observe` is `crate::deploy::aws::lambda::get`.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut base = match segments.first()?.as_str() {
            "crate" => Vec::new(),
            "self" | "super" => self.module.clone(),
            _ => return None,
        };
        for segment in segments {
            match segment.as_str() {
                "crate" if base.is_empty() => base.push("crate".into()),
                "self" => {}
                "super" => {
                    base.pop();
                }
                _ => base.push(segment.clone()),
            }
        }
        Some(base)
    }

    /// Each path a `use` tree names, groups spelled out (`use a::{b, c::d}` is `a::b` and
    /// `a::c::d`).
    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
            }
            syn::UseTree::Name(n) => {
                if n.ident != "self" {
                    prefix.push(n.ident.to_string());
                }
                self.record(prefix);
            }
            syn::UseTree::Rename(r) => {
                if r.ident != "self" {
                    prefix.push(r.ident.to_string());
                }
                self.record(prefix);
            }
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(item, prefix.clone());
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.module.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&item.tree, Vec::new());
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(segments);
        syn::visit::visit_path(self, path);
    }
}

/// The modules of a directory that is a module (`x.rs` and `x/` beside its `mod.rs`), each
/// with its files.
fn child_modules(dir: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut children: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            children.entry(name).or_default().extend(files);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
            children.entry(name).or_default().push(path);
        }
    }
    children
}

/// The first cycle among the modules of `dir` (a file or a subdirectory each; `mod.rs`, which
/// declares them all, is not one), as `a -> b -> a`; then those of its subdirectories.
fn import_cycles(dir: &Path, cycles: &mut Vec<String>) {
    let parent = module_path(&dir.join("mod.rs"));
    let children = child_modules(dir);
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, files) in &children {
        let targets = edges.entry(name.as_str()).or_default();
        for file in files {
            for (_, absolute) in Paths::of(file).found {
                let Some(absolute) = absolute else { continue };
                if absolute.len() <= parent.len() || absolute[..parent.len()] != parent[..] {
                    continue;
                }
                let target = absolute[parent.len()].as_str();
                if let Some((target, _)) = children.get_key_value(target) {
                    if target != name {
                        targets.insert(target.as_str());
                    }
                }
            }
        }
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = find_cycle(node, &edges, &mut Vec::new(), &mut done) {
            cycles.push(format!("{}: {}", dir.display(), cycle.join(" -> ")));
            break;
        }
    }
    for (name, _) in children {
        if dir.join(&name).join("mod.rs").is_file() {
            import_cycles(&dir.join(&name), cycles);
        }
    }
}

/// Depth first from `node`: a module met again while still on `path` closes a cycle, returned
/// from that module round to it again. `done` holds the modules already searched.
fn find_cycle<'a>(
    node: &'a str,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    if let Some(start) = path.iter().position(|n| *n == node) {
        let mut cycle = path[start..].to_vec();
        cycle.push(node);
        return Some(cycle);
    }
    if !done.insert(node) {
        return None;
    }
    path.push(node);
    for next in &edges[node] {
        if let Some(cycle) = find_cycle(next, edges, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

/// Within a stage, its files import one another in one direction only: a cycle among them
/// means two files that can be neither understood nor tested apart.
#[test]
fn no_import_cycle_in_deploy_or_image() {
    let mut cycles = Vec::new();
    for stage in ["deploy", "image"] {
        import_cycles(&src().join(stage), &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The deploy's decisions meet no SDK: the planner and the model import no `aws_sdk_*` or
/// `aws_smithy_*` crate and no adapter (the deploy's `aws` modules, the public paths that
/// re-export them, or the crate's `aws`).
#[test]
fn the_planner_and_the_model_import_no_sdk_and_no_adapter() {
    let deploy = src().join("deploy");
    let mut files = vec![deploy.join("plan.rs")];
    rust_files(&deploy.join("model"), &mut files);
    let adapters: [&[&str]; 4] = [
        &["crate", "aws"],
        &["crate", "deploy", "aws"],
        &["crate", "deploy", "observe"],
        &["crate", "deploy", "invoke"],
    ];
    let mut found = Vec::new();
    for file in files {
        for (written, absolute) in Paths::of(&file).found {
            let first = written.first().map_or("", String::as_str);
            let sdk = first.starts_with("aws_sdk_") || first.starts_with("aws_smithy_");
            let adapter = absolute.as_ref().is_some_and(|a| {
                adapters
                    .iter()
                    .any(|prefix| a.len() >= prefix.len() && a[..prefix.len()] == **prefix)
            });
            if sdk || adapter {
                found.push(format!("{}: {}", file.display(), written.join("::")));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
