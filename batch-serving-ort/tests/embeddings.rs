//! all-MiniLM-L6-v2 through the embedder, on the real model and ONNX
//! Runtime: similarities match sentence-transformers, padding and batching
//! do not change a sentence's vector, and length buckets keep batches apart.

#![allow(clippy::unwrap_used)]

mod support;

use batch_serving::{Error, Event};
use batch_serving_ort::embedding::{
    EMBEDDED_EVENT, EmbeddedBatch, Embedder, LengthBuckets, Overflow, Padding, TextTokenizer,
    cosine_similarity, synthetic_corpus,
};
use batch_serving_ort::{MiniLmFiles, OrtError, SessionOptions};
use futures::StreamExt;

const FOOD: &str = "A man is eating food.";
const BREAD: &str = "A man is eating a piece of bread.";
const HORSE: &str = "A man is riding a horse.";

fn embedder(files: &MiniLmFiles) -> batch_serving_ort::embedding::EmbedderBuilder {
    Embedder::builder(files.clone()).session_options(SessionOptions::default().intra_threads(2))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every batch's cost report, from a streamed call.
async fn embed_streamed(
    embedder: &Embedder,
    texts: &[String],
) -> (Vec<Vec<f32>>, Vec<EmbeddedBatch>) {
    let mut vectors = vec![Vec::new(); texts.len()];
    let mut batches = Vec::new();
    let mut events = embedder.embed_stream(texts).unwrap();
    while let Some(event) = events.next().await {
        match event.unwrap() {
            Event::Output { offset, outputs } => {
                for (i, v) in outputs.into_iter().enumerate() {
                    vectors[offset + i] = v;
                }
            }
            Event::Hook(hook) => {
                assert_eq!(hook.name, EMBEDDED_EVENT);
                batches.push(*hook.payload::<EmbeddedBatch>().unwrap());
            }
        }
    }
    (vectors, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarities_match_sentence_transformers() {
    let Some(files) = support::minilm() else {
        return;
    };
    let embedder = embedder(&files).start().unwrap();
    let [food, bread, horse] = [FOOD, BREAD, HORSE].map(|s| {
        let embedder = embedder.clone();
        tokio::spawn(async move { embedder.embed(s).await.unwrap() })
    });
    let (food, bread, horse) = (
        food.await.unwrap(),
        bread.await.unwrap(),
        horse.await.unwrap(),
    );
    assert_eq!(food.len(), 384);
    let norm: f32 = food.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    // Reference values: sentence-transformers (PyTorch) on the same weights.
    let food_bread = cosine_similarity(&food, &bread);
    let food_horse = cosine_similarity(&food, &horse);
    assert!(
        (food_bread - 0.7553).abs() < 1e-3,
        "food/bread {food_bread}"
    );
    assert!(
        (food_horse - 0.2474).abs() < 1e-3,
        "food/horse {food_horse}"
    );
}

#[test]
fn the_tokenizer_is_unpadded_bert_wordpiece() {
    let Some(files) = support::minilm() else {
        return;
    };
    let tokenizer = TextTokenizer::load(&files.tokenizer, 128, Overflow::Truncate).unwrap();
    let tokens = tokenizer.tokenize(FOOD).unwrap();
    assert_eq!(tokens.ids(), [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]);
}

#[test]
fn the_synthetic_corpus_has_the_token_lengths_it_promises() {
    let Some(files) = support::minilm() else {
        return;
    };
    let tokenizer = TextTokenizer::load(&files.tokenizer, 512, Overflow::Truncate).unwrap();
    let corpus = synthetic_corpus(200, 6..=128, 3);
    let lengths: Vec<usize> = corpus
        .iter()
        .map(|s| tokenizer.tokenize(s).unwrap().len())
        .collect();
    // Each sentence is exactly `words + 3` tokens, and the spread covers the range.
    for (sentence, &length) in corpus.iter().zip(&lengths) {
        assert_eq!(length, sentence.split(' ').count() + 3, "{sentence}");
    }
    assert!(lengths.iter().all(|n| (6..=128).contains(n)));
    assert!(*lengths.iter().min().unwrap() < 20 && *lengths.iter().max().unwrap() > 110);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentence_embeds_the_same_alone_and_inside_a_padded_batch() {
    let Some(files) = support::minilm() else {
        return;
    };
    let embedder = embedder(&files)
        .buckets(LengthBuckets::single())
        .serving(|b| b.batch_size(8))
        .start()
        .unwrap();
    let alone = embedder.embed(FOOD).await.unwrap();
    let mut texts = synthetic_corpus(7, 20..=40, 11);
    texts.insert(3, FOOD.to_owned());
    let (vectors, batches) = embed_streamed(&embedder, &texts).await;
    // One batch of eight, padded well past FOOD's 8 tokens.
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].sentences, 8);
    assert!(batches[0].width >= 20, "{batches:?}");
    let diff = max_abs_diff(&alone, &vectors[3]);
    assert!(diff <= 1e-5, "alone vs padded batch: {diff}");
    // Fixed padding to 128 gives the same vector too.
    let fixed = embedder_fixed(&files).embed(FOOD).await.unwrap();
    assert!(max_abs_diff(&alone, &fixed) <= 1e-5);
}

fn embedder_fixed(files: &MiniLmFiles) -> Embedder {
    embedder(files)
        .padding(Padding::Fixed(128))
        .start()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_buckets_keep_short_and_long_sentences_in_separate_batches() {
    let Some(files) = support::minilm() else {
        return;
    };
    let short = synthetic_corpus(4, 6..=6, 1);
    let long = synthetic_corpus(4, 30..=30, 2);
    let texts: Vec<String> = short.iter().chain(&long).cloned().collect();

    let bucketed = embedder(&files)
        .buckets(LengthBuckets::new([8, 16, 32]))
        .serving(|b| b.batch_size(8))
        .start()
        .unwrap();
    let (by_bucket, batches) = embed_streamed(&bucketed, &texts).await;
    let mut widths: Vec<(usize, usize)> = batches.iter().map(|b| (b.width, b.sentences)).collect();
    widths.sort_unstable();
    assert_eq!(
        widths,
        [(6, 4), (30, 4)],
        "no padding beyond each bucket's own longest"
    );

    let mixed = embedder(&files)
        .buckets(LengthBuckets::single())
        .serving(|b| b.batch_size(8))
        .start()
        .unwrap();
    let (together, batches) = embed_streamed(&mixed, &texts).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].padded_tokens(), 8 * 30);
    assert_eq!(batches[0].real_tokens, 4 * 6 + 4 * 30);
    for (a, b) in by_bucket.iter().zip(&together) {
        assert!(max_abs_diff(a, b) <= 1e-5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_string_embeds_as_cls_sep() {
    let Some(files) = support::minilm() else {
        return;
    };
    let embedder = embedder(&files).start().unwrap();
    assert_eq!(embedder.tokenizer().tokenize("").unwrap().ids(), [101, 102]);
    let empty = embedder.embed("").await.unwrap();
    let blank = embedder.embed("  \t ").await.unwrap();
    let norm: f32 = empty.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!(max_abs_diff(&empty, &blank) <= 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_text_is_truncated_by_default() {
    let Some(files) = support::minilm() else {
        return;
    };
    let embedder = embedder(&files).max_tokens(16).start().unwrap();
    let head = synthetic_corpus(1, 40..=40, 5).remove(0).replace('.', "");
    let (a, b) = (
        format!("{head} the red car."),
        format!("{head} a quiet river under the bridge."),
    );
    assert_eq!(embedder.tokenizer().tokenize(&a).unwrap().len(), 16);
    let (a, b) = (
        embedder.embed(&a).await.unwrap(),
        embedder.embed(&b).await.unwrap(),
    );
    assert!(
        max_abs_diff(&a, &b) <= 1e-6,
        "only the first 16 tokens count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_text_is_refused_for_its_caller_only_under_reject() {
    let Some(files) = support::minilm() else {
        return;
    };
    let embedder = embedder(&files)
        .max_tokens(16)
        .overflow(Overflow::Reject)
        .start()
        .unwrap();
    let long = synthetic_corpus(1, 17..=17, 5).remove(0);
    let fits = synthetic_corpus(1, 16..=16, 6).remove(0);
    let (refused, fine) = tokio::join!(embedder.embed(&long), embedder.embed(&fits));
    assert!(matches!(
        refused,
        Err(Error::Preprocess(OrtError::TooManyTokens {
            max_tokens: 16
        }))
    ));
    assert_eq!(fine.unwrap().len(), 384);
    // In one call, one refused sentence fails the call before anything is queued.
    let many = embedder.embed_many(&[fits, long]).await;
    assert!(matches!(
        many,
        Err(Error::Preprocess(OrtError::TooManyTokens { .. }))
    ));
    assert_eq!(embedder.serving().stats().items, 1);
}

#[test]
fn a_token_limit_beyond_the_encoder_is_refused_at_start() {
    let Some(files) = support::minilm() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let error = embedder(&files).max_tokens(600).start().unwrap_err();
    assert!(matches!(error, OrtError::Configuration(_)), "{error}");
}

#[test]
fn a_model_that_is_not_an_encoder_is_refused_at_start() {
    let (Some(files), Some(mobilenet)) = (support::minilm(), support::mobilenet()) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let wrong = MiniLmFiles {
        model: mobilenet.model,
        tokenizer: files.tokenizer,
    };
    let error = Embedder::builder(wrong).start().unwrap_err();
    assert!(matches!(error, OrtError::UnsupportedModel(_)), "{error}");
}

/// Long texts are cut before tokenizing, and the cut never changes the kept
/// tokens: compared with the tokenizer library run on the whole text.
#[test]
fn cutting_long_text_before_tokenizing_keeps_the_same_tokens() {
    let Some(files) = support::minilm() else {
        return;
    };
    let mut whole = tokenizers::Tokenizer::from_file(&files.tokenizer).unwrap();
    whole.with_padding(None);
    let texts = [
        "The quick brown fox, it said, jumps over the lazy dog! ".repeat(400),
        "ünïcödé wörds and   extra\twhitespace\n, punctuation... (brackets) ".repeat(300),
        format!("{}{}", "x".repeat(5_000), " tail".repeat(500)),
        "短い 文章 mixed with English words ".repeat(200),
    ];
    for max_tokens in [16, 128] {
        whole
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .unwrap();
        let tokenizer =
            TextTokenizer::load(&files.tokenizer, max_tokens, Overflow::Truncate).unwrap();
        let rejecting =
            TextTokenizer::load(&files.tokenizer, max_tokens, Overflow::Reject).unwrap();
        for text in &texts {
            let expected: Vec<i64> = whole
                .encode(text.as_str(), true)
                .unwrap()
                .get_ids()
                .iter()
                .map(|&id| i64::from(id))
                .collect();
            assert_eq!(
                tokenizer.tokenize(text).unwrap().ids(),
                expected,
                "{max_tokens}"
            );
            assert!(matches!(
                rejecting.tokenize(text),
                Err(OrtError::TooManyTokens { .. })
            ));
        }
    }
}
