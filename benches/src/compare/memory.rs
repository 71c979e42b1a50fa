//! Memory per queued call, each contender in a fresh child process.

use crate::compare::common::{Options, Section, standing_row};
use crate::contenders::Kind;
use crate::memory;
use crate::report::{Spread, table};

/// Runs the memory measure and returns its section.
pub fn run(options: &Options) -> Section {
    let mut doc = String::new();
    let mut targets = String::new();
    doc.push_str("\n## Memory per queued call\n\n100 000 calls queued behind a held batch function, in a fresh process per measurement; resident memory beyond the same number of idle futures, each boxed and holding its item, in the same harness. So it counts each call's future (boxed as the library returns it, with only `map_err` around it), its queue entry and its reply slot, and not the item.\n\n");
    let mut rows = Vec::new();
    // The worst of our rows is the one held to the targets, against the
    // leanest library (the textbook loop is not one).
    let mut ours: Option<Spread> = None;
    let mut leanest: Option<(Kind, Spread)> = None;
    for kind in Kind::ALL.into_iter().filter(|k| !k.is_variant()) {
        let samples: Vec<f64> = (0..options.reps)
            .filter_map(|_| memory_in_child(&format!("{kind:?}")))
            .collect();
        let spread = Spread::of(&samples);
        if kind.is_ours() && !samples.is_empty() && ours.is_none_or(|o| spread.median > o.median) {
            ours = Some(spread);
        }
        if !kind.is_ours()
            && kind != Kind::Textbook
            && !samples.is_empty()
            && leanest.is_none_or(|(_, l)| spread.median < l.median)
        {
            leanest = Some((kind, spread));
        }
        rows.push(vec![
            kind.name().to_owned(),
            if samples.is_empty() {
                "-".to_owned()
            } else {
                spread.show(1.0, 0)
            },
        ]);
    }
    let many: Vec<f64> = (0..options.reps)
        .filter_map(|_| memory_in_child("dispatch_many"))
        .collect();
    rows.push(vec![
        "batch-serving, one dispatch_many of 100 000 items (per item, minus the item)".to_owned(),
        Spread::of(&many).show(1.0, 0),
    ]);
    doc.push_str(&table(&["contender", "bytes per queued call"], &rows));
    let ours = ours.unwrap_or_default();
    doc.push_str(&memory_accounting(ours.median));
    // Fewer bytes is better: the bound (or the peer) must be at least ours.
    targets.push_str(&standing_row(
        "memory ≤ 128 B per queued call",
        &Spread::point(128.0),
        &ours,
        format!("{} B", ours.show(1.0, 0)),
    ));
    if let Some((peer, theirs)) = leanest {
        doc.push_str(&leanest_peer_note(peer, theirs.median, ours.median));
        targets.push_str(&standing_row(
            "memory per queued call ≤ the leanest library peer's",
            &theirs,
            &ours,
            format!(
                "{} B against {} B ({})",
                ours.show(1.0, 0),
                theirs.show(1.0, 0),
                peer.name()
            ),
        ));
    }
    Section {
        markdown: doc,
        targets,
        charts: Vec::new(),
    }
}

/// Bytes per queued call for `what`, measured in a fresh child process.
pub fn memory_in_child(what: &str) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    // A contender that cannot queue behind a held function (one that runs
    // it on a runtime worker may wedge) gets no figure rather than a hang.
    let output = std::process::Command::new("timeout")
        .arg("20")
        .arg(exe)
        .args(["memory", what])
        .output()
        .ok()?;
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}

/// The child process's side of [`memory_in_child`]: measures and prints.
pub fn memory_child(what: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build();
    let Ok(runtime) = runtime else { return };
    let bytes = runtime.block_on(async {
        if what == "dispatch_many" {
            return memory::per_item_in_one_call().await;
        }
        let kind = Kind::ALL
            .iter()
            .copied()
            .find(|k| format!("{k:?}") == what)?;
        memory::per_queued_call(kind).await.ok().flatten()
    });
    if let Some(bytes) = bytes {
        println!("{bytes:.1}");
    }
    std::process::exit(0);
}

/// Where the leanest library peer's bytes per call differ from ours.
fn leanest_peer_note(peer: Kind, theirs: f64, ours: f64) -> String {
    let what = if peer == Kind::Amate {
        format!(
            "Its queue entry (`Queued<(u64, oneshot::Sender<u64>)>`, {} B) holds the item, a pointer to a tokio oneshot (one allocation that the caller's receiver shares) and the time queued, and it keeps nothing per call for priorities, deadlines, keys, many-item calls or queue-wait statistics, which is where ours differ: the call's state counts its unanswered items and its progress for cancellation, and the queue entry carries its position among priorities. ",
            std::mem::size_of::<amate::Queued<(u64, tokio::sync::oneshot::Sender<u64>)>>()
        )
    } else {
        String::new()
    };
    format!(
        "\nThe leanest library peer, {}, held {theirs:.0} B per queued call, {:.0} B fewer than ours. {what}\n",
        peer.name(),
        ours - theirs,
    )
}

/// What one queued call of batch-serving holds, part by part, from the
/// types' own sizes.
pub fn memory_accounting(measured: f64) -> String {
    // glibc's malloc: 8 bytes of header, rounded up to 16, and 32 at least.
    let chunk = |bytes: usize| ((bytes + 8).div_ceil(16) * 16).max(32);
    let parts = batch_serving::layout::queued_u64_call();
    let mut out = String::from(
        "\nWhat one queued `dispatch` of a `u64` holds in batch-serving, from the types' sizes:\n\n",
    );
    let mut held = 0;
    let mut future = 0;
    for (at, part) in parts.iter().enumerate() {
        let note = match (at, part.held) {
            (0, _) => {
                held += chunk(part.bytes);
                format!("one allocation of {} B", chunk(part.bytes))
            }
            (1, _) => {
                held += part.bytes;
                future = part.bytes;
                "held by the caller until answered".to_owned()
            }
            (_, true) => {
                held += part.bytes;
                "held until answered".to_owned()
            }
            (_, false) => "freed once the scheduler takes it".to_owned(),
        };
        out.push_str(&format!("- {}: {} B, {note}\n", part.name, part.bytes));
    }
    let item = std::mem::size_of::<u64>();
    out.push_str(&format!(
        "\nThat is {held} B held per call, {} B beyond the item, which the queue entry holds. \
         The measured {measured:.0} B is lower mainly because a boxed future of {future} B takes the same {} B allocation as the harness's idle future, which holds only the item. \
         Where a caller awaits the call inside a task of its own, the future's {future} B join that task instead. \
         The shared state is one allocation because the reply slot and the caller's waker share one lock: a many-item call's outputs and a failure sit behind one pointer, and what only streaming or traced calls need behind another. \
         A many-item call shares one state and one future among its items; its per-item cost is in the last row.\n",
        held - item,
        chunk(future),
    ));
    out
}
