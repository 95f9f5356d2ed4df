//! `prune`: the images of a function's ECR repository that nothing on Lambda uses, listed, and
//! with `--yes` deleted.
//!
//! "Used" means the image `$LATEST` or any published version runs, for every function (and
//! architecture) deployed from the repository; aliases point at versions, so what they use is
//! included. A repository none of whose functions exists is left alone: nothing would be known
//! to be in use, and deleting every image is not what a prune is for.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::aws::Clients;
use crate::config::FunctionSpec;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::publish::lifecycle::{self, StoredImage};

use super::aws::{alias, lambda};
use super::DeployOptions;

/// What [`prune`] found in one repository, and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// The repository.
    pub repository: String,
    /// The functions deployed from it (their Lambda names).
    pub functions: Vec<String>,
    /// How many of its images are in use.
    pub used: usize,
    /// The images nothing uses.
    pub unused: Vec<StoredImage>,
    /// Whether they were deleted (`--yes`).
    pub deleted: bool,
    /// Images ECR refused to delete, with its reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<(String, String)>,
}

/// Prunes the repositories of `specs` (each repository once, with all the functions and
/// architectures deployed from it); deletes only with `delete`.
pub async fn prune(
    specs: &[FunctionSpec],
    opts: &DeployOptions,
    delete: bool,
    reporter: &Reporter,
) -> Result<Vec<Pruned>> {
    let mut repositories: BTreeMap<(Option<String>, String), Vec<&FunctionSpec>> = BTreeMap::new();
    for spec in specs {
        let key = (spec.deploy.region.clone(), spec.image.repository.clone());
        repositories.entry(key).or_default().push(spec);
    }
    let mut results = Vec::new();
    for ((region, repository), specs) in repositories {
        let clients = Clients::new(&opts.aws, region.as_deref(), &specs[0].lambda_name).await?;
        results.push(prune_one(&clients, &repository, &specs, delete, reporter).await?);
    }
    Ok(results)
}

async fn prune_one(
    clients: &Clients,
    repository: &str,
    specs: &[&FunctionSpec],
    delete: bool,
    reporter: &Reporter,
) -> Result<Pruned> {
    let mut used = BTreeSet::new();
    let mut functions = Vec::new();
    for spec in specs {
        let name = spec.lambda_name.as_str();
        let Some(latest) = lambda::image_digest(&clients.lambda, name, "$LATEST").await? else {
            continue;
        };
        functions.push(name.to_string());
        used.insert(latest);
        let versions = alias::published_versions(&clients.lambda, name).await?;
        used.extend(versions.iter().filter_map(|v| v.digest()));
    }
    if functions.is_empty() {
        return Err(Error::Deploy {
            function: specs[0].lambda_name.clone(),
            message: format!(
                "no function deployed from `{repository}` exists in this account and region, so no image is known to be in use"
            ),
            help: "check --region and the profile; to empty the repository, delete its images with the AWS CLI".into(),
        });
    }
    let images = lifecycle::images(&clients.ecr, repository).await?;
    let unused: Vec<StoredImage> = images
        .iter()
        .filter(|(digest, _)| !used.contains(*digest))
        .map(|(digest, tags)| StoredImage {
            digest: digest.clone(),
            tags: tags.clone(),
        })
        .collect();
    let mut refused = Vec::new();
    if delete && !unused.is_empty() {
        let digests: Vec<String> = unused.iter().map(|i| i.digest.clone()).collect();
        refused = lifecycle::delete(&clients.ecr, repository, &digests).await?;
        reporter.line(format!(
            "✓ Deleted {} unused image(s) of {repository}",
            digests.len() - refused.len()
        ));
    }
    Ok(Pruned {
        repository: repository.to_string(),
        functions,
        used: images.len() - unused.len(),
        unused,
        deleted: delete,
        refused,
    })
}
