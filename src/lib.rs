//! cargo-lambda-image: build, test and deploy Rust AWS Lambda functions as container images.
//!
//! The pipeline has one module per stage, each stage's output the next one's input:
//! [`config`] (Cargo metadata and `[package.metadata.lambda]` to a [`Plan`]) ->
//! [`compile`] (the plan to [`compile::Artifact`]s).
//!
//! The command-line tool is a thin layer over this library, so an `xtask` can drive the same
//! stages:
//!
//! ```no_run
//! use cargo_lambda_image::{compile, config, progress::Progress};
//!
//! let request = config::PlanRequest {
//!     selection: config::Selection { workspace: true, ..Default::default() },
//!     ..Default::default()
//! };
//! let plan = config::plan(&request)?;
//! let artifacts = compile::compile(&plan, &compile::CompileOptions::default(), &Progress::hidden())?;
//! for artifact in artifacts {
//!     eprintln!("{} ({}): {}", artifact.function, artifact.arch, artifact.path);
//! }
//! # Ok::<(), cargo_lambda_image::Error>(())
//! ```

pub mod check;
pub mod compile;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod emulate;
pub mod error;
pub mod image;
pub mod index;
pub mod progress;
pub mod push;
pub mod registry;
pub mod scaffold;
pub mod target;
pub mod template;
pub mod testing;

pub use config::{FunctionSpec, Plan};
pub use error::{Error, Result};
