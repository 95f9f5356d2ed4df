//! The deploy's adapters to AWS: every call to Lambda and IAM a deploy, a release, a prune or
//! a remote invoke makes, and every conversion between the SDK's types and the model's
//! ([`super::model`]). Nothing here decides what to change; the plan did.

pub(crate) mod alias;
pub(crate) mod iam;
pub mod invoke;
pub(crate) mod lambda;
pub mod observe;
