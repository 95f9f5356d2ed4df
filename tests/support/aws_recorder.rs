//! An AWS SDK interceptor that records every request the library sends (service, operation,
//! body), so tests can assert what was SENT even where moto ignores it.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
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

/// The recorder; clone it freely, all clones share the log.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<Recorded>>>,
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
}
