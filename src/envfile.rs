//! Environment variables given on this machine rather than in the metadata: dotenv files
//! (`--env-file FILE`) and `KEY=VALUE` flags (`--env`).
//!
//! Every variable remembers where it came from, so that an error names the file and line or
//! the flag. Names are checked as Lambda checks them: a valid name, and none of the variables
//! Lambda reserves. Values never appear in an error message, because they are often secrets.
//!
//! The dotenv dialect is the common one (python-dotenv, docker compose without interpolation):
//! `KEY=value`, an optional `export ` prefix, `#` comments on their own line or after an
//! unquoted value, single quotes taken literally, double quotes with `\n`, `\t`, `\"` and `\\`
//! escapes and spanning lines. `${VAR}` is not expanded.
//!
//! Part of the ground floor: it imports nothing from a stage.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Source};
use crate::lambda;

/// One variable and where it was set.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
    /// The file and line, or the flag.
    pub origin: Source,
}

impl std::fmt::Debug for EnvVar {
    // The value may be a secret: only the name and where it came from are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVar")
            .field("key", &self.key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Reads every file, then every `KEY=VALUE` of `flag`, in that order: a later variable of the
/// same name wins, so a flag overrides a file.
pub fn collect(files: &[PathBuf], pairs: &[String], flag: &str) -> Result<Vec<EnvVar>> {
    let mut vars = Vec::new();
    for file in files {
        vars.extend(read_dotenv(file)?);
    }
    for pair in pairs {
        vars.push(parse_pair(flag, pair)?);
    }
    Ok(vars)
}

/// Parses `KEY=VALUE` given with `flag` (the value may be empty and may hold `=`).
pub fn parse_pair(flag: &str, pair: &str) -> Result<EnvVar> {
    let origin = Source::Cli {
        flag: flag.to_string(),
    };
    let Some((key, value)) = pair.split_once('=') else {
        // Only what precedes a `=` could be a name; with none, the text may be a value.
        return Err(Error::InvalidValue {
            source_: Box::new(origin),
            key: flag.trim_start_matches('-').to_string(),
            message: "a value is not KEY=VALUE".into(),
            help: format!("write {flag} NAME=value"),
        });
    };
    checked(key, value.to_string(), origin)
}

/// Reads a dotenv file.
pub fn read_dotenv(path: &Path) -> Result<Vec<EnvVar>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("could not read the env file", path, e))?;
    parse_dotenv(path, &text)
}

/// Parses the text of a dotenv file read from `path`.
pub fn parse_dotenv(path: &Path, text: &str) -> Result<Vec<EnvVar>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut vars = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let origin = Source::File {
            path: path.to_path_buf(),
            line: number,
        };
        let line = lines[index].trim_start();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else {
            return Err(malformed(origin, "it is not KEY=VALUE"));
        };
        let key = key.trim();
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let (value, used) = quoted(&rest[1..], quote, &lines[index..])
                    .ok_or_else(|| malformed(origin.clone(), "a quoted value is never closed"))?;
                index += used;
                value
            }
            _ => unquoted(rest),
        };
        vars.push(checked(key, value, origin)?);
    }
    Ok(vars)
}

/// An unquoted value: up to a ` #` comment, trimmed.
fn unquoted(rest: &str) -> String {
    let end = rest
        .char_indices()
        .find(|&(i, c)| c == '#' && rest[..i].ends_with([' ', '\t']))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].trim().to_string()
}

/// A quoted value starting after its opening `quote`, continued on the `following` lines if
/// need be (double quotes only): the value and how many following lines it used. `None` when
/// the quote is never closed, or text other than a comment follows it.
fn quoted(first: &str, quote: char, following: &[&str]) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut used = 0;
    let mut text = first;
    loop {
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                let after = text[i + 1..].trim_start();
                return (after.is_empty() || after.starts_with('#')).then_some((value, used));
            }
            if c == '\\' && quote == '"' {
                match chars.next().map(|(_, e)| e) {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(other @ ('"' | '\\' | '$')) => value.push(other),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => value.push('\\'),
                }
            } else {
                value.push(c);
            }
        }
        if quote == '\'' || used == following.len() {
            return None;
        }
        value.push('\n');
        text = following[used];
        used += 1;
    }
}

fn malformed(origin: Source, why: &str) -> Error {
    Error::InvalidValue {
        source_: Box::new(origin),
        key: "env".into(),
        message: why.to_string(),
        help: "write one NAME=value per line; quote values with spaces or `#`, e.g. NAME=\"a # b\""
            .into(),
    }
}

/// The variable, if its name is valid and not reserved by Lambda.
fn checked(key: &str, value: String, origin: Source) -> Result<EnvVar> {
    if !lambda::is_valid_env_name(key) {
        return Err(Error::InvalidValue {
            source_: Box::new(origin),
            key: key.to_string(),
            message: format!("`{key}` is not a valid environment variable name"),
            help: "start with a letter and use only letters, digits and underscores".into(),
        });
    }
    if lambda::is_reserved_env(key) {
        return Err(Error::InvalidValue {
            source_: Box::new(origin),
            key: key.to_string(),
            message: format!("`{key}` is reserved by the Lambda runtime and cannot be overridden"),
            help:
                "Lambda (and the emulator) sets it itself; for AWS credentials and the region \
                   use --aws-credentials, --aws-profile and --region; otherwise choose another name"
                    .into(),
        });
    }
    Ok(EnvVar {
        key: key.to_string(),
        value,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>> {
        parse_dotenv(Path::new(".env"), text)
            .map(|vars| vars.into_iter().map(|v| (v.key, v.value)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_common_dotenv_dialect_parses() {
        let text = r#"
# a comment
PLAIN=value
export EXPORTED=1
SPACED = around the equals   
EMPTY=
COMMENTED=value # a comment
HASH=a#b
SINGLE='literal \n $HOME # kept'
DOUBLE="tab\there \"quoted\" # kept"
MULTI="line one
line two"
AFTER=still read
"#;
        assert_eq!(
            parse(text).unwrap(),
            pairs(&[
                ("PLAIN", "value"),
                ("EXPORTED", "1"),
                ("SPACED", "around the equals"),
                ("EMPTY", ""),
                ("COMMENTED", "value"),
                ("HASH", "a#b"),
                ("SINGLE", "literal \\n $HOME # kept"),
                ("DOUBLE", "tab\there \"quoted\" # kept"),
                ("MULTI", "line one\nline two"),
                ("AFTER", "still read"),
            ])
        );
    }

    #[test]
    fn errors_name_the_file_and_line_but_never_the_value() {
        let err = parse("A=1\nthis-is-a-secret-without-equals\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(".env:2"), "{text}");
        assert!(!text.contains("secret"), "{text}");

        let err = parse("A=1\n\nAWS_REGION=moon-1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(".env:3") && text.contains("`AWS_REGION` is reserved"),
            "{text}"
        );
        assert!(!text.contains("moon-1"), "{text}");

        let err = parse("OPEN=\"never closed\nB=2\n").unwrap_err();
        assert!(err.to_string().contains(".env:1"), "{err}");
        let err = parse("1BAD=x").unwrap_err();
        assert!(err
            .to_string()
            .contains("not a valid environment variable name"));
        let err = parse("Q='a' trailing").unwrap_err();
        assert!(err.to_string().contains(".env:1"), "{err}");
    }

    #[test]
    fn flags_are_key_value_pairs_and_come_after_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("local.env");
        std::fs::write(&file, "LEVEL=file\nFILE_ONLY=yes\n").unwrap();
        let vars = collect(
            std::slice::from_ref(&file),
            &["LEVEL=flag=with=equals".into()],
            "--env",
        )
        .unwrap();
        let last = vars.iter().rev().find(|v| v.key == "LEVEL").unwrap();
        assert_eq!(last.value, "flag=with=equals");
        assert_eq!(
            last.origin,
            Source::Cli {
                flag: "--env".into()
            }
        );
        assert_eq!(
            vars[0].origin,
            Source::File {
                path: file,
                line: 1
            }
        );

        let err = parse_pair("--env", "AWS_ACCESS_KEY_ID=x").unwrap_err();
        assert!(err.to_string().contains("command-line flag --env"), "{err}");
        let err = parse_pair("--env", "no-equals-here").unwrap_err();
        assert!(!err.to_string().contains("no-equals-here"), "{err}");
        assert!(!format!("{:?}", parse_pair("--env", "K=hidden").unwrap()).contains("hidden"));
    }
}
