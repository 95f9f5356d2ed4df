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
    let joined = match scaffold::join_workspace(&dir) {
        Ok(joined) => joined,
        Err(e) => {
            // A crate cargo will not build is not left behind.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    if let Some(joined) = &joined {
        out.line(&format!(
            "Added \"{}\" to the members of the workspace {}",
            joined.member,
            joined.manifest.display()
        ));
    }
    out.emit(Event::New {
        path: dir.clone(),
        files,
        workspace: joined.map(|j| j.manifest),
    });
    out.line(&format!(
        "Created the function `{}`; try: cargo lambda-image test --manifest-path {}",
        args.name,
        dir.join("Cargo.toml").display()
    ));
    Ok(())
}
