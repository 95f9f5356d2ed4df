//! `new`: scaffold a function crate.

use std::path::PathBuf;

use clap::Args;

use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;
use cargo_lambda_image::scaffold;

use super::Output;

/// `new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The crate's (and the function's) name.
    pub name: String,
    /// Where to create it [default: ./NAME].
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

/// Creates the crate.
pub fn run(args: &NewArgs, out: &Output) -> Result<()> {
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold::new_function(&dir, &args.name)?;
    out.emit(Event::New {
        path: dir.clone(),
        files,
    });
    out.line(&format!(
        "Created the function `{}`; try: cargo lambda-image test --manifest-path {}",
        args.name,
        dir.join("Cargo.toml").display()
    ));
    Ok(())
}
