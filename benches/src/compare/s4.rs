//! S4: MobileNetV2 on ONNX Runtime (CPU), through the serving against
//! direct session runs.

use std::time::Duration;

use batch_serving::Policy;
use tokio::runtime::Runtime;

use crate::compare::common::{Options, Section, standing_row};
use crate::onnx::OnnxSetup;
use crate::onnx_peers::OnnxPeer;
use crate::report::{Spread, table};

/// The adaptive column's latency target: above what 64 callers wait at
/// these rates (about 0.25 s), so that it shows what the policy costs where
/// the target is met, not how it refuses.
const ADAPTIVE_TARGET: Duration = Duration::from_secs(1);

/// Runs S4 (or says why it was skipped) and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut section = Section {
        markdown: "\n## S4: MobileNetV2 on ONNX Runtime (CPU)\n\n".to_owned(),
        ..Section::default()
    };
    match OnnxSetup::find() {
        Err(why) => section.markdown.push_str(&format!("Skipped: {why}.\n")),
        Ok(onnx) => {
            let text = rt.block_on(onnx_scenario(&onnx, options, &mut section.targets));
            section.markdown.push_str(&text);
        }
    }
    section
}

/// The S4 cells and their table.
pub async fn onnx_scenario(onnx: &OnnxSetup, options: &Options, targets: &mut String) -> String {
    let mut out = String::from(
        "64 closed-loop callers through the serving (eager) against direct session runs in a loop at the best batch size of 1, 8 and 32, with the same threads; the serving's `batch_size` is that same best size, as a user would tune it. The adaptive column is the same serving under `latency_target(1 s)` with that size as its cap; a caller it refuses at admission waits 10 ms before its next call. Inputs are pre-processed tensors; each caller sends its own copy. The library peers get the same sessions, the same 64 callers, the same inputs checked against the model on the caller's side, and the same `batch_size`: amate with one worker per session, batch-aint-one with as many batches at once as sessions and its `process` handing each batch to tokio's blocking pool (a model run on a runtime worker would stall it).\n\n",
    );
    // Shorter cells than S1-S3 keep the whole run within five minutes; one
    // image takes milliseconds, so 2 s still covers hundreds of images.
    let sweep = options.cell.min(Duration::from_secs(1));
    let cell = options.cell.min(Duration::from_secs(2));
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    // Each configuration's direct and served figures over the repetitions.
    let mut bests: Vec<(Spread, Spread)> = Vec::new();
    for (partitions, threads) in [(2usize, 1usize), (1, 2)] {
        let mut best = (0.0, 1);
        for batch in [1, 8, 32] {
            match onnx.direct(partitions, threads, batch, sweep) {
                Ok(rate) if rate > best.0 => best = (rate, batch),
                Ok(_) => {}
                Err(e) => return format!("Skipped: {e}.\n"),
            }
        }
        let (mut direct, mut served, mut mean_batch) = (Vec::new(), Vec::new(), Vec::new());
        let (mut adaptive, mut refused) = (Vec::new(), 0u64);
        let mut peers: Vec<(Vec<f64>, Vec<f64>)> =
            vec![(Vec::new(), Vec::new()); OnnxPeer::ALL.len()];
        let adaptive_policy = Policy::Adaptive {
            target: ADAPTIVE_TARGET,
        };
        for rep in 0..options.reps {
            match (
                onnx.direct(partitions, threads, best.1, cell),
                onnx.served(partitions, threads, (best.1, Policy::Eager), 64, cell)
                    .await,
                onnx.served(partitions, threads, (best.1, adaptive_policy), 64, cell)
                    .await,
            ) {
                (Ok(d), Ok((s, b, _)), Ok((a, _, r))) => {
                    eprintln!(
                        "S4 rep {rep} {partitions}x{threads}: direct {d:.0}/s, served {s:.0}/s, adaptive {a:.0}/s ({r} refused)"
                    );
                    direct.push(d);
                    served.push(s);
                    mean_batch.push(b);
                    adaptive.push(a);
                    refused += r;
                }
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    return format!("Failed: {e}.\n");
                }
            }
            for (peer, (rates, batches)) in OnnxPeer::ALL.into_iter().zip(peers.iter_mut()) {
                match onnx
                    .peer_served(peer, (partitions, threads), best.1, 64, cell)
                    .await
                {
                    Ok((rate, batch)) => {
                        eprintln!(
                            "S4 rep {rep} {partitions}x{threads}: {} {rate:.0}/s",
                            peer.name()
                        );
                        rates.push(rate);
                        batches.push(batch);
                    }
                    Err(e) => return format!("Failed: {}: {e}.\n", peer.name()),
                }
            }
        }
        let (d, s) = (Spread::of(&direct), Spread::of(&served));
        let a = Spread::of(&adaptive);
        ratios.push(s.median / d.median.max(1e-9));
        bests.push((d, s));
        // The best library peer in this configuration, held against the
        // served row.
        let peer_spreads: Vec<Spread> = peers.iter().map(|(r, _)| Spread::of(r)).collect();
        if let Some((peer, theirs)) = OnnxPeer::ALL
            .into_iter()
            .zip(peer_spreads.iter().copied())
            .max_by(|a, b| a.1.median.total_cmp(&b.1.median))
        {
            targets.push_str(&standing_row(
                &format!("S4 {partitions} × {threads}: served ≥ the best library peer"),
                &s,
                &theirs,
                format!(
                    "{:.3}× {} ({} against {} img/s)",
                    s.median / theirs.median.max(1e-9),
                    peer.name(),
                    s.show(1.0, 1),
                    theirs.show(1.0, 1)
                ),
            ));
        }
        let mut peer_cells: Vec<String> = peer_spreads
            .iter()
            .zip(&peers)
            .map(|(rate, (_, batches))| {
                format!(
                    "{} (batch {:.1})",
                    rate.show(1.0, 1),
                    Spread::of(batches).median
                )
            })
            .collect();
        rows.push(vec![
            format!("{partitions} × {threads}"),
            format!("{} (batch {})", d.show(1.0, 1), best.1),
            s.show(1.0, 1),
            format!("{:.1}", Spread::of(&mean_batch).median),
            format!("{:.3}", s.median / d.median.max(1e-9)),
            format!("{} ({refused} refused)", a.show(1.0, 1)),
        ]);
        if let Some(row) = rows.last_mut() {
            row.append(&mut peer_cells);
        }
    }
    out.push_str(&table(
        &[
            "partitions × threads",
            "direct img/s",
            "served img/s",
            "served mean batch",
            "served / direct",
            "adaptive img/s",
            "amate 0.16.2 img/s",
            "batch-aint-one 0.16.0 (Immediate) img/s",
            "batch-aint-one 0.16.0 (Balanced) img/s",
        ],
        &rows,
    ));
    // The measure: the best served configuration against the best
    // direct one; each configuration's own ratio is in the table, and the
    // worst of them is shown beside the verdict.
    let best_of = |pick: &dyn Fn(&(Spread, Spread)) -> Spread| {
        bests
            .iter()
            .map(pick)
            .max_by(|a, b| a.median.total_cmp(&b.median))
            .unwrap_or_default()
    };
    let (best_direct, best_served) = (best_of(&|b| b.0), best_of(&|b| b.1));
    let ratio = best_served.median / best_direct.median.max(1e-9);
    let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let copy = onnx.input_copy_cost();
    out.push_str(&format!(
        "\nThe best served configuration ran {ratio:.3}× the best direct one; per configuration, served / direct ran {worst:.3}–{:.3}×. One cost a served call has and a direct run does not is its caller's own copy of the input (a fresh 3 × 224 × 224 tensor): {:.0} µs here, {:.1}% of the two cores at the best served rate.\n",
        ratios.iter().copied().fold(0.0, f64::max),
        copy.as_secs_f64() * 1e6,
        copy.as_secs_f64() * best_served.median / 2.0 * 100.0,
    ));
    targets.push_str(&standing_row(
        "S4 served ≥ 0.97 × direct",
        &best_served,
        &best_direct.scaled(0.97),
        format!("{ratio:.3}× best to best (per configuration {worst:.3}× at worst)"),
    ));
    out
}
