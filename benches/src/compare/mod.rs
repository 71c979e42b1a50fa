//! The comparison runner (`bin/compare.rs`): one module per scenario, each
//! returning its markdown section and the target rows it judges, so the
//! binary only parses flags and assembles the report.

pub mod common;
pub mod environment;
pub mod memory;
pub mod s1;
pub mod s2;
pub mod s3;
pub mod s4;
pub mod s5;
pub mod s6;
pub mod s7;
