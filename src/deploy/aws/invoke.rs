//! `invoke --remote`: invoke a deployed function through the Lambda API (Invoke, or
//! InvokeWithResponseStream for a function that streams), with its log tail, as a smoke test
//! right after a deploy. The same calls work against `serve` as the endpoint.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvokeWithResponseStreamResponseEvent, LogType};
use base64::Engine;

use crate::aws::{self, AwsOptions, Clients};
use crate::error::Result;
use crate::serve::Invoked;

/// What to invoke.
#[derive(Debug, Clone, Default)]
pub struct RemoteInvoke {
    /// The function's name or ARN.
    pub function: String,
    /// A version or alias.
    pub qualifier: Option<String>,
    /// The event.
    pub payload: Vec<u8>,
    /// Use InvokeWithResponseStream.
    pub stream: bool,
}

/// Invokes the deployed function and returns its answer and decoded log tail.
pub async fn invoke(opts: &AwsOptions, request: &RemoteInvoke) -> Result<Invoked> {
    let clients = Clients::new(opts, None, &request.function).await?;
    if request.stream {
        return invoke_streaming(&clients, request).await;
    }
    let output = clients
        .lambda
        .invoke()
        .function_name(&request.function)
        .set_qualifier(request.qualifier.clone())
        .log_type(LogType::Tail)
        .payload(Blob::new(request.payload.clone()))
        .send()
        .await
        .map_err(|e| aws::error("lambda", &format!("Invoke of `{}`", request.function), e))?;
    let response = output
        .payload()
        .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
        .unwrap_or_default();
    // A function error's type is in its body; the header only says it was unhandled.
    let function_error = output.function_error().map(|header| {
        serde_json::from_str::<serde_json::Value>(&response)
            .ok()
            .and_then(|v| v["errorType"].as_str().map(str::to_string))
            .unwrap_or_else(|| header.to_string())
    });
    Ok(Invoked {
        function: request.function.clone(),
        remote: true,
        status: u16::try_from(output.status_code()).unwrap_or(0),
        executed_version: output.executed_version().map(str::to_string),
        function_error,
        response,
        log_tail: output.log_result().and_then(decode_log),
    })
}

async fn invoke_streaming(clients: &Clients, request: &RemoteInvoke) -> Result<Invoked> {
    let operation = &format!("InvokeWithResponseStream of `{}`", request.function);
    let mut output = clients
        .lambda
        .invoke_with_response_stream()
        .function_name(&request.function)
        .set_qualifier(request.qualifier.clone())
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(request.payload.clone()))
        .send()
        .await
        .map_err(|e| aws::error("lambda", operation, e))?;
    let mut response = Vec::new();
    let mut function_error = None;
    let mut log_tail = None;
    while let Some(event) = output
        .event_stream
        .recv()
        .await
        .map_err(|e| aws::error("lambda", operation, e))?
    {
        match event {
            InvokeWithResponseStreamResponseEvent::PayloadChunk(chunk) => {
                if let Some(bytes) = chunk.payload() {
                    response.extend_from_slice(bytes.as_ref());
                }
            }
            InvokeWithResponseStreamResponseEvent::InvokeComplete(complete) => {
                function_error = complete.error_code().map(str::to_string);
                log_tail = complete.log_result().and_then(decode_log);
                if let (Some(details), true) = (complete.error_details(), response.is_empty()) {
                    response.extend_from_slice(details.as_bytes());
                }
            }
            // Event kinds newer than this SDK carry nothing the answer needs.
            _ => {}
        }
    }
    Ok(Invoked {
        function: request.function.clone(),
        remote: true,
        status: 200,
        executed_version: output.executed_version().map(str::to_string),
        function_error,
        response: String::from_utf8_lossy(&response).into_owned(),
        log_tail,
    })
}

fn decode_log(base64: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
