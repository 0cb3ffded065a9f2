//! Runs every example's `main`, so the examples are proved to work, not only to compile.

#[path = "../embed_pipeline.rs"]
mod embed_pipeline;

#[path = "../custom_sink.rs"]
mod custom_sink;

#[test]
fn embed_pipeline_runs() {
    embed_pipeline::main().expect("embed_pipeline");
}

#[test]
fn custom_sink_runs() {
    custom_sink::main().expect("custom_sink");
}
