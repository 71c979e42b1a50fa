//! S5: sentence embeddings (all-MiniLM-L6-v2, CPU): length buckets and
//! padding against one bucket and against the session's own ceiling.

use std::sync::Arc;
use std::time::Duration;

use batch_serving_examples::chart::{Axis, Bars, Panel, Plot};
use tokio::runtime::Runtime;

use crate::compare::common::{Options, Section, verdict};
use crate::embed_ceiling;
use crate::embeddings::{ADAPTIVE_TARGET, Batching, EmbedCell, EmbedSetup};
use crate::report::{Spread, table};

/// Runs S5 (or says why it was skipped) and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut section = Section {
        markdown: "\n## S5: sentence embeddings (all-MiniLM-L6-v2, CPU)\n\n".to_owned(),
        ..Section::default()
    };
    match EmbedSetup::find() {
        Err(why) => section.markdown.push_str(&format!("Skipped: {why}.\n")),
        Ok(setup) => {
            let text = rt.block_on(embeddings_scenario(
                &setup,
                options,
                options.quick,
                &mut section.targets,
                &mut section.charts,
            ));
            section.markdown.push_str(&text);
        }
    }
    section
}

/// A corpus for S5: its name, its token range and the target it carries.
#[derive(Debug)]
pub struct EmbedCorpus {
    name: &'static str,
    tokens: std::ops::RangeInclusive<usize>,
    sentences: usize,
}

/// The S5 cells and their tables.
pub async fn embeddings_scenario(
    setup: &EmbedSetup,
    options: &Options,
    quick: bool,
    targets: &mut String,
    charts: &mut Vec<(String, Vec<Panel>)>,
) -> String {
    let corpora = [
        EmbedCorpus {
            name: "short sentences, 6–32 tokens",
            tokens: 6..=32,
            sentences: if quick { 96 } else { 192 },
        },
        EmbedCorpus {
            name: "mixed lengths, 8–128 tokens",
            tokens: 8..=128,
            sentences: if quick { 64 } else { 128 },
        },
    ];
    // Calls that end inside the window count; it opens after the warm-up.
    let (warm_up, window) = if quick {
        (Duration::from_millis(250), Duration::from_millis(500))
    } else {
        (Duration::from_millis(400), Duration::from_millis(1500))
    };
    let mut out = format!(
        "64 closed-loop callers cycle through a generated corpus (`synthetic_corpus`, fixed seeds), one sentence per call; sentences/s counts the calls that end inside a measured window of {:.2} s that opens after {:.2} s of warm-up (calls still waiting when it closes are dropped), so the ramp-up and the drain do not count. One partition with 2 intra-op threads, eager policy; batches hold at most 16 sentences. (d) uses the default bucket edges (`DEFAULT_BUCKET_EDGES`: 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 112, 128). (e) is (d) under `latency_target` ({} ms, with 16 as the cap), each sentence weighed by its tokens; a caller it refuses at admission waits 10 ms before its next call. Token counts include `[CLS]` and `[SEP]`.\n",
        window.as_secs_f64(),
        warm_up.as_secs_f64(),
        ADAPTIVE_TARGET.as_millis(),
    );
    // corpus -> batching -> repetitions, run interleaved so that drift in
    // the machine's speed hits every variant alike.
    let mut cells: Vec<Vec<Vec<EmbedCell>>> =
        vec![vec![Vec::new(); Batching::ALL.len()]; corpora.len()];
    let texts: Vec<Arc<Vec<String>>> = corpora
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Arc::new(batch_serving_ort::embedding::synthetic_corpus(
                c.sentences,
                c.tokens.clone(),
                100 + i as u64,
            ))
        })
        .collect();
    for rep in 0..options.reps {
        for (c, corpus) in corpora.iter().enumerate() {
            for (b, batching) in Batching::ALL.iter().enumerate() {
                match setup.run(*batching, &texts[c], 64, warm_up, window).await {
                    Ok(cell) => {
                        eprintln!(
                            "S5 rep {rep} {} {}: {:.0}/s, mean batch {:.1}",
                            corpus.name,
                            batching.name(),
                            cell.per_second,
                            cell.mean_batch
                        );
                        cells[c][b].push(cell);
                    }
                    Err(e) => return format!("Failed: {e}.\n"),
                }
            }
        }
    }
    let median = |reps: &[EmbedCell], f: &dyn Fn(&EmbedCell) -> f64| {
        Spread::of(&reps.iter().map(f).collect::<Vec<_>>())
    };
    let mut panels = Vec::new();
    for (c, corpus) in corpora.iter().enumerate() {
        let rate_of = |b: Batching| {
            let index = Batching::ALL.iter().position(|x| *x == b).unwrap_or(0);
            median(&cells[c][index], &|x| x.per_second).median
        };
        let unbatched = rate_of(Batching::Unbatched).max(1e-9);
        let rows: Vec<Vec<String>> = Batching::ALL
            .iter()
            .zip(&cells[c])
            .map(|(batching, reps)| {
                let per_second = median(reps, &|x| x.per_second);
                vec![
                    batching.name().to_owned(),
                    per_second.show(1.0, 1),
                    format!("{:.0}", median(reps, &|x| x.p50.as_secs_f64() * 1e3).median),
                    format!("{:.0}", median(reps, &|x| x.p99.as_secs_f64() * 1e3).median),
                    format!("{:.1}", median(reps, &|x| x.mean_batch).median),
                    format!("{:.2}×", per_second.median / unbatched),
                    reps.iter().map(|x| x.refused).sum::<u64>().to_string(),
                ]
            })
            .collect();
        panels.push(Panel {
            title: format!("S5: {} sentences, {}", corpus.sentences, corpus.name),
            x: Axis::linear(""),
            y: Axis::linear("sentences/s (median)"),
            plot: Plot::Bars(Bars {
                categories: Batching::ALL
                    .iter()
                    .map(|b| short_name(*b).to_owned())
                    .collect(),
                series: vec![(
                    "sentences/s".to_owned(),
                    Batching::ALL.iter().map(|b| rate_of(*b)).collect(),
                )],
                stacked: false,
            }),
        });
        out.push_str(&format!(
            "\n{} sentences, {}:\n\n",
            corpus.sentences, corpus.name
        ));
        out.push_str(&table(
            &[
                "batching",
                "sentences/s median (min–max)",
                "p50 ms",
                "p99 ms",
                "mean batch",
                "vs (a)",
                "refused",
            ],
            &rows,
        ));
        let bucketed = rate_of(Batching::LengthBuckets);
        // What no way of forming batches could beat on this CPU.
        let grid = if c == 0 {
            &embed_ceiling::SHORT_GRID[..]
        } else {
            &embed_ceiling::MIXED_GRID[..]
        };
        let (files, corpus_texts) = (setup.files().clone(), Arc::clone(&texts[c]));
        let ceiling = tokio::task::spawn_blocking(move || {
            embed_ceiling::batching_ceiling(&files, &corpus_texts, 16, grid)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let ceiling_shown = match &ceiling {
            Ok(ceiling) => {
                out.push_str(&format!(
                    "\nThe ceiling for this corpus on this CPU: direct session runs, no serving, of full batches of 16 equally long sentences (nothing padded) take **{ceiling:.2}×** less time per sentence than one sentence at a time at its own length, weighted by the corpus's own lengths (`benches/src/embed_ceiling.rs`). (d) reached {:.0}% of that ceiling.\n",
                    bucketed / unbatched / ceiling * 100.0
                ));
                format!(" (ceiling {ceiling:.2}×)")
            }
            Err(e) => {
                out.push_str(&format!(
                    "\nThe batching ceiling could not be measured: {e}.\n"
                ));
                String::new()
            }
        };
        if c == 0 {
            let ratio = bucketed / unbatched;
            targets.push_str(&verdict(
                "S5 short corpus: (d) buckets ≥ 1.5× (a) unbatched",
                ratio,
                1.5,
                format!("{ratio:.2}×{ceiling_shown}"),
            ));
        } else {
            let ratio = bucketed / rate_of(Batching::FixedPadding).max(1e-9);
            targets.push_str(&verdict(
                "S5 mixed corpus: (d) buckets ≥ 1.6× (b) padded to 128",
                ratio,
                1.6,
                format!("{ratio:.2}×"),
            ));
        }
    }
    charts.push(("s5".to_owned(), panels));
    out
}

/// A batching mode's name short enough for a chart's axis.
fn short_name(batching: Batching) -> &'static str {
    match batching {
        Batching::Unbatched => "(a) unbatched",
        Batching::FixedPadding => "(b) padded to 128",
        Batching::PadToLongest => "(c) to longest",
        Batching::LengthBuckets => "(d) length buckets",
        Batching::Adaptive => "(e) adaptive",
    }
}
