//! Benchmarks for batch-serving: criterion benches of the dispatch path (in
//! `benches/`), and the side-by-side comparison runner (`compare`), which
//! puts batch-serving and its peers through the same scenarios in one
//! process and writes `docs/benchmarks.md`.

pub mod batch_log;
pub mod batch_times;
pub mod burst;
pub mod closed_loop;
pub mod compare;
pub mod contenders;
pub mod cpu_time;
pub mod embed_ceiling;
pub mod embeddings;
pub mod floor;
pub mod memory;
pub mod nats_server;
pub mod onnx;
pub mod onnx_peers;
pub mod open_loop;
pub mod report;
pub mod soak;
pub mod thread_sched;
pub mod wakeup;
pub mod workload;
