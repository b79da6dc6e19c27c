//! `leader-election-sim`: runs seeds and prints `sim: N passed, M failed`.
//! Run it through `cargo xtask sim` (release mode, mutants compiled in).
//!
//! ```text
//! leader-election-sim [--seeds N] [--seed S] [--first S] [--backend memory|kubernetes|consul|etcd|all]
//!                     [--drift none|within|beyond] [--mutant NAME | --mutants] [--threads T] [--trace]
//! ```

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use leader_election_abstractions::mutants::Mutant;
use leader_election_sim::{run, Backend, Config, Drift, Outcome};

struct Args {
    seeds: u64,
    first: u64,
    single: Option<u64>,
    backends: Vec<Backend>,
    drift: Drift,
    mutant: Option<Mutant>,
    all_mutants: bool,
    threads: usize,
    trace: bool,
    repeat: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: 1000,
        first: 0,
        single: None,
        backends: Backend::ALL.to_vec(),
        drift: Drift::Within,
        mutant: None,
        all_mutants: false,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        trace: false,
        repeat: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} must be a whole number, got {v:?}"))
        };
        match flag.as_str() {
            "--seeds" => args.seeds = number("--seeds", value("--seeds")?)?,
            "--first" => args.first = number("--first", value("--first")?)?,
            "--seed" => args.single = Some(number("--seed", value("--seed")?)?),
            "--threads" => args.threads = number("--threads", value("--threads")?)?.max(1) as usize,
            "--backend" => {
                let v = value("--backend")?;
                args.backends = match v.as_str() {
                    "all" => Backend::ALL.to_vec(),
                    name => vec![Backend::from_name(name).ok_or(format!(
                        "--backend must be memory, kubernetes, consul, etcd or all, got {name:?}"
                    ))?],
                };
            }
            "--drift" => {
                args.drift = match value("--drift")?.as_str() {
                    "none" => Drift::None,
                    "within" => Drift::Within,
                    "beyond" => Drift::Beyond,
                    other => {
                        return Err(format!("--drift must be within or beyond, got {other:?}"))
                    }
                }
            }
            "--mutant" => {
                let v = value("--mutant")?;
                let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
                args.mutant = Some(Mutant::from_name(&v).ok_or(format!(
                    "--mutant must be one of {}, got {v:?}",
                    names.join(", ")
                ))?);
            }
            "--mutants" => args.all_mutants = true,
            "--trace" => args.trace = true,
            "--repeat" => args.repeat = true,
            other => return Err(format!("unknown argument {other:?} (see the crate docs)")),
        }
    }
    Ok(args)
}

#[cfg(feature = "mutants")]
fn set_mutant(mutant: Option<Mutant>) -> Result<(), String> {
    leader_election_abstractions::mutants::set_active(mutant);
    Ok(())
}

#[cfg(not(feature = "mutants"))]
fn set_mutant(mutant: Option<Mutant>) -> Result<(), String> {
    match mutant {
        None => Ok(()),
        Some(_) => {
            Err("mutants need the `mutants` feature (cargo xtask sim builds with it)".into())
        }
    }
}

fn print_trace(outcome: &Outcome) {
    for line in &outcome.trace {
        println!("  {line}");
    }
}

/// Runs `configs` on `threads` threads; stops early at the first failure
/// when `stop_at_failure`. Returns (passed, failed outcomes, terms).
fn run_many(
    configs: Vec<Config>,
    threads: usize,
    stop_at_failure: bool,
    repeat: bool,
) -> (u64, Vec<Outcome>, u64) {
    let next = Arc::new(AtomicUsize::new(0));
    let passed = Arc::new(AtomicU64::new(0));
    let terms = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let configs = Arc::new(configs);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, passed, terms, failed, configs) = (
                Arc::clone(&next),
                Arc::clone(&passed),
                Arc::clone(&terms),
                Arc::clone(&failed),
                Arc::clone(&configs),
            );
            std::thread::spawn(move || loop {
                if stop_at_failure && !failed.lock().map_or(true, |f| f.is_empty()) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(config) = configs.get(i) else {
                    return;
                };
                let mut outcome = run(*config);
                if repeat {
                    // Determinism: the same seed again gives the same trace.
                    let again = run(*config);
                    if let Some(line) = (0..outcome.trace.len().max(again.trace.len()))
                        .find(|&i| outcome.trace.get(i) != again.trace.get(i))
                    {
                        outcome.violations.push(format!(
                            "not deterministic: trace line {line} differs: {:?} then {:?}",
                            outcome.trace.get(line),
                            again.trace.get(line)
                        ));
                    }
                }
                terms.fetch_add(outcome.terms as u64, Ordering::Relaxed);
                if outcome.passed() {
                    passed.fetch_add(1, Ordering::Relaxed);
                } else if let Ok(mut failed) = failed.lock() {
                    failed.push(outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    let mut failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    failed.sort_by_key(|o| (o.config.seed, o.config.backend.name()));
    (
        passed.load(Ordering::SeqCst),
        failed,
        terms.load(Ordering::SeqCst),
    )
}

fn configs(args: &Args) -> Vec<Config> {
    let seeds: Vec<u64> = match args.single {
        Some(seed) => vec![seed],
        None => (args.first..args.first + args.seeds).collect(),
    };
    seeds
        .iter()
        .flat_map(|&seed| {
            args.backends.iter().map(move |&backend| Config {
                seed,
                backend,
                drift: args.drift,
            })
        })
        .collect()
}

fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("sim: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = leader_election_sim::log::install_from_env() {
        eprintln!("sim: {error}");
        std::process::exit(2);
    }
    if args.all_mutants {
        // The self-check: every mutant must be caught within the seeds.
        let mut missed = Vec::new();
        for mutant in Mutant::ALL {
            if let Err(error) = set_mutant(Some(mutant)) {
                eprintln!("sim: {error}");
                std::process::exit(2);
            }
            let started = std::time::Instant::now();
            let (passed, failed, _) = run_many(configs(&args), args.threads, true, false);
            match failed.first() {
                Some(caught) => println!(
                    "sim: mutant {} caught by seed {} ({}) after {} passing runs, {:.1?}: {}",
                    mutant.name(),
                    caught.config.seed,
                    caught.config.backend.name(),
                    passed,
                    started.elapsed(),
                    caught.violations.first().map_or("", String::as_str).trim()
                ),
                None => {
                    println!("sim: mutant {} NOT caught in {passed} runs", mutant.name());
                    missed.push(mutant.name());
                }
            }
        }
        let _ = set_mutant(None);
        let caught = Mutant::ALL.len() - missed.len();
        println!("sim: mutants: {caught} caught, {} missed", missed.len());
        std::process::exit(i32::from(!missed.is_empty()));
    }
    if let Err(error) = set_mutant(args.mutant) {
        eprintln!("sim: {error}");
        std::process::exit(2);
    }
    let started = std::time::Instant::now();
    let configs = configs(&args);
    let total = configs.len() as u64;
    let (passed, failed, terms) = run_many(configs, args.threads, false, args.repeat);
    if args.trace && args.single.is_some() && failed.is_empty() {
        // Show the trace of a passing single seed on request.
        for backend in &args.backends {
            print_trace(&run(Config {
                seed: args.single.unwrap_or(0),
                backend: *backend,
                drift: args.drift,
            }));
        }
    }
    for outcome in failed.iter().take(3) {
        for violation in &outcome.violations {
            println!("sim: seed {}: {}", outcome.config.seed, violation.trim());
        }
        println!(
            "sim: seed {} ({}, drift {:?}) FAILED; replay: cargo xtask sim --seed {} --backend {}{}{}",
            outcome.config.seed,
            outcome.config.backend.name(),
            outcome.config.drift,
            outcome.config.seed,
            outcome.config.backend.name(),
            match outcome.config.drift {
                Drift::Within => "",
                Drift::None => " --drift none",
                Drift::Beyond => " --drift beyond",
            },
            args.mutant.map(|m| format!(" --mutant {}", m.name())).unwrap_or_default(),
        );
        print_trace(outcome);
    }
    if failed.len() > 3 {
        let more: Vec<String> = failed[3..]
            .iter()
            .take(20)
            .map(|o| format!("{}/{}", o.config.seed, o.config.backend.name()))
            .collect();
        println!("sim: also failed: {}", more.join(" "));
    }
    println!(
        "sim: {total} runs, {terms} terms, {:.1?}",
        started.elapsed()
    );
    println!("sim: {passed} passed, {} failed", failed.len());
    std::process::exit(i32::from(!failed.is_empty()));
}
