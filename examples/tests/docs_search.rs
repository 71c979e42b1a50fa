//! The demo's index of real text: the paragraphs of the guide and the
//! README, embedded with all-MiniLM-L6-v2, answer "what happens to queued
//! calls at shutdown?" with the paragraph that says so.

#![allow(clippy::unwrap_used)]

mod common;

use batch_serving_examples::paragraphs::paragraphs;
use batch_serving_examples::vector_index::VectorIndex;
use batch_serving_ort::embedding::Embedder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_question_finds_the_paragraph_about_queued_calls_at_shutdown() {
    let Some(files) = common::minilm_files("the docs search test") else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut texts = Vec::new();
    for file in ["README.md", "docs/guide.md"] {
        let markdown = std::fs::read_to_string(root.join(file)).unwrap();
        texts.extend(paragraphs(file, &markdown).into_iter().map(|p| p.text));
    }
    assert!(texts.len() > 40, "the docs have {} paragraphs", texts.len());
    let embedder = Embedder::builder(files).start().unwrap();
    let mut vectors = Vec::new();
    for chunk in texts.chunks(16) {
        vectors.extend(embedder.embed_many(chunk).await.unwrap());
    }
    let index = VectorIndex { texts, vectors };
    let query = embedder
        .embed("what happens to queued calls at shutdown?")
        .await
        .unwrap();
    let top = &index.search(&query, 1)[0];
    assert!(
        top.text.contains("shutdown") && top.text.contains("queued"),
        "the best match is about something else: {}",
        top.text
    );
}
