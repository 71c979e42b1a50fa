//! Triton's perf_analyzer against the model server, over HTTP and gRPC,
//! beside a bare ONNX Runtime loop on the same threads: the table in
//! `docs/oip.md` between the `oip-perf` markers.
//!
//! Starts `model_server` with its default flags, runs perf_analyzer on
//! `mobilenet` at each concurrency over each protocol (its default inputs:
//! random binary tensors; time windows until stable), then runs the bare
//! loop: one `ModelSession` with the server's intra-op threads, calling
//! the model in a loop on one thread with no server, queue or socket, at
//! batch 1 and at the server's batch size.
//!
//! ```text
//! bash scripts/oip-perf.sh            # builds, fetches perf_analyzer, then runs this
//! target/release/oip_perf --server target/release/model_server --write docs/oip.md
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use batch_serving_examples::generated::write_between;
use batch_serving_examples::setup::ServingConfig;
use batch_serving_ort::{MobileNetFiles, ModelInputs, ModelSession};
use clap::Parser;

const BEGIN: &str = "<!-- oip-perf:begin (written by scripts/oip-perf.sh) -->";
const END: &str = "<!-- oip-perf:end -->";

/// perf_analyzer against the model server over HTTP and gRPC, beside a
/// bare ONNX Runtime loop.
#[derive(Debug, Parser)]
struct Cli {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/model_server")]
    server: PathBuf,
    /// The perf_analyzer command.
    #[arg(long, env = "PERF_ANALYZER")]
    perf_analyzer: PathBuf,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    concurrency: Vec<usize>,
    /// perf_analyzer's measurement window, in ms.
    #[arg(long, default_value_t = 4000)]
    window_ms: u64,
    /// Seconds of each bare-loop measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// The HTTP port (gRPC listens on the next one).
    #[arg(long, default_value_t = 18_400)]
    port: u16,
    /// The server's settings as it starts them by default (the bare loop
    /// takes its threads and batch size from these).
    #[command(flatten)]
    serving: ServingConfig,
    /// Write the table into this markdown file, between its markers.
    #[arg(long)]
    write: Option<PathBuf>,
}

/// One perf_analyzer row.
struct Row {
    protocol: &'static str,
    concurrency: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's own account, per request, from its statistics.
    queue_ms: f64,
    compute_ms: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let files = MobileNetFiles::locate(cli.serving.models.as_deref())?;
    let (http, grpc) = (
        format!("127.0.0.1:{}", cli.port),
        format!("127.0.0.1:{}", cli.port + 1),
    );
    let mut server = start_server(&cli, &http, &grpc)?;
    let rows = measure_server(&cli, &http, &grpc);
    stop(&mut server);
    let rows = rows?;
    // The bare loop after the server has gone, so the two never share the
    // cores.
    let batch = cli.serving.batch_size;
    let bare_one = bare_loop(&files.model, &cli.serving, 1, cli.seconds)?;
    let bare_batch = bare_loop(&files.model, &cli.serving, batch, cli.seconds)?;
    let section = report(&cli, &rows, bare_one, bare_batch);
    print!("{section}");
    if let Some(path) = &cli.write {
        write_between(path, BEGIN, END, &section)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn start_server(cli: &Cli, http: &str, grpc: &str) -> std::io::Result<Child> {
    let mut command = Command::new(&cli.server);
    command
        .args(["--addr", http, "--grpc-addr", grpc])
        .stdout(Stdio::null());
    if let Some(models) = &cli.serving.models {
        command.arg("--models").arg(models);
    }
    let child = command.spawn()?;
    let ready = format!("http://{http}/v2/health/ready");
    for _ in 0..300 {
        let up = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", &ready])
            .status()
            .is_ok_and(|s| s.success());
        if up {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(std::io::Error::other(
        "the server did not become ready in 30 s",
    ))
}

fn stop(server: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

/// perf_analyzer at every level over both protocols, the protocols
/// alternating level by level so that neither gets the quieter minutes.
fn measure_server(cli: &Cli, http: &str, grpc: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for &concurrency in &cli.concurrency {
        for (protocol, address) in [("http", http), ("grpc", grpc)] {
            let row = perf_analyzer(cli, protocol, address, concurrency)?;
            println!(
                "{protocol} C={concurrency}: {:.1} infer/s, p50 {:.1} ms, p99 {:.1} ms",
                row.per_second, row.p50_ms, row.p99_ms
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

fn perf_analyzer(
    cli: &Cli,
    protocol: &'static str,
    address: &str,
    concurrency: usize,
) -> Result<Row, String> {
    let csv = std::env::temp_dir().join(format!("oip-perf-{}.csv", std::process::id()));
    let output = Command::new(&cli.perf_analyzer)
        .args(["-m", "mobilenet", "-i", protocol, "-u", address])
        .args(["--concurrency-range", &concurrency.to_string()])
        .args(["--measurement-interval", &cli.window_ms.to_string()])
        // Stable within 20% over three windows, or the last of ten: a
        // shared 2-core machine rarely holds 10%.
        .args(["--stability-percentage", "20", "--max-trials", "10"])
        .arg("-f")
        .arg(&csv)
        .output()
        .map_err(|e| format!("perf_analyzer: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.to_lowercase().contains("error") {
        return Err(format!(
            "perf_analyzer over {protocol} at {concurrency} failed:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let table = std::fs::read_to_string(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let _ = std::fs::remove_file(&csv);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |name: &str| -> Result<f64, String> {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| values.get(i))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no `{name}` in perf_analyzer's CSV:\n{table}"))
    };
    Ok(Row {
        protocol,
        concurrency,
        per_second: column("Inferences/Second")?,
        p50_ms: column("p50 latency")? / 1000.0,
        p99_ms: column("p99 latency")? / 1000.0,
        queue_ms: column("Server Queue")? / 1000.0,
        compute_ms: column("Server Compute Infer")? / 1000.0,
    })
}

/// Inferences per second of a bare loop: one session with the server's
/// threads, running batches of `batch` on this thread for `seconds`.
fn bare_loop(
    model: &Path,
    serving: &ServingConfig,
    batch: usize,
    seconds: f64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut session = ModelSession::open(model, &serving.session_options())?;
    let input = session.signature().inputs[0].name.clone();
    // Values like a normalized photo's; the model's time does not depend on them.
    let image = ndarray::Array::from_shape_fn((3, 224, 224), |(c, y, x)| {
        ((c * 7 + y * 3 + x) % 255) as f32 / 128.0 - 1.0
    });
    let items = (0..batch)
        .map(|_| {
            session
                .signature()
                .check(ModelInputs::new().with(input.as_str(), image.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Warm up, as the server has been by perf_analyzer's first windows.
    for _ in 0..5 {
        session.run(&items)?;
    }
    let (started, mut runs) = (Instant::now(), 0u64);
    while started.elapsed().as_secs_f64() < seconds {
        session.run(&items)?;
        runs += 1;
    }
    Ok((runs * batch as u64) as f64 / started.elapsed().as_secs_f64())
}

fn report(cli: &Cli, rows: &[Row], bare_one: f64, bare_batch: f64) -> String {
    let batch = cli.serving.batch_size;
    let mut out = format!(
        "Measured by `scripts/oip-perf.sh` on this machine ({} cores): `model_server` with its \
         default flags ({}), MobileNetV2, perf_analyzer 2.60 with its default inputs (random \
         binary tensors) on the same machine, time windows of {} ms until three agree within \
         20%. The bare loop is one `ModelSession` with the same intra-op threads, calling the \
         model in a loop on one thread: no server, queue or socket. It ran **{bare_one:.1} \
         inferences/s at batch 1** and **{bare_batch:.1}/s at batch {batch}**. The last column \
         compares each row with the bare loop at batch 1 for one client and with the better \
         of the two bare rows otherwise. The server columns are its own statistics as \
         perf_analyzer read them, per request: time queued, and the run of the batch it was \
         in (so at one client, what the model took inside the server, against the bare \
         loop's {bare_one_ms:.2} ms while no client shared the cores).\n\n\
         | protocol | concurrency | infer/s | p50 ms | p99 ms | server queue ms | server compute ms | vs bare loop |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        std::thread::available_parallelism().map_or(0, usize::from),
        cli.serving.describe(),
        cli.window_ms,
        bare_one_ms = 1000.0 / bare_one,
    );
    for row in rows {
        let bare = if row.concurrency == 1 {
            bare_one
        } else {
            bare_one.max(bare_batch)
        };
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2}x |\n",
            if row.protocol == "http" {
                "HTTP"
            } else {
                "gRPC"
            },
            row.concurrency,
            row.per_second,
            row.p50_ms,
            row.p99_ms,
            row.queue_ms,
            row.compute_ms,
            row.per_second / bare,
        ));
    }
    out
}
