//! Tests of the telemetry hub.
