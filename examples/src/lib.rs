//! Shared pieces of the runnable examples: flag parsing, the MobileNet
//! configuration they share, the HTTP server's router, Prometheus text, and a
//! minimal HTTP client for the load tester.

pub mod args;
pub mod client;
pub mod http;
pub mod metrics;
pub mod setup;
