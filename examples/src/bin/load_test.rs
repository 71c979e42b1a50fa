//! A closed-loop load test of MobileNetV2 classification: C callers each send
//! an image, wait for the answer and send again, for a fixed time per
//! concurrency level. Runs in process (batched against unbatched, that is
//! `batch_size` 1, interleaved level by level, each row after a warm-up at
//! its level) or against the HTTP server with `--url`.
//!
//! ```text
//! cargo run --release -p batch-serving-examples --bin load_test -- --concurrency 1,8,64 --seconds 3
//! cargo run --release -p batch-serving-examples --bin load_test -- --url 127.0.0.1:8080
//! ```
//!
//! `--markdown FILE` also writes the table as markdown, and `--svg FILE` a
//! chart of throughput and p99 latency against callers, one line per mode.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_serving_examples::chart::{Axis, Panel, Plot, Series, write_svg};
use batch_serving_examples::client::Connection;
use batch_serving_examples::metrics::read_metric;
use batch_serving_examples::setup::ServingConfig;
use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// A closed-loop load test of MobileNetV2 classification.
#[derive(Debug, Parser)]
struct Cli {
    /// Concurrency levels, each 1..=4096.
    #[arg(long, env = "BS_CONCURRENCY", value_delimiter = ',', default_value = "1,4,16,64",
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    concurrency: Vec<u16>,
    /// Seconds per level.
    #[arg(long, env = "BS_SECONDS", default_value_t = 3.0)]
    seconds: f64,
    /// The image every call sends [default: dogs.jpg beside the model, else a generated JPEG].
    #[arg(long, env = "BS_IMAGE")]
    image: Option<PathBuf>,
    /// Test a running server at this address instead of in process.
    #[arg(long, env = "BS_URL")]
    url: Option<String>,
    /// With `--url`: a second running server (the same model with
    /// `--batch-size 1`, say), measured as the `unbatched` rows, the two
    /// interleaving level by level.
    #[arg(long, env = "BS_COMPARE_URL", requires = "url")]
    compare_url: Option<String>,
    /// Skip the unbatched comparison in process.
    #[arg(long)]
    no_compare: bool,
    /// Also write the table as markdown to this file.
    #[arg(long, env = "BS_MARKDOWN")]
    markdown: Option<PathBuf>,
    /// Also draw throughput and p99 against callers as an SVG chart here
    /// (the markdown, when written to the same folder, links it).
    #[arg(long, env = "BS_SVG")]
    svg: Option<PathBuf>,
    #[command(flatten)]
    serving: ServingConfig,
}

/// Sends one request; true when it succeeded.
type Call = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Where the batch counters come from: the serving itself or `/metrics`.
type Counters = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = (u64, u64)> + Send>> + Send + Sync>;

struct Row {
    mode: String,
    concurrency: usize,
    calls: u64,
    errors: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_batch: f64,
}

async fn run_cell(
    mode: &str,
    concurrency: usize,
    seconds: f64,
    call: &Call,
    counters: &Counters,
) -> Row {
    let (batches_before, items_before) = counters().await;
    let bar = ProgressBar::new((seconds * 1000.0) as u64).with_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{mode} C={concurrency}"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let callers: Vec<_> = (0..concurrency)
        .map(|caller| {
            let (call, done) = (Arc::clone(call), Arc::clone(&done));
            tokio::spawn(async move {
                let mut latencies = Histogram::<u64>::new(3)
                    .unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if call(caller).await {
                        let _ = latencies.record(sent.elapsed().as_micros() as u64);
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let elapsed = started.elapsed().as_secs_f64();
        bar.set_position((elapsed * 1000.0) as u64);
        let calls = done.load(std::sync::atomic::Ordering::Relaxed);
        bar.set_message(format!("{calls} calls, {:.0}/s", calls as f64 / elapsed));
    }
    let mut latencies =
        Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"));
    let mut errors = 0;
    for caller in callers {
        if let Ok((h, e)) = caller.await {
            let _ = latencies.add(&h);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let (batches_after, items_after) = counters().await;
    let batches = batches_after.saturating_sub(batches_before);
    Row {
        mode: mode.to_owned(),
        concurrency,
        calls: latencies.len(),
        errors,
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: latencies.value_at_quantile(0.5) as f64 / 1e3,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1e3,
        mean_batch: if batches == 0 {
            0.0
        } else {
            items_after.saturating_sub(items_before) as f64 / batches as f64
        },
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| mode | callers | img/s | p50 ms | p99 ms | mean batch | calls | errors | vs unbatched |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (at, row) in rows.iter().enumerate() {
        // The unbatched row of the same round: the modes interleave level
        // by level, taking turns to go first, so the nearest (the later on
        // a tie).
        let baseline = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.mode == "unbatched" && r.concurrency == row.concurrency)
            .min_by_key(|(other, _)| (other.abs_diff(at), *other < at))
            .map(|(_, r)| r);
        let ratio = baseline
            .filter(|b| b.per_second > 0.0)
            .map_or("".to_owned(), |b| {
                format!("{:.2}x", row.per_second / b.per_second)
            });
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |\n",
            row.mode,
            row.concurrency,
            row.per_second,
            row.p50_ms,
            row.p99_ms,
            row.mean_batch,
            row.calls,
            row.errors,
            ratio
        ));
    }
    // Over every round of a level, the calls of each mode added up: one
    // ratio that a noisy row cannot swing alone.
    let mut levels: Vec<usize> = rows.iter().map(|r| r.concurrency).collect();
    levels.dedup();
    levels.sort_unstable();
    levels.dedup();
    for level in levels {
        let total = |mode: &str| -> f64 {
            rows.iter()
                .filter(|r| r.mode == mode && r.concurrency == level)
                .map(|r| r.per_second)
                .sum()
        };
        let (batched, unbatched) = (total("batched"), total("unbatched"));
        if batched > 0.0 && unbatched > 0.0 {
            out.push_str(&format!(
                "\nAt {level} caller(s), over every round: batched {:.2}x unbatched.\n",
                batched / unbatched
            ));
        }
    }
    out
}

/// Throughput and p99 against callers, a line per mode, on log scales
/// (callers and latency both span decades).
fn chart(rows: &[Row], path: &std::path::Path) -> Result<(), String> {
    // Each mode once, in first-seen order (the rows interleave the modes).
    let mut modes: Vec<&str> = Vec::new();
    for row in rows {
        if !modes.contains(&row.mode.as_str()) {
            modes.push(&row.mode);
        }
    }
    let series = |value: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        modes
            .iter()
            .map(|mode| Series {
                name: (*mode).to_owned(),
                points: rows
                    .iter()
                    .filter(|r| r.mode == *mode)
                    .map(|r| (r.concurrency as f64, value(r)))
                    .collect(),
            })
            .collect()
    };
    let panels = [
        Panel {
            title: "MobileNetV2: throughput".to_owned(),
            x: Axis::log("concurrent callers"),
            y: Axis::linear("images/s"),
            plot: Plot::Lines(series(&|r| r.per_second)),
        },
        Panel {
            title: "MobileNetV2: p99 latency".to_owned(),
            x: Axis::log("concurrent callers"),
            y: Axis::log("p99 latency (ms)"),
            plot: Plot::Lines(series(&|r| r.p99_ms)),
        },
    ];
    write_svg(path, &panels, 560, 400)
}

/// The image every call sends: `--image`, else dogs.jpg beside the model,
/// else a generated 512x384 JPEG (the model zoo ships no sample photos).
fn image(cli: &Cli) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let config = &cli.serving;
    if let Some(path) = &cli.image {
        return std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()).into());
    }
    let sample = batch_serving_ort::models_dir(config.models.as_deref())?.join("dogs.jpg");
    if let Ok(bytes) = std::fs::read(&sample) {
        return Ok(bytes);
    }
    let pattern = image::RgbImage::from_fn(512, 384, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(pattern).write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )?;
    Ok(jpeg)
}

async fn in_process(
    config: &ServingConfig,
    image: Arc<Vec<u8>>,
    levels: &[usize],
    seconds: f64,
    compare: bool,
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let mut modes = vec![("batched", config.clone())];
    if compare {
        modes.push((
            "unbatched",
            ServingConfig {
                batch_size: 1,
                ..config.clone()
            },
        ));
    }
    // Both servings start first, and the rows interleave: each level runs
    // batched, then unbatched, each after a warm-up at that level, so that
    // neither mode carries the session's first runs, or the machine's
    // drift over the run, alone.
    let mut servings = Vec::new();
    for (mode, config) in modes {
        let classifier = config.start()?;
        println!("{mode}: {}", config.describe());
        let call: Call = {
            let (classifier, image) = (classifier.clone(), Arc::clone(&image));
            Arc::new(move |_| {
                let (classifier, image) = (classifier.clone(), Arc::clone(&image));
                Box::pin(async move { classifier.classify(image.to_vec()).await.is_ok() })
            })
        };
        let counters: Counters = {
            let classifier = classifier.clone();
            Arc::new(move || {
                let stats = classifier.serving().stats();
                Box::pin(async move { (stats.batches, stats.items) })
            })
        };
        servings.push((mode, classifier, call, counters));
    }
    let mut rows = Vec::new();
    for (round, &concurrency) in levels.iter().enumerate() {
        let warm_up = warm_up(round, seconds);
        for (mode, _, call, counters) in in_turn(&servings, round) {
            let _ = run_cell(mode, concurrency, warm_up, call, counters).await;
            rows.push(run_cell(mode, concurrency, seconds, call, counters).await);
        }
    }
    for (_, classifier, _, _) in servings {
        classifier.serving().shutdown().await;
    }
    Ok(rows)
}

/// What calls a running server: each caller on a connection of its own,
/// and the batch counters from its `/metrics`.
async fn http_target(
    address: &str,
    image: Arc<Vec<u8>>,
    callers: usize,
) -> Result<(Call, Counters), Box<dyn std::error::Error>> {
    let mut connections = Vec::with_capacity(callers);
    for _ in 0..callers {
        connections.push(Arc::new(tokio::sync::Mutex::new(
            Connection::open(address).await?,
        )));
    }
    let connections = Arc::new(connections);
    let call: Call = {
        let connections = Arc::clone(&connections);
        let address: Arc<str> = Arc::from(address);
        Arc::new(move |caller| {
            let (connections, image) = (Arc::clone(&connections), Arc::clone(&image));
            let address = Arc::clone(&address);
            Box::pin(async move {
                let mut connection = connections[caller].lock().await;
                let sent = connection
                    .request("POST", "/v1/classify", "image/jpeg", &image)
                    .await;
                match sent {
                    Ok((status, _)) => status == 200,
                    // The server closed the kept-alive connection while it
                    // idled (uvicorn does after 5 s, while the other
                    // server's row ran): a new one, as any client opens.
                    Err(_) => match Connection::open(&address).await {
                        Ok(fresh) => {
                            *connection = fresh;
                            matches!(
                                connection
                                    .request("POST", "/v1/classify", "image/jpeg", &image)
                                    .await,
                                Ok((200, _))
                            )
                        }
                        Err(_) => false,
                    },
                }
            })
        })
    };
    let address = address.to_owned();
    let counters: Counters = Arc::new(move || {
        let address = address.clone();
        Box::pin(async move {
            let Ok(mut connection) = Connection::open(&address).await else {
                return (0, 0);
            };
            let Ok((_, body)) = connection
                .request("GET", "/metrics", "text/plain", &[])
                .await
            else {
                return (0, 0);
            };
            let text = String::from_utf8_lossy(&body);
            let read = |name| read_metric(&text, name).unwrap_or(0.0) as u64;
            (
                read("batch_serving_batches_total"),
                read("batch_serving_items_total"),
            )
        })
    });
    Ok((call, counters))
}

/// Load on one running server (`http` rows), or on two (`batched` and
/// `unbatched` rows, interleaved level by level, each after a warm-up at
/// its level, as in process).
async fn over_http(
    address: &str,
    compare: Option<&str>,
    image: Arc<Vec<u8>>,
    levels: &[usize],
    seconds: f64,
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let max = levels.iter().copied().max().unwrap_or(1);
    let mut targets = Vec::new();
    let (call, counters) = http_target(address, Arc::clone(&image), max).await?;
    targets.push((
        if compare.is_some() { "batched" } else { "http" },
        call,
        counters,
    ));
    if let Some(other) = compare {
        let (call, counters) = http_target(other, Arc::clone(&image), max).await?;
        targets.push(("unbatched", call, counters));
    }
    let mut rows = Vec::new();
    for (round, &concurrency) in levels.iter().enumerate() {
        let warm_up = warm_up(round, seconds);
        for (mode, call, counters) in in_turn(&targets, round) {
            let _ = run_cell(mode, concurrency, warm_up, call, counters).await;
            rows.push(run_cell(mode, concurrency, seconds, call, counters).await);
        }
    }
    Ok(rows)
}

/// The modes in the order a round runs them: as listed in even rounds,
/// reversed in odd ones, so that neither mode always runs first (the
/// first row of a round measured lower in every table until they took
/// turns).
fn in_turn<T>(modes: &[T], round: usize) -> Vec<&T> {
    let mut ordered: Vec<&T> = modes.iter().collect();
    if round % 2 == 1 {
        ordered.reverse();
    }
    ordered
}

/// The seconds of load before a row, unmeasured: the first round's are
/// longer, since a fresh session's first runs (and a CPU leaving its idle
/// state) are slower than any later ones, enough to cost the first row a
/// fifth of its calls when its warm-up was as short as the others'.
fn warm_up(round: usize, seconds: f64) -> f64 {
    let usual = (seconds / 4.0).clamp(0.2, 1.0);
    if round == 0 { usual.max(2.0) } else { usual }
}

/// The median time to decode and pre-process `image` on this thread, as
/// the classify route does before the model: (median, runs).
fn decode_time(image: &[u8]) -> Result<(Duration, usize), batch_serving_ort::OrtError> {
    const RUNS: usize = 41;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        std::hint::black_box(batch_serving_ort::mobilenet::preprocess(image)?);
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], RUNS))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let config = &cli.serving;
    let levels: Vec<usize> = cli.concurrency.iter().map(|&c| usize::from(c)).collect();
    let seconds = cli.seconds;
    let image = Arc::new(image(&cli)?);
    let (decode, runs) = decode_time(&image)?;
    let decoding = format!(
        "decoding and pre-processing the image ({} KB) took {:.2} ms (median of {runs}, one thread)",
        image.len() / 1024,
        decode.as_secs_f64() * 1e3
    );
    println!("{decoding}");
    let rows = match &cli.url {
        Some(url) => {
            let bare = |url: &str| {
                url.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_owned()
            };
            let compare = cli.compare_url.as_deref().map(bare);
            over_http(&bare(url), compare.as_deref(), image, &levels, seconds).await?
        }
        None => in_process(config, image, &levels, seconds, !cli.no_compare).await?,
    };
    let table = table(&rows);
    println!("\n{table}");
    if let Some(path) = &cli.svg {
        chart(&rows, path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &cli.markdown {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let figure = cli
            .svg
            .as_ref()
            .filter(|svg| svg.parent() == path.parent())
            .and_then(|svg| svg.file_name())
            .map_or(String::new(), |name| {
                format!(
                    "\n![throughput and p99 latency against callers]({})\n",
                    name.to_string_lossy()
                )
            });
        let text = format!(
            "<!-- written by: load_test {} -->\n\nMobileNetV2 classification, closed loop, {seconds} s per row, {cores} CPU core(s); {}; {decoding}.\n{figure}\n{table}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            config.describe()
        );
        std::fs::write(path, text)?;
        println!("wrote {}", path.display());
    }
    if rows.iter().any(|r| r.errors > 0) {
        eprintln!("some calls failed");
        std::process::exit(1);
    }
    Ok(())
}
