//! The examples are programs (`cargo run -p examples --example embed_pipeline`); the tests in
//! `tests/` run each one's `main` so CI proves they work, not only that they compile.
