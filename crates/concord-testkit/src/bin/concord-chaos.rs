//! The chaos soak: runs K schedules of D seconds each against clusters of the real `concord`
//! binary, writes each history and a summary table to `--out`, prints the command that replays
//! any failing schedule, and exits non-zero on any violation.
//!
//! ```text
//! cargo run --release -p concord-testkit --bin concord-chaos -- --seed S --schedules K --duration-s D [--out DIR]
//! ```
//!
//! The `concord` binary is taken from `--binary`, else from beside this program (build it with
//! `cargo build --release -p concord`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use concord_testkit::chaos::runner::{self, HostMode, Outcome};
use concord_testkit::chaos::schedule::Schedule;

struct Args {
    seed: u64,
    schedules: u64,
    duration: Duration,
    out: PathBuf,
    binary: Option<PathBuf>,
    /// Run only this schedule index (replay).
    only: Option<u64>,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        seed: rand::random(),
        schedules: 10,
        duration: Duration::from_secs(30),
        out: PathBuf::from("chaos-out"),
        binary: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => args.seed = value()?.parse().context("--seed")?,
            "--schedules" => args.schedules = value()?.parse().context("--schedules")?,
            "--duration-s" => {
                args.duration = Duration::from_secs(value()?.parse().context("--duration-s")?)
            }
            "--out" => args.out = PathBuf::from(value()?),
            "--binary" => args.binary = Some(PathBuf::from(value()?)),
            "--only" => args.only = Some(value()?.parse().context("--only")?),
            "-h" | "--help" => {
                println!(
                    "concord-chaos --seed S --schedules K --duration-s D [--out DIR] \
                     [--binary PATH] [--only INDEX]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if args.schedules == 0 || args.duration.is_zero() {
        bail!("--schedules and --duration-s must be positive");
    }
    Ok(args)
}

fn concord_binary(args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("concord"),
    };
    if !path.exists() {
        bail!(
            "no concord binary at {} (build it: cargo build --release -p concord, or pass --binary)",
            path.display()
        );
    }
    Ok(path)
}

fn row(index: u64, outcome: &Outcome) -> String {
    format!(
        "{index:>3} {:>20} {:<48} {:>6} {:>5} {:>7} {:>4} {:>10} {:>9} {:>5} {:>9} {:>6.1}",
        outcome.schedule.seed,
        outcome.schedule.mix(),
        outcome.ok,
        outcome.fail,
        outcome.unknown,
        outcome.set.lost.len(),
        outcome.set.unexpected.len(),
        outcome.set.recovered,
        outcome.stale_reads.len(),
        outcome.converged,
        outcome.elapsed.as_secs_f64(),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let binary = concord_binary(&args)?;
    std::fs::create_dir_all(&args.out)?;
    let mode = HostMode::choose()?;
    println!(
        "concord-chaos: seed {} schedules {} duration {:?} mode {}",
        args.seed,
        args.schedules,
        args.duration,
        mode.name()
    );
    let header = format!(
        "{:>3} {:>20} {:<48} {:>6} {:>5} {:>7} {:>4} {:>10} {:>9} {:>5} {:>9} {:>6}",
        "#",
        "seed",
        "faults",
        "ok",
        "fail",
        "unknown",
        "lost",
        "unexpected",
        "recovered",
        "stale",
        "converged",
        "secs"
    );
    let mut table = vec![header.clone()];
    println!("{header}");
    let (mut ok, mut lost, mut unexpected, mut converged, mut ran) = (0, 0, 0, 0, 0);
    let indices: Vec<u64> = match args.only {
        Some(i) => vec![i],
        None => (0..args.schedules).collect(),
    };
    for index in indices {
        let schedule = Schedule::soak(args.seed, index, args.duration);
        let history = args.out.join(format!("schedule-{index:03}-{}.jsonl", schedule.seed));
        let outcome = runner::run(&binary, &schedule, mode, &history)
            .await
            .with_context(|| format!("schedule {index} ({})", schedule.mix()))?;
        ran += 1;
        lost += outcome.set.lost.len();
        unexpected += outcome.set.unexpected.len();
        converged += usize::from(outcome.converged);
        let line = row(index, &outcome);
        println!("{line}");
        table.push(line);
        if outcome.valid() {
            ok += 1;
        } else {
            println!(
                "  VIOLATION in schedule {index}: lost {:?} unexpected {:?} stale {:?} converged {} up {}",
                outcome.set.lost,
                outcome.set.unexpected,
                outcome.stale_reads,
                outcome.converged,
                outcome.all_up
            );
            println!("  faults: {}", outcome.faults.join("; "));
            println!(
                "  replay: cargo run --release -p concord-testkit --bin concord-chaos -- --seed {} --schedules {} --duration-s {} --only {index}",
                args.seed,
                args.schedules,
                args.duration.as_secs()
            );
        }
    }
    let summary = format!(
        "schedules={ran} ok={ok} lost={lost} unexpected={unexpected} converged={converged} mode={}",
        mode.name()
    );
    table.push(summary.clone());
    let mut file = std::fs::File::create(args.out.join("summary.txt"))?;
    writeln!(file, "{}", table.join("\n"))?;
    println!("{summary}");
    if ok != ran {
        std::process::exit(1);
    }
    Ok(())
}
