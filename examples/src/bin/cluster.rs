//! One serving on three machines: a NATS server, three node processes each
//! serving MobileNet (or, with `--stand-in`, an accelerator stand-in that
//! sleeps 2 ms + 20 µs per item), and a load test from this process through
//! the cluster. Midway one node is killed (SIGKILL). The report shows each
//! node's batches and items, and accounts for every call: answered
//! correctly, or failed because it was in flight at the dead node.
//!
//! ```text
//! source scripts/ort-runtime.sh && ort_runtime          # MobileNet nodes
//! source scripts/nats-server.sh && nats_server          # or --nats-url
//! cargo run --release -p batch-serving-examples --bin cluster -- --seconds 6
//! cargo run --release -p batch-serving-examples --bin cluster -- --stand-in --concurrency 256
//! ```
//!
//! It exits non-zero when any call got a wrong answer, failed for another
//! reason, or when more calls failed than could have been in flight at
//! the dead node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use batch_serving::{Batch, CallOptions, Serving};
use batch_serving_examples::setup::ServingConfig;
use batch_serving_nats::{Error, MsgPack, Node, NodeReport, RawBytes, RemoteServing};
use batch_serving_ort::MobileNetFiles;
use batch_serving_ort::mobilenet::Prediction;
use clap::{Parser, Subcommand};
use tokio::time::Instant;

/// The serving's name in the cluster.
const NAME: &str = "mobilenet";

#[derive(Parser, Debug)]
#[command(
    about = "MobileNet served by three nodes through NATS, under load, with a node killed midway"
)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// A NATS server to use; without it one is started (NATS_SERVER, PATH,
    /// or the copy scripts/nats-server.sh fetches into .nats/).
    #[arg(long, env = "BS_NATS_URL", global = true)]
    nats_url: Option<String>,
    /// Serve an accelerator stand-in (async, 2 ms + 20 µs per item) instead
    /// of MobileNet, so capacity does not depend on this machine's cores.
    #[arg(long, env = "BS_STAND_IN", global = true)]
    stand_in: bool,
    /// Node processes to start.
    #[arg(long, default_value_t = 3, env = "BS_NODES")]
    nodes: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 6.0, env = "BS_SECONDS")]
    seconds: f64,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32, env = "BS_CONCURRENCY")]
    concurrency: usize,
    /// Per-call deadline, in milliseconds.
    #[arg(long, default_value_t = 5000, env = "BS_DEADLINE_MS")]
    deadline_ms: u64,
    /// Do not kill a node.
    #[arg(long, env = "BS_NO_KILL")]
    no_kill: bool,
    #[command(flatten)]
    serving: ServingConfig,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// One node (the coordinator starts these itself).
    Node {
        /// This node's index, for its log lines.
        #[arg(long)]
        index: usize,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match &cli.role {
        Some(Role::Node { index }) => run_node(&cli, *index).await,
        None => coordinate(&cli).await,
    };
    if let Err(message) = result {
        eprintln!("cluster: {message}");
        std::process::exit(1);
    }
}

async fn run_node(cli: &Cli, index: usize) -> Result<(), String> {
    let url = cli.nats_url.clone().ok_or("a node needs --nats-url")?;
    let client = async_nats::connect(&url)
        .await
        .map_err(|e| format!("node {index}: {e}"))?;
    let node = if cli.stand_in {
        let serving = Serving::new_async(|batch: Batch<Vec<u8>>| async move {
            tokio::time::sleep(Duration::from_micros(2000 + 20 * batch.len() as u64)).await;
            Ok::<_, String>(
                batch
                    .iter()
                    .map(|bytes| vec![stand_in_label(bytes)])
                    .collect::<Vec<_>>(),
            )
        })
        .batch_size(cli.serving.batch_size)
        .batch_timeout(cli.serving.batch_timeout)
        .partitions(cli.serving.partitions)
        .queue_capacity(cli.serving.batch_size * 8)
        .start()
        .map_err(|e| e.to_string())?;
        Node::builder_with_codecs(client, NAME, serving, RawBytes, MsgPack)
            .start()
            .await
            .map_err(|e| e.to_string())?
    } else {
        let classifier = cli
            .serving
            .start()
            .map_err(|e| format!("node {index}: {e}"))?;
        Node::builder_with_codecs(client, NAME, classifier.calls().clone(), RawBytes, MsgPack)
            .start()
            .await
            .map_err(|e| e.to_string())?
    };
    eprintln!("node {index}: serving {NAME} as {}", node.id());
    // A node runs until it is killed.
    std::future::pending::<()>().await;
    Ok(())
}

/// The stand-in's answer: a class any caller can check.
fn stand_in_label(bytes: &[u8]) -> Prediction {
    Prediction {
        class: bytes.iter().map(|&b| b as usize).sum::<usize>() % 1000,
        label: "stand-in".into(),
        probability: 1.0,
    }
}

/// A started nats-server, killed on drop.
struct NatsProcess(Child);

impl Drop for NatsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nats() -> Result<(NatsProcess, String), String> {
    let binary = std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|dir| dir.join("nats-server")).find(|p| p.is_file())
        })
        .or_else(|| {
            let cached = PathBuf::from(".nats/nats-server-2.15.1/nats-server");
            cached.is_file().then_some(cached)
        })
        .ok_or("no nats-server: run `source scripts/nats-server.sh && nats_server`, or pass --nats-url")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let process = NatsProcess(child);
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((process, format!("nats://127.0.0.1:{port}")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("nats-server did not start listening".into())
}

/// Node processes, killed on drop.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    wrong: AtomicU64,
    lost: AtomicU64,
    other: AtomicU64,
}

async fn coordinate(cli: &Cli) -> Result<(), String> {
    let (_nats, url) = match &cli.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let (process, url) = start_nats()?;
            (Some(process), url)
        }
    };
    println!(
        "NATS at {url}; starting {} node(s) ({})",
        cli.nodes,
        if cli.stand_in {
            "accelerator stand-in"
        } else {
            "MobileNet"
        }
    );
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut nodes = Nodes(Vec::new());
    for index in 0..cli.nodes {
        // The serving flags belong to the top level, so they come before
        // the subcommand.
        let mut command = Command::new(&exe);
        command.args(["--nats-url", &url]);
        command.args(["--batch-size", &cli.serving.batch_size.to_string()]);
        command.args(["--partitions", &cli.serving.partitions.to_string()]);
        if cli.stand_in {
            command.arg("--stand-in");
        }
        if let Some(models) = &cli.serving.models {
            command.arg("--models").arg(models);
        }
        command.args(["node", "--index", &index.to_string()]);
        nodes.0.push(command.spawn().map_err(|e| e.to_string())?);
    }

    let client = async_nats::connect(&url).await.map_err(|e| e.to_string())?;
    let remote = RemoteServing::<Vec<u8>, Vec<Prediction>>::builder_with_codecs(
        client, NAME, RawBytes, MsgPack,
    )
    .connect()
    .await
    .map_err(|e| e.to_string())?;
    let known = remote
        .wait_for_nodes(cli.nodes, Duration::from_secs(120))
        .await;
    if known < cli.nodes {
        return Err(format!("only {known} of {} nodes came up", cli.nodes));
    }

    // The inputs and their expected answers: the sample photos (answers
    // taken from one call each, before the load), or stand-in bytes.
    let inputs: Vec<(Vec<u8>, usize)> = if cli.stand_in {
        (0..64u32)
            .map(|i| {
                let bytes = i.to_le_bytes().repeat(8);
                let class = stand_in_label(&bytes).class;
                (bytes, class)
            })
            .collect()
    } else {
        let files =
            MobileNetFiles::locate(cli.serving.models.as_deref()).map_err(|e| e.to_string())?;
        let dir = files.model.parent().map(PathBuf::from).unwrap_or_default();
        let mut inputs = Vec::new();
        for photo in ["cat.jpg", "dogs.jpg"] {
            let bytes = std::fs::read(dir.join(photo)).map_err(|e| format!("{photo}: {e}"))?;
            let top = remote
                .dispatch(bytes.clone())
                .await
                .map_err(|e| format!("{photo}: {e}"))?;
            let best = top.first().ok_or("no prediction")?;
            println!("  {photo}: {} ({:.2})", best.label, best.probability);
            inputs.push((bytes, best.class));
        }
        inputs
    };
    let inputs = Arc::new(inputs);
    let before: BTreeMap<String, NodeReport> = remote
        .nodes()
        .into_iter()
        .map(|r| (r.node.clone(), r))
        .collect();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let callers: Vec<_> = (0..cli.concurrency)
        .map(|caller| {
            let (remote, inputs, tally, stop) = (
                remote.clone(),
                Arc::clone(&inputs),
                Arc::clone(&tally),
                Arc::clone(&stop),
            );
            let deadline = Duration::from_millis(cli.deadline_ms);
            tokio::spawn(async move {
                let mut n = caller;
                while !stop.load(Ordering::Relaxed) {
                    let (input, class) = &inputs[n % inputs.len()];
                    n += 1;
                    match remote
                        .dispatch_with(input.clone(), CallOptions::new().timeout(deadline))
                        .await
                    {
                        Ok(top) if top.first().map(|l| l.class) == Some(*class) => {
                            tally.ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok(_) => tally.wrong.fetch_add(1, Ordering::Relaxed),
                        Err(Error::NodeLost { .. } | Error::NoAnswer) => {
                            tally.lost.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("call failed: {e}");
                            tally.other.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();

    let seconds = Duration::from_secs_f64(cli.seconds);
    let mut last_seen = before.clone();
    let mut killed = None;
    while started.elapsed() < seconds {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for report in remote.nodes() {
            last_seen.insert(report.node.clone(), report);
        }
        if !cli.no_kill && killed.is_none() && started.elapsed() >= seconds / 2 && nodes.0.len() > 1
        {
            let _ = nodes.0[1].kill();
            let _ = nodes.0[1].wait();
            killed = Some(tally.ok.load(Ordering::Relaxed));
            println!(
                "  killed node 1 at {:.1} s (SIGKILL)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        let _ = caller.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for report in remote.nodes() {
        last_seen.insert(report.node.clone(), report);
    }

    println!("\nper node (batches and items during the run; the dead node's as last reported):");
    println!(
        "  {:<24} {:>8} {:>8} {:>10}",
        "node", "batches", "items", "mean batch"
    );
    for (id, report) in &last_seen {
        let base = before.get(id);
        let batches = report.batches - base.map_or(0, |b| b.batches);
        let items = report.items - base.map_or(0, |b| b.items);
        let mean = if batches > 0 {
            items as f64 / batches as f64
        } else {
            0.0
        };
        println!("  {id:<24} {batches:>8} {items:>8} {mean:>10.1}");
    }
    let (ok, wrong, lost, other) = (
        tally.ok.load(Ordering::Relaxed),
        tally.wrong.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    println!(
        "\n{} calls in {elapsed:.1} s ({:.0}/s): {ok} answered correctly, {wrong} wrong, {lost} lost with the dead node, {other} other errors",
        ok + wrong + lost + other,
        (ok + wrong + lost + other) as f64 / elapsed
    );
    if killed.is_some() {
        println!(
            "  every call was answered or failed as in flight at the killed node: at most {} could be (one per caller)",
            cli.concurrency
        );
    }
    if wrong > 0 || other > 0 || lost > cli.concurrency as u64 || (killed.is_none() && lost > 0) {
        return Err("calls were lost beyond those in flight at the dead node".into());
    }
    Ok(())
}
