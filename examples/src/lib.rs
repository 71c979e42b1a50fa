//! Shared pieces of the example applications: the MobileNet and embedder
//! settings they start (as clap flags), the HTTP server's router, the Prometheus exporter, and a
//! minimal HTTP client for the load tester, and for the embedding examples
//! their HTTP routes and a flat vector index.

pub mod chart;
pub mod client;
pub mod embed_http;
pub mod embed_setup;
pub mod front_door;
pub mod generated;
pub mod http;
pub mod json_errors;
pub mod metrics;
pub mod oip;
pub mod paragraphs;
pub mod serve;
pub mod setup;
pub mod vector_index;
