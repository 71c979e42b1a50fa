//! Benchmarks for batch-serving. The criterion benches are in `benches/`; the side-by-side comparison runner is still to come (see the benchmarks issue).
