//! `watch`: `serve`, and rebuild on change. A change to a function's sources, manifest, path
//! dependencies or `include` files rebuilds and re-images the functions it concerns, and swaps
//! each new image in under the running emulator: invocations in flight finish on the old
//! runtime, later ones start the new one, so no request fails. A build that fails keeps the
//! old runtime serving.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::Args;

use cargo_lambda_image::emulate::Emulator;
use cargo_lambda_image::error::Result;
use cargo_lambda_image::event::Event;
use cargo_lambda_image::serve::ServeOptions;
use cargo_lambda_image::watch::{Changes, WatchSet};

use super::args::ImageArgs;
use super::serve::{self, ServeFlags};
use super::Output;

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub serve: ServeFlags,
    /// Milliseconds without a further change before rebuilding.
    #[arg(long, default_value_t = 300, value_name = "MS", help_heading = "Serve")]
    pub debounce: u64,
}

const UNBUILT: &str =
    "the function's build failed: fix the error `watch` printed; it rebuilds on the next change";

/// Serves, and rebuilds on change, until Ctrl-C.
pub async fn run(args: &WatchArgs, out: &Output) -> Result<()> {
    let plan = args.image.build.plan()?;
    let set = WatchSet::for_plan(&plan)?;
    let prepared = args.serve.prepare(&plan).await?;
    // Watching starts before the first build, so that an edit made while it runs (or just
    // after the functions are served) is not missed.
    let mut changes = Changes::watch(&set)?;
    let options = prepared.options.clone();
    let (pipeline, images) = super::images_of(plan, &args.image, out, false).await?;
    let Some(images) = images else {
        return out.finish(pipeline.finish());
    };
    // What each function runs, so that a rebuild to the same image is not a reload.
    let mut serving: BTreeMap<String, String> = images
        .items
        .iter()
        .map(|i| (i.spec.lambda_name.clone(), i.value.digest.clone()))
        .collect();
    let Some(emulator) = serve::start(&pipeline, &images, prepared, out, Some(UNBUILT)).await?
    else {
        return out.finish(pipeline.finish());
    };
    // The first build's failures were reported; watching goes on regardless.
    let _ = out.finish(pipeline.finish());
    out.line(&format!(
        "Watching {} for changes",
        set.roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    loop {
        let batch = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            batch = changes.next_batch(Duration::from_millis(args.debounce)) => batch,
        };
        if batch.is_empty() {
            break;
        }
        let affected: BTreeSet<String> = batch.iter().flat_map(|p| set.affected(p)).collect();
        if affected.is_empty() {
            continue;
        }
        let first = batch
            .iter()
            .next()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.line(&format!(
            "{first}{} changed; rebuilding {}",
            if batch.len() > 1 { " (and more)" } else { "" },
            affected.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        if let Err(e) = rebuild(args, &affected, &emulator, &options, &mut serving, out).await {
            // The plan itself failed (a broken manifest): say so and keep the old runtimes.
            out.error(&e);
        }
    }
    emulator.shutdown().await;
    Ok(())
}

/// Rebuilds the `affected` functions and swaps in every image that differs from the one
/// `serving` says runs (an edit that changes no byte of the binary reloads nothing).
async fn rebuild(
    args: &WatchArgs,
    affected: &BTreeSet<String>,
    emulator: &Emulator,
    options: &ServeOptions,
    serving: &mut BTreeMap<String, String>,
    out: &Output,
) -> Result<()> {
    let mut plan = args.image.build.plan()?;
    let served = emulator.function_names();
    plan.functions
        .retain(|f| affected.contains(&f.lambda_name) && served.contains(&f.lambda_name));
    if plan.functions.is_empty() {
        return Ok(());
    }
    let (pipeline, images) = super::images_of(plan, &args.image, out, false).await?;
    if let Some(mut images) = images {
        images
            .items
            .retain(|i| serving.get(&i.spec.lambda_name) != Some(&i.value.digest));
        let setups = pipeline.serve_setups(&images, options).await;
        for item in setups.items {
            let lambda_name = &item.spec.lambda_name;
            if !emulator.replace_launcher(lambda_name, item.value.launcher) {
                continue;
            }
            if let Some(image) = images
                .items
                .iter()
                .find(|i| i.spec.lambda_name == *lambda_name)
            {
                serving.insert(lambda_name.clone(), image.value.digest.clone());
                out.emit(Event::Reloaded {
                    function: serve::served(&image.value, emulator, lambda_name, None),
                });
            }
        }
    }
    // Failures were reported as they happened; the old runtimes keep serving.
    let _ = out.finish(pipeline.finish());
    Ok(())
}
