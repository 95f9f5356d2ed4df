//! The integration tests, one module per file beside this one, in one test binary: linking
//! the AWS SDKs into a binary per file took minutes of a cold CI run. Every `tests/*.rs` must
//! be declared here (Cargo.toml turns off `autotests`);
//! `architecture::every_test_file_is_declared_in_main` checks it.
//!
//! `cargo xtask ci` runs each file's tests in a process of their own, one file after another:
//! files share fixture target directories, and two of them building the same fixture function
//! with different settings at once could replace the image the other is reading. A plain
//! `cargo test` runs them side by side, with that risk.

mod support;

mod architecture;
mod big_image;
mod build;
mod config;
mod cross;
mod deploy;
mod docker_builder;
mod docker_ssh;
mod doctor;
mod emulator;
mod engine_base;
mod image;
mod index;
mod local_env;
mod mutation;
mod new_command;
mod parity;
mod registry;
mod registry_auth;
mod runners;
mod sbom;
mod secrets;
mod serve;
mod template;
mod test_command;
mod workspace;
