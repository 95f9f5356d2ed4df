//! The {{function}} Lambda function.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};

/// What the function receives.
#[derive(Deserialize)]
struct Request {
    name: String,
}

/// What the function answers.
#[derive(Serialize)]
struct Response {
    message: String,
}

async fn handler(event: LambdaEvent<Request>) -> Result<Response, Error> {
    Ok(Response {
        message: format!("Hello, {}!", event.payload.name),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
