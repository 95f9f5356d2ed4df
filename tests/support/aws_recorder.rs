//! An AWS SDK interceptor that records every request the library sends (service, operation,
//! body), so tests can assert what was SENT even where moto ignores it.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The service, as the SDK names it (`ECR`, `IAM`, `Lambda`).
    pub service: String,
    /// The operation, e.g. `CreateFunction`.
    pub operation: String,
    /// The serialized body, as text (JSON for Lambda/ECR, a query string for IAM).
    pub body: String,
}

impl Recorded {
    /// The body as JSON (panics for a body that is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", self.operation, self.body))
    }
}

/// An answer given in place of the server's, for an API moto does not have: the status, the
/// JSON body, and for errors the error type (`x-amzn-errortype`).
pub type Answer = (u16, String, Option<&'static str>);

/// Gives the answer to a request (operation, body) that moto cannot answer, or `None` to keep
/// moto's.
pub type Responder = Arc<dyn Fn(&str, &str) -> Option<Answer> + Send + Sync>;

/// The recorder; clone it freely, all clones share the log.
#[derive(Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Mutex<Option<Responder>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// The interceptor to hand to the library.
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// Everything recorded so far, and clears the log.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Answers the requests `responder` takes (see [`Responder`]) in place of moto. Only for
    /// APIs moto lacks: the request still goes to moto, and its 404 is replaced.
    pub fn respond_with(&self, responder: Responder) {
        *self.responder.lock().unwrap() = Some(responder);
    }

    /// The operation names of a log.
    pub fn operations(log: &[Recorded]) -> Vec<String> {
        log.iter().map(|r| r.operation.clone()).collect()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "TestRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.log.lock().unwrap().push(Recorded {
            service,
            operation,
            body,
        });
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(responder) = self.responder.lock().unwrap().clone() else {
            return Ok(());
        };
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        // The request body this answer belongs to: the last one recorded for the operation.
        let body = self
            .log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.operation == operation)
            .map(|r| r.body.clone())
            .unwrap_or_default();
        if let Some((status, json, error_type)) = responder(&operation, &body) {
            let mut response =
                HttpResponse::new(StatusCode::try_from(status)?, SdkBody::from(json));
            response
                .headers_mut()
                .insert("content-type", "application/json");
            if let Some(error_type) = error_type {
                response
                    .headers_mut()
                    .insert("x-amzn-errortype", error_type);
            }
            *context.response_mut() = response;
        }
        Ok(())
    }
}
