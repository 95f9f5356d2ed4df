//! `new`: a function crate from the templates in `templates/function/`, embedded in the binary
//! so an installed `cargo lambda-image` has them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The template files: path in the new crate, contents.
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/function/Cargo.toml.tmpl"),
    ),
    (
        "src/main.rs",
        include_str!("../templates/function/src/main.rs"),
    ),
    (
        "events/hello.json",
        include_str!("../templates/function/events/hello.json"),
    ),
    (
        "events/hello.expected.json",
        include_str!("../templates/function/events/hello.expected.json"),
    ),
    (".gitignore", "/target\n"),
];

/// Writes a new function crate named `name` into `dir` (which must not exist or be empty) and
/// returns the files written. The crate is written to a temporary directory first and moved
/// into place, so a failure leaves nothing behind.
pub fn new_function(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(Error::InvalidValue {
            source_: Box::new(crate::error::Source::Cli {
                flag: "NAME".into(),
            }),
            key: "name".into(),
            message: format!("`{name}` cannot name both a crate and a Lambda function"),
            help: "start with a letter and use up to 64 letters, digits, `-` or `_`".into(),
        });
    }
    let occupied = dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if occupied {
        return Err(Error::InvalidValue {
            source_: Box::new(crate::error::Source::Cli {
                flag: "--path".into(),
            }),
            key: "path".into(),
            message: format!("{} already exists and is not empty", dir.display()),
            help: "choose another name or --path; nothing was written".into(),
        });
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("could not create", parent, e))?;
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let written = write_files(&staging, name);
    let moved = written.and_then(|files| {
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(|e| Error::io("could not replace", dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| Error::io("could not create", dir, e))?;
        Ok(files.into_iter().map(|f| dir.join(f)).collect())
    });
    if moved.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    moved
}

/// A workspace the new crate was made a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The workspace's manifest.
    pub manifest: PathBuf,
    /// The member's path as the manifest lists it.
    pub member: String,
}

/// A crate made inside a Cargo workspace must be one of its members (or excluded), or cargo
/// refuses to build it ("current package believes it's in a workspace when it's not"), as
/// `cargo new` knows: `dir` is added to `workspace.members` of the nearest workspace above it,
/// unless a member pattern already covers it or `exclude` lists it. The manifest is edited as
/// text, so its formatting and comments stay; `cargo metadata` then checks the crate is a
/// member, and if it is not, the manifest is put back and the error gives the line to add.
/// Returns the workspace joined, if any.
pub fn join_workspace(dir: &Path) -> Result<Option<Joined>> {
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io("could not resolve", dir, e))?;
    let Some((root, table)) = dir.ancestors().skip(1).find_map(workspace_at) else {
        return Ok(None);
    };
    let manifest = root.join("Cargo.toml");
    let member = dir
        .strip_prefix(&root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let listed = |key: &str| -> Vec<String> {
        table
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let covered = |patterns: &[String]| patterns.iter().any(|p| path_matches(p, &member));
    if covered(&listed("members")) || covered(&listed("exclude")) {
        return Ok(None);
    }
    let original = std::fs::read_to_string(&manifest)
        .map_err(|e| Error::io("could not read", &manifest, e))?;
    let line = format!("members = [\"{member}\"]");
    let refuse = |why: String| {
        Error::InvalidValue {
        source_: Box::new(crate::error::Source::Manifest {
            path: manifest.clone(),
            table: "workspace".into(),
        }),
        key: "members".into(),
        message: format!("the new crate {} is inside this workspace but not one of its members: {why}", dir.display()),
        help: format!("add \"{member}\" to `members` in [workspace] ({line} if it has none), or create the crate elsewhere with --path"),
    }
    };
    let Some(edited) = with_member(&original, &member) else {
        return Err(refuse("its [workspace] table could not be edited".into()));
    };
    crate::oci::write_atomic(&manifest, edited.as_bytes())?;
    let checked =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .output();
    match checked {
        Ok(out) if out.status.success() => Ok(Some(Joined { manifest, member })),
        other => {
            crate::oci::write_atomic(&manifest, original.as_bytes())?;
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                Err(e) => format!("cargo did not run: {e}"),
            };
            Err(refuse(why))
        }
    }
}

/// The directory and `[workspace]` table of the manifest in `dir`, if it has one.
fn workspace_at(dir: &Path) -> Option<(PathBuf, toml::Table)> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let workspace = table.get("workspace")?.as_table()?.clone();
    Some((dir.to_path_buf(), workspace))
}

/// Whether a `members`/`exclude` entry (a path, or a glob with `*` and `?` in its components)
/// names `path`.
fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    let (p, q): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len() && p.iter().zip(&q).all(|(p, q)| glob_component(p, q))
}

fn glob_component(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => {
            pattern.len() == text.len()
                && pattern
                    .chars()
                    .zip(text.chars())
                    .all(|(p, t)| p == '?' || p == t)
        }
        Some((head, tail)) => {
            text.len() >= head.len()
                && glob_component(head, &text[..head.len()])
                && (head.len()..=text.len()).any(|i| glob_component(tail, &text[i..]))
        }
    }
}

/// `manifest` with `member` added to its `[workspace]` table's `members` (created when there
/// is none), or `None` when the table cannot be found as text.
fn with_member(manifest: &str, member: &str) -> Option<String> {
    let entry = format!("\"{member}\"");
    let lines: Vec<&str> = manifest.lines().collect();
    let header = lines.iter().position(|l| l.trim() == "[workspace]")?;
    let end = lines[header + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| header + 1 + i);
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let members = (header + 1..end).find(|&i| {
        let l = lines[i].trim_start();
        l.starts_with("members") && l["members".len()..].trim_start().starts_with('=')
    });
    match members {
        None => out.insert(header + 1, format!("members = [{entry}]")),
        Some(i) => {
            let close = (i..end).find(|&j| lines[j].contains(']'))?;
            if close == i {
                // `members = [ ... ]` on one line.
                let line = &lines[i];
                let at = line.rfind(']')?;
                let inside = line[line.find('[')? + 1..at].trim();
                let sep = if inside.is_empty() || inside.ends_with(',') {
                    ""
                } else {
                    ", "
                };
                out[i] = format!("{}{sep}{entry}{}", &line[..at].trim_end(), &line[at..]);
            } else {
                let indent: String = lines[close - 1]
                    .chars()
                    .take_while(|c| c.is_whitespace())
                    .collect();
                let indent = if close - 1 == i {
                    "    ".to_string()
                } else {
                    indent
                };
                if close - 1 > i
                    && !lines[close - 1].trim_end().ends_with(',')
                    && !lines[close - 1].trim().is_empty()
                {
                    out[close - 1] = format!("{},", lines[close - 1]);
                }
                out.insert(close, format!("{indent}{entry},"));
            }
        }
    }
    let mut text = out.join("\n");
    if manifest.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

fn write_files(root: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (path, template) in FILES {
        let target = root.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
        }
        let text = template
            .replace("{{name}}", name)
            .replace("{{function}}", name);
        std::fs::write(&target, text).map_err(|e| Error::io("could not write", &target, e))?;
        files.push(PathBuf::from(path));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_added_to_the_members_list_as_it_is_written() {
        let one_line = "[workspace]\nmembers = [\"a\", \"b\"]\nresolver = \"2\"\n";
        assert_eq!(
            with_member(one_line, "new").unwrap(),
            "[workspace]\nmembers = [\"a\", \"b\", \"new\"]\nresolver = \"2\"\n"
        );
        let many = "[package]\nname = \"x\"\n\n[workspace]\n# ours\nmembers = [\n    \"a\",\n    \"b\"\n]\n";
        assert_eq!(
            with_member(many, "crates/new").unwrap(),
            "[package]\nname = \"x\"\n\n[workspace]\n# ours\nmembers = [\n    \"a\",\n    \"b\",\n    \"crates/new\",\n]\n"
        );
        assert_eq!(
            with_member("[workspace]\nresolver = \"2\"\n", "new").unwrap(),
            "[workspace]\nmembers = [\"new\"]\nresolver = \"2\"\n"
        );
        assert_eq!(with_member("[package]\n", "new"), None);
    }

    #[test]
    fn member_patterns_match_as_cargo_globs_do() {
        assert!(path_matches("crates/*", "crates/new"));
        assert!(path_matches("crates/n?w", "crates/new"));
        assert!(path_matches("new/", "new"));
        assert!(!path_matches("crates/*", "new"));
        assert!(!path_matches("crates/*", "crates/a/b"));
        assert!(path_matches("*-fn", "orders-fn"));
    }

    #[test]
    fn writes_the_template_with_the_name_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("orders");
        let files = new_function(&target, "orders").unwrap();
        assert_eq!(files.len(), FILES.len());
        let manifest = std::fs::read_to_string(target.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("name = \"orders\"")
                && manifest.contains("function-name = \"orders\"")
        );
        assert!(!manifest.contains("{{"));
        assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
    }

    #[test]
    fn refuses_bad_names_and_occupied_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(new_function(&dir.path().join("x"), "9lives").is_err());
        assert!(new_function(&dir.path().join("x"), "has space").is_err());
        std::fs::write(dir.path().join("file"), "").unwrap();
        let err = new_function(dir.path(), "ok").unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(!dir.path().join("Cargo.toml").exists());
    }
}
