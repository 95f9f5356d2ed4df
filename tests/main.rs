//! The integration tests, one module per file beside this one, in one test binary: linking
//! the AWS SDKs into a binary per file took minutes of a cold CI run. Every `tests/*.rs` must
//! be declared here (Cargo.toml turns off `autotests`);
//! `architecture::every_test_file_is_declared_in_main` checks it.
//!
//! The tests of all files run side by side, as a plain `cargo test` runs them: files share
//! fixture target directories (a fixture's dependencies compile once), and commands on the
//! same function and architecture at once are sound (`tests/concurrency.rs`).

mod support;

mod abuse;
mod architecture;
mod big_image;
mod build;
mod concurrency;
mod config;
mod crash;
mod cross;
mod deploy;
mod docker_builder;
mod docker_ssh;
mod doctor;
mod emulator;
mod engine_base;
mod events;
mod extensions;
mod extensions_api;
mod fuzz;
mod image;
mod index;
mod lifecycle;
mod local_env;
mod mutation;
mod new_command;
mod new_user;
mod parity;
mod registry;
mod registry_auth;
mod rie;
mod runners;
mod sbom;
mod secrets;
mod serve;
mod template;
mod test_command;
mod workspace;
