//! The one typed reader of image configs, used by `check`, the rootfs unpacker, templates and
//! base handling, so that they all read ENTRYPOINT, CMD, ENV and WORKDIR the same way.
//!
//! Image configs in the wild are loose: Docker writes `"Entrypoint": null`, some builders put
//! numbers in string lists, `config` may be missing. The reader is lenient the way container
//! runtimes are: a missing or null value is empty, and non-string list items are skipped.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

use super::parse_json;

/// The parts of an image's run configuration that tools act on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=value` strings in order.
    pub env: Vec<String>,
    /// `WorkingDir` (empty when unset).
    pub working_dir: String,
    /// `User` (empty when unset). Lambda ignores it.
    pub user: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

impl RunConfig {
    /// Reads the `config` object of an image config.
    pub fn from_value(run: &Value) -> RunConfig {
        RunConfig {
            entrypoint: string_list(run.get("Entrypoint")),
            cmd: string_list(run.get("Cmd")),
            env: string_list(run.get("Env")),
            working_dir: string(run.get("WorkingDir")),
            user: string(run.get("User")),
            labels: run
                .get("Labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// ENTRYPOINT followed by CMD: the command a container runs.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// `Env` split into (name, value) pairs; an entry without `=` has an empty value.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }
}

/// An image config, read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    /// `architecture` (`amd64`, `arm64`).
    pub architecture: String,
    /// `os`.
    pub os: String,
    /// `variant`, if any.
    pub variant: Option<String>,
    /// `config`: what the image runs.
    pub run: RunConfig,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Reads a config document held as JSON.
    pub fn from_value(config: &Value) -> ImageConfig {
        ImageConfig {
            architecture: string(config.get("architecture")),
            os: string(config.get("os")),
            variant: config
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_string),
            run: config
                .get("config")
                .map(RunConfig::from_value)
                .unwrap_or_default(),
            diff_ids: string_list(config.pointer("/rootfs/diff_ids")),
        }
    }

    /// Parses a config blob; `reference` names the image in the error.
    pub fn parse(data: &[u8], reference: &str) -> Result<ImageConfig> {
        let value: Value = parse_json(data, reference)?;
        Ok(ImageConfig::from_value(&value))
    }
}

/// The strings of a JSON array; nothing for a missing, null or non-array value, and non-string
/// items are skipped.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn string(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_and_odd_items_read_as_docker_and_containerd_read_them() {
        let config = ImageConfig::from_value(&json!({
            "architecture": "arm64", "os": "linux", "variant": "v8",
            "config": {"Entrypoint": null, "Cmd": ["a", 1, "b"], "Env": ["A=1", "B"],
                       "WorkingDir": "/w", "Labels": {"x": "y", "n": 2}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]}
        }));
        assert!(config.run.entrypoint.is_empty());
        assert_eq!(config.run.cmd, ["a", "b"]);
        assert_eq!(config.run.command(), ["a", "b"]);
        assert_eq!(
            config.run.env_pairs(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), String::new())
            ]
        );
        assert_eq!(config.run.working_dir, "/w");
        assert_eq!(config.run.labels.len(), 1);
        assert_eq!(config.diff_ids, ["sha256:1"]);
        assert_eq!(config.variant.as_deref(), Some("v8"));
    }

    #[test]
    fn a_config_without_config_is_empty_not_an_error() {
        let config = ImageConfig::parse(br#"{"architecture":"amd64","os":"linux"}"#, "x").unwrap();
        assert_eq!(config.run, RunConfig::default());
        assert!(ImageConfig::parse(b"not json", "x").is_err());
    }
}
