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
