//! S6: one serving across nodes through NATS, on loopback.
//!
//! The protocol rows serve a look-up stand-in (`x + 1` on the runtime,
//! batches of 256), the cheap fan-in work for which the network hop costs
//! more than the work: the bare NATS request/reply floor, remote calls
//! through one node with and without coalescing, and a local serving of
//! the same look-up, at 1 to 1024 callers, with the CPU each call costs.
//! The scaling rows serve an accelerator stand-in (an async batch function
//! that sleeps 2 ms + 20 µs per item), so that capacity comes from the
//! stand-in, not from the two CPU cores: throughput with 1, 2 and 3 nodes,
//! and the p99 with one node twice as slow, routed by load against NATS's
//! plain queue group.

use std::time::Duration;

use batch_serving::{Batch, Policy, Serving};
use batch_serving_examples::chart::{Axis, Bars, Panel, Plot};
use batch_serving_nats::{Node, RemoteServing};
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::runtime::Runtime;
use tokio::time::Instant;

use crate::compare::common::{Options, Section, verdict};
use crate::cpu_time::process_cpu_seconds;
use crate::nats_server::{self, NatsServer};
use crate::report::{Spread, rate, table};

/// Runs S6 (or says why it was skipped) and returns its section.
pub fn run(rt: &Runtime, options: &Options) -> Section {
    let mut section = Section {
        markdown: "\n## S6: one serving on several nodes through NATS (loopback, accelerator stand-in)\n\n".to_owned(),
        ..Section::default()
    };
    let Some(binary) = nats_server::binary() else {
        section.markdown.push_str(
            "Skipped: no nats-server (run `source scripts/nats-server.sh && nats_server` first).\n",
        );
        return section;
    };
    let server = match NatsServer::start(&binary) {
        Ok(server) => server,
        Err(e) => {
            section.markdown.push_str(&format!("Skipped: {e}.\n"));
            return section;
        }
    };
    match rt.block_on(scenario(&server.url(), server.pid(), options)) {
        Ok((markdown, targets, panels)) => {
            section.markdown.push_str(&markdown);
            section.targets.push_str(&targets);
            section.charts.push(("s6".to_owned(), panels));
        }
        Err(e) => section.markdown.push_str(&format!("Failed: {e}.\n")),
    }
    section
}

/// A stand-in node's shape: how big its batches are, how many run at once,
/// and how slow it is (1 = 2 ms + 20 µs per item).
#[derive(Debug, Clone, Copy)]
struct Shape {
    batch_size: usize,
    partitions: usize,
    slowdown: u32,
}

/// Wide nodes measure the protocol (the stand-in is never the limit);
/// narrow ones make the stand-in the limit, to measure scaling. Narrow
/// batches are small enough that 64 callers over 3 nodes (21 each) still
/// keep a full batch running and the next one queued; with fewer callers
/// per node than two batches, a closed loop cannot fill them, whatever the
/// routing.
/// The look-up stand-in's batch size.
const LOOKUP_BATCH: usize = 256;
const NARROW: Shape = Shape {
    batch_size: 8,
    partitions: 1,
    slowdown: 1,
};
const NARROW_SLOW: Shape = Shape {
    slowdown: 2,
    ..NARROW
};

/// The look-up stand-in: nearly free per batch, on the runtime.
fn lookup() -> Result<Serving<u64, u64, String>, String> {
    Serving::new_on_runtime(|batch: Batch<u64>| {
        Ok::<_, String>(batch.iter().map(|x| x + 1).collect::<Vec<_>>())
    })
    .batch_size(LOOKUP_BATCH)
    .queue_capacity(8192)
    .policy(Policy::Eager)
    .start()
    .map_err(|e| e.to_string())
}

async fn export(
    url: &str,
    serving: Serving<u64, u64, String>,
) -> Result<(Node, Serving<u64, u64, String>), String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let node = Node::builder(client, "s6", serving.clone())
        .start()
        .await
        .map_err(|e| e.to_string())?;
    Ok((node, serving))
}

async fn start_node(url: &str, shape: Shape) -> Result<(Node, Serving<u64, u64, String>), String> {
    let slowdown = shape.slowdown;
    let serving = Serving::new_async(move |batch: Batch<u64>| async move {
        let micros = (2000 + 20 * batch.len() as u64) * u64::from(slowdown);
        tokio::time::sleep(Duration::from_micros(micros)).await;
        Ok::<_, String>(batch.iter().map(|x| x + 1).collect::<Vec<_>>())
    })
    .batch_size(shape.batch_size)
    .partitions(shape.partitions)
    .queue_capacity(4096)
    .policy(Policy::Eager)
    .start()
    .map_err(|e| e.to_string())?;
    export(url, serving).await
}

/// One closed-loop measurement: completions per second and the p99, over
/// calls that end inside the window.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// CPU time per call, in µs: this process (callers and nodes), and the
    /// nats-server process.
    cpu_here_us: f64,
    cpu_server_us: f64,
}

/// Runs `cell` and fills in its CPU per call, over the whole cell (warm-up
/// included, at the same rate).
async fn with_cpu(server: Option<u32>, span: Duration, cell: impl Future<Output = Cell>) -> Cell {
    let (here, there) = (process_cpu_seconds(None), process_cpu_seconds(server));
    let mut cell = cell.await;
    let calls = (cell.per_second * span.as_secs_f64()).max(1.0);
    cell.cpu_here_us = (process_cpu_seconds(None) - here) * 1e6 / calls;
    cell.cpu_server_us = (process_cpu_seconds(server) - there) * 1e6 / calls;
    cell
}

/// `callers` closed-loop callers, each sending unique values and checking
/// that the reply is its own `x + 1`.
async fn closed_loop<F, Fut>(callers: usize, warm_up: Duration, window: Duration, call: F) -> Cell
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    let start = Instant::now();
    let (open, close) = (start + warm_up, start + warm_up + window);
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies =
                    Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 figures is valid"));
                let (mut done, mut errors) = (0u64, 0u64);
                let mut x = (caller as u64) << 40;
                while Instant::now() < close {
                    x += 1;
                    let sent = Instant::now();
                    let result = call(x).await;
                    let ended = Instant::now();
                    if ended < open || ended > close {
                        continue;
                    }
                    match result {
                        Ok(y) if y == x + 1 => {
                            done += 1;
                            let _ = latencies.record((ended - sent).as_micros() as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (done, errors, latencies)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 figures is valid"));
    let (mut done, mut errors) = (0, 0);
    for task in tasks {
        if let Ok((d, e, h)) = task.await {
            done += d;
            errors += e;
            let _ = all.add(&h);
        }
    }
    Cell {
        per_second: done as f64 / window.as_secs_f64(),
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
        errors,
        ..Cell::default()
    }
}

/// The rows measured, each at every caller count.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Row {
    Floor,
    Remote { coalesce: bool },
    Local,
    Nodes(usize),
    SlowByLoad,
    SlowQueueGroup,
}

impl Row {
    fn name(self) -> String {
        match self {
            Row::Floor => "NATS request/reply floor (echo responder)".into(),
            Row::Remote { coalesce: true } => "look-up, remote through one node, coalesced".into(),
            Row::Remote { coalesce: false } => {
                "look-up, remote through one node, one request per call".into()
            }
            Row::Local => "look-up, local serving in this process".into(),
            Row::Nodes(n) => format!("{n} node(s), 8 × 1 partition each, routed by load"),
            Row::SlowByLoad => {
                "3 nodes, one 2× slower: routed by load (power of two choices)".into()
            }
            Row::SlowQueueGroup => "3 nodes, one 2× slower: NATS queue group (random)".into(),
        }
    }

    /// The name on a chart's axis.
    fn short_name(self) -> String {
        match self {
            Row::Floor => "NATS floor".into(),
            Row::Remote { coalesce: true } => "coalesced".into(),
            Row::Remote { coalesce: false } => "uncoalesced".into(),
            Row::Local => "local".into(),
            Row::Nodes(n) => format!("{n} node(s)"),
            Row::SlowByLoad => "slow: by load".into(),
            Row::SlowQueueGroup => "slow: queue group".into(),
        }
    }

    /// Whether the row measures the protocol (at every caller count)
    /// rather than scaling (at the counts that fill the narrow nodes).
    fn protocol(self) -> bool {
        matches!(self, Row::Floor | Row::Remote { .. } | Row::Local)
    }

    fn measured_at(self, callers: usize) -> bool {
        self.protocol() || SCALING_CALLERS.contains(&callers)
    }
}

const ROWS: [Row; 9] = [
    Row::Floor,
    Row::Remote { coalesce: true },
    Row::Remote { coalesce: false },
    Row::Local,
    Row::Nodes(1),
    Row::Nodes(2),
    Row::Nodes(3),
    Row::SlowByLoad,
    Row::SlowQueueGroup,
];

const CALLERS: [usize; 4] = [1, 64, 256, 1024];
/// The caller counts of the scaling rows.
const SCALING_CALLERS: [usize; 2] = [64, 256];
/// A pause before each cell, for the last cell's connections and server
/// buffers to wind down.
const SETTLE: Duration = Duration::from_millis(200);
/// Where the protocol targets are read.
const TARGET_CALLERS: usize = 256;
/// The rows whose CPU and p50 are shown.
const PROTOCOL_ROWS: [Row; 4] = [
    Row::Floor,
    Row::Remote { coalesce: true },
    Row::Remote { coalesce: false },
    Row::Local,
];

async fn measure(
    url: &str,
    server: Option<u32>,
    row: Row,
    callers: usize,
    warm_up: Duration,
    window: Duration,
) -> Result<Cell, String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    if row == Row::Floor {
        let responder = async_nats::connect(url).await.map_err(|e| e.to_string())?;
        let mut requests = responder
            .subscribe("s6.echo")
            .await
            .map_err(|e| e.to_string())?;
        responder.flush().await.map_err(|e| e.to_string())?;
        let echo = tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply else { continue };
                let x = read_u64(&message.payload).unwrap_or(0);
                let _ = responder
                    .publish(reply, (x + 1).to_le_bytes().to_vec().into())
                    .await;
            }
        });
        let span = warm_up + window;
        let cell = with_cpu(
            server,
            span,
            closed_loop(callers, warm_up, window, move |x| {
                let client = client.clone();
                async move {
                    let reply = client
                        .request("s6.echo", x.to_le_bytes().to_vec().into())
                        .await
                        .map_err(|e| e.to_string())?;
                    read_u64(&reply.payload).ok_or_else(|| "short reply".to_string())
                }
            }),
        )
        .await;
        echo.abort();
        return Ok(cell);
    }
    if row == Row::Local {
        let serving = lookup()?;
        let calling = serving.clone();
        let cell = with_cpu(
            server,
            warm_up + window,
            closed_loop(callers, warm_up, window, move |x| {
                let serving = calling.clone();
                async move { serving.dispatch(x).await.map_err(|e| e.to_string()) }
            }),
        )
        .await;
        serving.shutdown().await;
        return Ok(cell);
    }
    let mut nodes = Vec::new();
    match row {
        Row::Remote { .. } => nodes.push(export(url, lookup()?).await?),
        Row::Nodes(n) => {
            for _ in 0..n {
                nodes.push(start_node(url, NARROW).await?);
            }
        }
        _ => {
            for shape in [NARROW, NARROW, NARROW_SLOW] {
                nodes.push(start_node(url, shape).await?);
            }
        }
    }
    let remote = RemoteServing::<u64, u64>::builder(client, "s6")
        .route_by_load(row != Row::SlowQueueGroup)
        .coalesce(row != Row::Remote { coalesce: false })
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    if row != Row::SlowQueueGroup {
        remote
            .wait_for_nodes(nodes.len(), Duration::from_secs(10))
            .await;
    }
    let cell = with_cpu(
        server,
        warm_up + window,
        closed_loop(callers, warm_up, window, move |x| {
            let remote = remote.clone();
            async move { remote.dispatch(x).await.map_err(|e| e.to_string()) }
        }),
    )
    .await;
    for (node, serving) in nodes {
        let _ = node.stop().await;
        serving.shutdown().await;
    }
    Ok(cell)
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

async fn scenario(
    url: &str,
    server: Option<u32>,
    options: &Options,
) -> Result<(String, String, Vec<Panel>), String> {
    let (warm_up, window) = if options.quick {
        (Duration::from_millis(250), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), options.cell)
    };
    // row -> callers -> repetitions, interleaved.
    let mut cells: Vec<Vec<Vec<Cell>>> = vec![vec![Vec::new(); CALLERS.len()]; ROWS.len()];
    // `S6_ROWS=OneWide,Floor` narrows the rows (for profiling).
    let wanted = std::env::var("S6_ROWS").unwrap_or_default();
    let runs = |row: &Row| {
        wanted.is_empty() || wanted.split(',').any(|w| format!("{row:?}").starts_with(w))
    };
    for rep in 0..options.reps {
        // Callers outside, rows inside: each cell follows a cell at the same
        // load, not the previous row's heaviest (a server still draining a
        // burst of 1024 callers cost the next row's lone caller ~10%). Odd
        // repetitions run the rows in reverse, so that no row always follows
        // the same other, and every cell starts after a short settle.
        let mut order: Vec<(usize, &Row)> = ROWS
            .iter()
            .enumerate()
            .filter(|(_, row)| runs(row))
            .collect();
        if rep % 2 == 1 {
            order.reverse();
        }
        for (c, &callers) in CALLERS.iter().enumerate() {
            for &(r, row) in &order {
                if !row.measured_at(callers) {
                    continue;
                }
                tokio::time::sleep(SETTLE).await;
                let cell = measure(url, server, *row, callers, warm_up, window).await?;
                eprintln!(
                    "S6 rep {rep} {} C={callers}: {:.0}/s, p99 {:.2} ms, {} errors",
                    row.name(),
                    cell.per_second,
                    cell.p99_ms,
                    cell.errors
                );
                cells[r][c].push(cell);
            }
        }
    }
    let spread = |r: usize, c: usize, f: &dyn Fn(&Cell) -> f64| {
        Spread::of(&cells[r][c].iter().map(f).collect::<Vec<_>>())
    };
    let index = |row: Row| ROWS.iter().position(|x| *x == row).unwrap_or(0);
    let mut header = vec!["row".to_string()];
    for callers in CALLERS {
        header.push(format!("C={callers} calls/s"));
        header.push(format!("C={callers} p99 ms"));
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = ROWS
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let mut line = vec![row.name()];
            for (c, &callers) in CALLERS.iter().enumerate() {
                if row.measured_at(callers) {
                    line.push(rate(&spread(r, c, &|x| x.per_second)));
                    line.push(spread(r, c, &|x| x.p99_ms).show(1.0, 2));
                } else {
                    line.push("—".into());
                    line.push("—".into());
                }
            }
            line
        })
        .collect();
    let errors: u64 = cells.iter().flatten().flatten().map(|c| c.errors).sum();
    let mut markdown = format!(
        "One nats-server on loopback; every node and caller is a separate NATS connection in this process, on the same two-worker runtime. \
         The look-up rows serve `x + 1` on the runtime in batches of {LOOKUP_BATCH}, eager; the scaling rows (measured at 64 and 256 callers) serve an async stand-in (8 × 1 partition, sleeps 2 ms + 20 µs per item, ×2 on the slow node), eager. Closed-loop callers send unique values and check that each reply is their own `x + 1`; \
         calls/s counts the calls that end inside a {:.2} s window after {:.2} s of warm-up. Checks: {errors} errors or wrong replies.\n\n",
        window.as_secs_f64(),
        warm_up.as_secs_f64()
    );
    markdown.push_str(&table(&header, &rows));
    let by_callers = |title: &str, y: Axis, f: &dyn Fn(&Cell) -> f64| Panel {
        title: title.to_owned(),
        x: Axis::linear(""),
        y,
        plot: Plot::Bars(Bars {
            categories: ROWS.iter().map(|row| row.short_name()).collect(),
            series: CALLERS
                .iter()
                .enumerate()
                .map(|(c, callers)| {
                    let values = (0..ROWS.len()).map(|r| spread(r, c, f).median).collect();
                    (format!("{callers} callers"), values)
                })
                .collect(),
            stacked: false,
        }),
    };
    let panels = vec![
        by_callers(
            "S6: throughput through NATS",
            Axis::linear("calls/s (median)"),
            &|x| x.per_second,
        ),
        by_callers("S6: p99 latency", Axis::linear("p99 latency (ms)"), &|x| {
            x.p99_ms
        }),
    ];
    // What each call costs, in this process and in the server, from /proc:
    // with the two cores shared by all of it, throughput is about 2 cores
    // over that.
    let by_protocol_row = |title: &str, cell: &dyn Fn(usize, usize) -> String| {
        let header: Vec<String> = std::iter::once(title.to_string())
            .chain(CALLERS.iter().map(|c| format!("C={c}")))
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = PROTOCOL_ROWS
            .iter()
            .map(|&row| {
                std::iter::once(row.name())
                    .chain((0..CALLERS.len()).map(|c| cell(index(row), c)))
                    .collect()
            })
            .collect();
        table(&header, &rows)
    };
    markdown.push_str("\nCPU per call, from /proc (user + system, warm-up included), in this process (callers, and the node where there is one) and in nats-server:\n\n");
    markdown.push_str(&by_protocol_row(
        "CPU µs per call: here + nats-server",
        &|r, c| {
            format!(
                "{:.1} + {:.1}",
                spread(r, c, &|x| x.cpu_here_us).median,
                spread(r, c, &|x| x.cpu_server_us).median
            )
        },
    ));
    markdown.push('\n');
    markdown.push_str(&by_protocol_row("p50 latency, ms", &|r, c| {
        spread(r, c, &|x| x.p50_ms).show(1.0, 3)
    }));
    let mut targets = String::new();
    let median = |row: Row, c: usize, f: &dyn Fn(&Cell) -> f64| spread(index(row), c, f).median;
    for (c, callers) in CALLERS.iter().enumerate() {
        if !SCALING_CALLERS.contains(callers) {
            continue;
        }
        let scale = median(Row::Nodes(3), c, &|x| x.per_second)
            / median(Row::Nodes(1), c, &|x| x.per_second).max(1e-9);
        targets.push_str(&verdict(
            &format!("S6 C={callers} 3 nodes ≥ 2.7× one node"),
            scale,
            2.7,
            format!("{scale:.2}×"),
        ));
        let p99 = median(Row::SlowByLoad, c, &|x| x.p99_ms)
            / median(Row::SlowQueueGroup, c, &|x| x.p99_ms).max(1e-9);
        // Lower is better: met when p99 ratio ≤ 0.7, written as 0.7 / ratio ≥ 1.
        targets.push_str(&verdict(
            &format!("S6 C={callers} one slow node: p99 routed by load ≤ 0.7× the queue group's"),
            0.7 / p99.max(1e-9),
            1.0,
            format!("{p99:.2}×"),
        ));
    }
    let at = |callers: usize| CALLERS.iter().position(|&c| c == callers).unwrap_or(0);
    let t = at(TARGET_CALLERS);
    let coalesced = median(Row::Remote { coalesce: true }, t, &|x| x.per_second);
    let floor = coalesced / median(Row::Floor, t, &|x| x.per_second).max(1e-9);
    targets.push_str(&verdict(
        &format!("S6 C={TARGET_CALLERS} coalesced remote calls through one node ≥ 2× the NATS request/reply floor"),
        floor,
        2.0,
        format!("{floor:.2}×"),
    ));
    let local = coalesced / median(Row::Local, t, &|x| x.per_second).max(1e-9);
    targets.push_str(&verdict(
        &format!("S6 C={TARGET_CALLERS} coalesced remote calls ≥ 0.5× a local serving of the same look-up"),
        local,
        0.5,
        format!("{local:.2}×"),
    ));
    let one = at(1);
    let p50 = median(Row::Remote { coalesce: true }, one, &|x| x.p50_ms)
        / median(Row::Remote { coalesce: false }, one, &|x| x.p50_ms).max(1e-9);
    // Lower is better: met when the ratio ≤ 1.1, written as 1.1 / ratio ≥ 1.
    targets.push_str(&verdict(
        "S6 C=1 coalesced p50 ≤ 1.1× one request per call (no added wait when nothing is queued)",
        1.1 / p50.max(1e-9),
        1.0,
        format!("{p50:.2}×"),
    ));
    Ok((markdown, targets, panels))
}
