//! cargo-lambda-image: build, test and deploy Rust AWS Lambda functions as container images.
//!
//! The [`pipeline`] runs one module per stage, each stage's output the next one's input:
//! [`config`] (Cargo metadata and `[package.metadata.lambda]` to a [`Plan`], every decision
//! made) -> [`compile`] ([`compile::Artifact`]s) -> [`image`] ([`image::BuiltImage`]s, by a
//! [`image::Builder`]) -> [`check`] (Lambda's rules) -> [`testing`] under the [`emulate`]
//! emulator, or [`publish`] (outputs and registries, by a [`publish::Publisher`]) -> [`deploy`]
//! (observe, plan, execute) and [`template`]s. Every stage reports [`event::Event`]s to the
//! caller's [`event::Sink`]; [`render`] shows them as the command line does.
//!
//! Under the stages, a ground floor they all share and that imports none of them: [`oci`]
//! (descriptors, manifests, layouts, the image-config reader), [`lambda`] (Lambda's paths,
//! reserved variables, limits and naming), [`time`], [`target`], [`progress`], [`registry`],
//! [`docker`], [`aws`], [`envfile`], [`samples`], [`store`] (directories shared by concurrent
//! processes) and [`error`].
//!
//! The command-line tool is a thin layer over this library, so an `xtask` runs the same code:
//!
//! ```no_run
//! use std::sync::Arc;
//! use cargo_lambda_image::{config, event, pipeline};
//!
//! # async fn build() -> cargo_lambda_image::Result<()> {
//! let request = config::PlanRequest {
//!     selection: config::Selection { workspace: true, ..Default::default() },
//!     ..Default::default()
//! };
//! let plan = config::plan(&request.with_process_env())?;
//! let summary = pipeline::run(
//!     plan,
//!     pipeline::Options::from_env(),
//!     pipeline::Goal::Image,
//!     Arc::new(event::Collect::new()),
//! )
//! .await;
//! summary.into_result()
//! # }
//! ```

pub mod aws;
pub mod check;
pub mod compile;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod doctor;
pub mod emulate;
pub mod envfile;
pub mod error;
pub mod event;
pub mod image;
pub mod lambda;
pub mod oci;
pub mod pipeline;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod render;
pub mod samples;
pub mod scaffold;
pub mod serve;
pub mod store;
pub mod target;
pub mod template;
pub mod testing;
pub mod time;
pub mod watch;

pub use config::{FunctionSpec, Plan};
pub use error::{Error, Result};

/// README.md's Rust examples, compiled as doctests so the documented API stays real.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
