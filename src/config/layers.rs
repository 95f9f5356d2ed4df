//! Precedence: which table wins, in one readable place.
//!
//! Lowest first: defaults, workspace, workspace bin, package, package bin, environment, command
//! line. Tables merge key by key (so `[package.metadata.lambda.bin.x.env]` adds to the package's
//! `env` instead of replacing it, unlike cargo-lambda); scalars and lists are replaced whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result, Source};

use super::schema::{self, LambdaConfig};

/// A validated table with the place it came from.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where it came from.
    pub source: Source,
    /// The raw table, without its `bin` sub-tables.
    pub value: Value,
}

/// The `[...metadata.lambda]` table of a manifest, split into the table itself and its
/// per-binary tables, each validated.
#[derive(Debug, Clone, Default)]
pub struct ManifestTables {
    /// The table itself, if present.
    pub base: Option<Layer>,
    /// The `bin.<name>` tables.
    pub bins: BTreeMap<String, Layer>,
}

impl ManifestTables {
    /// Reads `metadata.lambda` out of a manifest's `[package.metadata]` or
    /// `[workspace.metadata]` value. `table` is the dotted name of the `lambda` table.
    pub fn read(metadata: &Value, path: &std::path::Path, table: &str) -> Result<ManifestTables> {
        let Some(lambda) = metadata.get("lambda") else {
            return Ok(ManifestTables::default());
        };
        let source = Source::Manifest {
            path: path.to_path_buf(),
            table: table.to_string(),
        };
        schema::validate(lambda, &source, true)?;
        let mut base = lambda.clone();
        let mut bins = BTreeMap::new();
        if let Some(Value::Object(bin_tables)) = base.as_object_mut().and_then(|m| m.remove("bin"))
        {
            for (name, value) in bin_tables {
                let source = Source::Manifest {
                    path: path.to_path_buf(),
                    table: format!("{table}.bin.{name}"),
                };
                bins.insert(name, Layer { source, value });
            }
        }
        Ok(ManifestTables {
            base: Some(Layer {
                source,
                value: base,
            }),
            bins,
        })
    }
}

/// The layers for one binary, lowest precedence first.
pub fn stack<'a>(
    workspace: &'a ManifestTables,
    package: &'a ManifestTables,
    bin: &str,
    env: &'a [Layer],
    cli: &'a [Layer],
) -> Vec<&'a Layer> {
    let mut layers = Vec::new();
    layers.extend(workspace.base.iter());
    layers.extend(workspace.bins.get(bin));
    layers.extend(package.base.iter());
    layers.extend(package.bins.get(bin));
    layers.extend(env.iter());
    layers.extend(cli.iter());
    layers
}

/// Merges the layers, later ones winning, and returns the typed result.
pub fn merge(layers: &[&Layer]) -> Result<LambdaConfig> {
    let mut merged = Value::Object(Map::new());
    for layer in layers {
        merge_value(&mut merged, &layer.value);
    }
    // Every layer was validated on its own, so the merge can only fail if two valid layers
    // combine into something invalid; blame the command line, the last word, if so.
    serde_json::from_value(merged).map_err(|e| Error::InvalidType {
        source_: Box::new(
            layers
                .last()
                .map(|l| l.source.clone())
                .unwrap_or(Source::Default),
        ),
        key: "lambda".into(),
        message: e.to_string(),
        help: "the merged configuration is inconsistent".into(),
    })
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge_value(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                match into.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_value(existing, v)
                    }
                    _ => {
                        into.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// One layer per `CARGO_LAMBDA_IMAGE_*` variable that is set, validated.
///
/// Numbers are parsed here because the environment only has strings; a value that is not a
/// number stays a string and fails validation with the variable's name in the message.
pub fn env_layers(env: &BTreeMap<String, String>) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    for (var, key) in super::keys::env_keys() {
        let Some(raw) = env.get(var) else { continue };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let numeric = super::keys::find(key).is_some_and(|k| k.range.is_some());
        let value = if numeric {
            raw.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(raw))
        } else if key == "arch" && raw.contains(',') {
            Value::from(
                raw.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>(),
            )
        } else {
            Value::from(raw)
        };
        let mut table = Map::new();
        table.insert(key.to_string(), value);
        let layer = Layer {
            source: Source::Env {
                var: var.to_string(),
            },
            value: Value::Object(table),
        };
        schema::validate(&layer.value, &layer.source, false)?;
        layers.push(layer);
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    //! One test per precedence rule, named after it.
    use super::*;
    use serde_json::json;

    fn layer(table: &str, value: Value) -> Layer {
        Layer {
            source: Source::Manifest {
                path: "/ws/Cargo.toml".into(),
                table: table.into(),
            },
            value,
        }
    }

    fn tables(base: Value, bins: &[(&str, Value)]) -> ManifestTables {
        ManifestTables {
            base: Some(layer("t", base)),
            bins: bins
                .iter()
                .map(|(n, v)| (n.to_string(), layer("t.bin", v.clone())))
                .collect(),
        }
    }

    fn resolve(
        ws: &ManifestTables,
        pkg: &ManifestTables,
        env: &[Layer],
        cli: &[Layer],
    ) -> LambdaConfig {
        merge(&stack(ws, pkg, "hello", env, cli)).unwrap()
    }

    #[test]
    fn package_overrides_workspace() {
        let ws = tables(json!({"memory": 256, "timeout": 10}), &[]);
        let pkg = tables(json!({"memory": 512}), &[]);
        let c = resolve(&ws, &pkg, &[], &[]);
        assert_eq!((c.memory, c.timeout), (Some(512), Some(10)));
    }

    #[test]
    fn workspace_bin_overrides_workspace_but_not_package() {
        let ws = tables(
            json!({"memory": 256, "timeout": 10}),
            &[("hello", json!({"memory": 1024, "timeout": 20}))],
        );
        let pkg = tables(json!({"timeout": 30}), &[]);
        let c = resolve(&ws, &pkg, &[], &[]);
        assert_eq!((c.memory, c.timeout), (Some(1024), Some(30)));
    }

    #[test]
    fn package_bin_overrides_package() {
        let ws = ManifestTables::default();
        let pkg = tables(
            json!({"memory": 512}),
            &[
                ("hello", json!({"memory": 2048})),
                ("other", json!({"memory": 4096})),
            ],
        );
        assert_eq!(resolve(&ws, &pkg, &[], &[]).memory, Some(2048));
    }

    #[test]
    fn bin_tables_merge_key_by_key_with_package_tables() {
        let ws = tables(json!({"env": {"A": "ws", "B": "ws"}}), &[]);
        let pkg = tables(
            json!({"env": {"B": "pkg", "C": "pkg"}, "image": {"tag": "t", "labels": {"x": "1"}}}),
            &[(
                "hello",
                json!({"env": {"C": "bin"}, "image": {"labels": {"y": "2"}}}),
            )],
        );
        let c = resolve(&ws, &pkg, &[], &[]);
        let env = c.env.unwrap();
        let literal = |v: &str| schema::EnvValue::Literal(v.into());
        assert_eq!(env["A"], literal("ws"));
        assert_eq!(env["B"], literal("pkg"));
        assert_eq!(env["C"], literal("bin"));
        let image = c.image.unwrap();
        assert_eq!(image.tag.as_deref(), Some("t"));
        assert_eq!(image.labels.unwrap().len(), 2);
    }

    #[test]
    fn lists_are_replaced_not_appended() {
        let ws = tables(json!({"arch": ["x86_64", "arm64"]}), &[]);
        let pkg = tables(json!({"arch": "arm64"}), &[]);
        let c = resolve(&ws, &pkg, &[], &[]);
        assert_eq!(c.arch.unwrap().to_vec(), vec![crate::target::Arch::Arm64]);
    }

    #[test]
    fn env_overrides_package_bin() {
        let pkg = tables(json!({}), &[("hello", json!({"memory": 2048}))]);
        let env =
            env_layers(&[("CARGO_LAMBDA_IMAGE_MEMORY".to_string(), "1024".to_string())].into())
                .unwrap();
        assert_eq!(
            resolve(&ManifestTables::default(), &pkg, &env, &[]).memory,
            Some(1024)
        );
    }

    #[test]
    fn cli_overrides_env() {
        let env = env_layers(&[("CARGO_LAMBDA_IMAGE_LIBC".to_string(), "gnu".to_string())].into())
            .unwrap();
        let cli = [Layer {
            source: Source::Cli {
                flag: "--libc".into(),
            },
            value: json!({"libc": "musl"}),
        }];
        let c = resolve(
            &ManifestTables::default(),
            &ManifestTables::default(),
            &env,
            &cli,
        );
        assert_eq!(c.libc, Some(crate::target::Libc::Musl));
    }

    #[test]
    fn env_arch_accepts_a_comma_list() {
        let env = env_layers(
            &[(
                "CARGO_LAMBDA_IMAGE_ARCH".to_string(),
                "x86_64, arm64".to_string(),
            )]
            .into(),
        )
        .unwrap();
        let c = resolve(
            &ManifestTables::default(),
            &ManifestTables::default(),
            &env,
            &[],
        );
        assert_eq!(c.arch.unwrap().to_vec().len(), 2);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let err =
            env_layers(&[("CARGO_LAMBDA_IMAGE_TIMEOUT".to_string(), "soon".to_string())].into())
                .unwrap_err();
        assert!(
            err.to_string().contains("CARGO_LAMBDA_IMAGE_TIMEOUT"),
            "{err}"
        );
        let err =
            env_layers(&[("CARGO_LAMBDA_IMAGE_TIMEOUT".to_string(), "901".to_string())].into())
                .unwrap_err();
        assert!(
            err.to_string().contains("CARGO_LAMBDA_IMAGE_TIMEOUT"),
            "{err}"
        );
    }
}
