//! Model checks of the crate's own synchronisation, run with
//! `RUSTFLAGS="--cfg loom" cargo test -p batch-serving --lib --release loom`.

mod loom_request;
