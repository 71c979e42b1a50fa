//! The side-by-side comparison: every contender through the same scenarios
//! in one process, written to `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p batch-serving-benches --bin compare [-- --quick] [--only s1,s4] [--out FILE]
//! ```
//!
//! Each scenario lives in `batch_serving_benches::compare`; this binary
//! reads the flags, runs the scenarios asked for and assembles the report.

use std::path::Path;
use std::time::{Duration, Instant};

use batch_serving_examples::chart::{Panel, write_svg};

use batch_serving_benches::compare::common::{Options, Section, runtime};
use batch_serving_benches::compare::environment::{machine, today};
use batch_serving_benches::compare::{memory, s1, s2, s3, s4, s5, s6, s7};

fn options(args: &[String]) -> Options {
    let quick = args.iter().any(|a| a == "--quick");
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        reps: if quick { 1 } else { 3 },
        cell: if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
        out: after("--out").unwrap_or_else(|| "docs/benchmarks.md".to_owned()),
        only: after("--only")
            .map(|list| list.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        quick,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("memory") {
        memory::memory_child(args.get(1).map_or("", String::as_str));
        return;
    }
    let options = options(&args);
    let started = Instant::now();
    let rt = runtime();
    let mut doc = format!(
        "# Benchmarks\n\n<!-- Written by `cargo run --release -p batch-serving-benches --bin compare`{}. Do not edit by hand. -->\n\n\
         Measured on {} ({}). Every contender runs in this one process on the same runtime, with {} interleaved repetition(s); \
         figures are the median with the min–max over repetitions. Every call's input is unique and its reply is checked to be its own `x + 1`; \
         \"checks\" counts errors, wrong replies, and empty or oversized batches. Each contender runs one batch at a time.\n\n",
        if options.quick { " -- --quick" } else { "" },
        today(),
        machine(),
        options.reps
    );
    let mut targets = String::from("| target | measured | |\n|---|---|---|\n");
    // How long each part took, so that whoever trims the run to its five
    // minutes sees where the time goes.
    let mut laps: Vec<String> = Vec::new();
    let scenarios: [(&str, &dyn Fn() -> Section); 8] = [
        ("S1", &|| s1::run(&rt, &options)),
        ("S2", &|| s2::run(&rt, &options)),
        ("S3", &|| s3::run(&rt, &options)),
        ("S4", &|| s4::run(&rt, &options)),
        ("S5", &|| s5::run(&rt, &options)),
        ("S6", &|| s6::run(&rt, &options)),
        ("S7", &|| s7::run(&rt, &options)),
        ("memory", &|| memory::run(&options)),
    ];
    for (name, run) in scenarios {
        if !options.runs(name) {
            continue;
        }
        let lap = Instant::now();
        let section = run();
        doc.push_str(&section.markdown);
        for (suffix, panels) in &section.charts {
            doc.push_str(&chart(&options.out, suffix, panels));
        }
        targets.push_str(&section.targets);
        laps.push(format!("{name} {:.0} s", lap.elapsed().as_secs_f64()));
    }
    doc.push_str("\n## Targets\n\nRatios within this run.\n\n");
    doc.push_str(&targets);
    doc.push_str(&format!(
        "\nThe whole run took {:.0} s ({}).\n",
        started.elapsed().as_secs_f64(),
        laps.join(", ")
    ));
    if let Err(e) = std::fs::write(&options.out, &doc) {
        eprintln!("cannot write {}: {e}", options.out);
        std::process::exit(1);
    }
    println!("{doc}\nwrote {}", options.out);
}

/// Writes one chart beside the report (`benchmarks-s1.svg` beside
/// `benchmarks.md`) and returns the markdown that shows it, or a line
/// saying why it could not be drawn.
fn chart(report: &str, suffix: &str, panels: &[Panel]) -> String {
    let report = Path::new(report);
    let stem = report
        .file_stem()
        .map_or("benchmarks".into(), |s| s.to_string_lossy());
    let name = format!("{stem}-{suffix}.svg");
    let path = report.with_file_name(&name);
    match write_svg(&path, panels, 620, 420) {
        Ok(()) => format!("\n![{suffix} chart]({name})\n"),
        Err(e) => format!("\n(no {suffix} chart: {e})\n"),
    }
}
