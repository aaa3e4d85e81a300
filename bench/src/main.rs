//! `bench`: measures scenarios (routes with their setup) at a given concurrency and duration
//! and prints requests/s, p50, p99 and errors, each as a ratio to the hello floor measured in
//! the same run. By default it starts the app and the floor on spin-test-host; pass
//! `--app-url` / `--floor-url` to measure anything else, such as `spin up`.
//!
//!     cargo run --release -p bench -- authenticate login
//!     cargo run --release -p bench -- --app-url http://127.0.0.1:3000 \
//!         --floor-url http://127.0.0.1:3001 authenticate

mod load;
mod scenarios;
mod seed;

/// The administrator of the seeded app (for the logs scenario).
pub const BENCH_ADMIN: &str = "bench-admin";
/// The log chain key of the seeded app: the seeder seals the seeded log with it.
pub const BENCH_LOG_KEY: &str = "bench-log-chain-key-0123456789abcdef";

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use e2e::{AppConfig, RunningSpin, workspace_root};

use crate::load::Measurement;
use crate::scenarios::{SCENARIOS, Scenario, Setup, Target};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the app's routes against the hello floor")]
struct Cli {
    /// Scenarios to run (see --list); all when none are named. The floor always runs.
    scenarios: Vec<String>,

    /// Concurrent keep-alive connections.
    #[arg(short, long, default_value_t = 32)]
    connections: usize,

    /// Measured seconds per scenario.
    #[arg(short, long, default_value_t = 10)]
    duration: u64,

    /// Unmeasured seconds before each scenario.
    #[arg(short, long, default_value_t = 2)]
    warmup: u64,

    /// The app to measure (default: spin.toml on spin-test-host).
    #[arg(long)]
    app_url: Option<String>,

    /// The app with access_log=off (default: started on spin-test-host).
    #[arg(long)]
    app_without_access_log_url: Option<String>,

    /// The floor (default: bench/spin.toml on spin-test-host).
    #[arg(long)]
    floor_url: Option<String>,

    /// Catalog items seeded for the large-data scenarios.
    #[arg(long, default_value_t = 100_000)]
    items: usize,

    /// Property listings seeded for the similarity search scenario.
    #[arg(long, default_value_t = 100_000)]
    listings: usize,

    /// Log entries seeded for the logs scenario.
    #[arg(long, default_value_t = 1_000_000)]
    log_entries: usize,

    /// Where to write the results table (default: bench/results/<time>.md).
    #[arg(long)]
    out: Option<std::path::PathBuf>,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Start the app and the floors once under Spin and exit: the first start of a build
    /// compiles every component, later ones use Spin's cache.
    #[arg(long)]
    warm_up: bool,

    /// Seed this (new) state directory with --items, --listings and --log-entries, then exit:
    /// `spin-test-host --state-dir <dir>` (or `spin up --state-dir <dir>`) serves it.
    #[arg(long, value_name = "DIR")]
    seed_into: Option<std::path::PathBuf>,
}

struct Targets {
    urls: HashMap<&'static str, String>,
    seeded: std::sync::Arc<seed::Seeded>,
    _apps: Vec<(RunningSpin, tempfile::TempDir)>,
}

fn target_key(target: Target) -> &'static str {
    match target {
        Target::Floor => "floor",
        Target::App => "app",
        Target::AppWithoutAccessLog => "app-without-access-log",
        Target::Seeded => "seeded",
    }
}

async fn start(
    manifest: std::path::PathBuf,
    variables: &[(&str, &str)],
    state: tempfile::TempDir,
) -> Result<(RunningSpin, tempfile::TempDir)> {
    let mut config = AppConfig::new(state.path());
    config.manifest = manifest;
    config.reuse = e2e::InstanceReuse::Spin;
    // Setup registers many users from one address.
    config = config.variable("register_max_per_client", "1000000");
    for (name, value) in variables {
        config = config.variable(name, value);
    }
    let spin = RunningSpin::start(&config).await?;
    Ok((spin, state))
}

async fn targets(cli: &Cli, needed: &[Target]) -> Result<Targets> {
    let mut urls = HashMap::new();
    let mut apps = Vec::new();
    let mut seeded = seed::Seeded::default();
    let root = workspace_root();
    for &target in needed {
        let key = target_key(target);
        if urls.contains_key(key) {
            continue;
        }
        let given = match target {
            Target::Floor => cli.floor_url.clone(),
            Target::App => cli.app_url.clone(),
            Target::AppWithoutAccessLog => cli.app_without_access_log_url.clone(),
            Target::Seeded => None,
        };
        let url = match given {
            Some(url) => url,
            None => {
                let state = tempfile::tempdir()?;
                let (manifest, variables): (_, &[(&str, &str)]) = match target {
                    Target::Floor => (root.join("bench/spin.toml"), &[]),
                    Target::App => (root.join("spin.toml"), &[]),
                    Target::AppWithoutAccessLog => {
                        (root.join("spin.toml"), &[("access_log", "off")])
                    }
                    Target::Seeded => {
                        eprintln!(
                            "seeding {} items, {} listings and {} log entries...",
                            cli.items, cli.listings, cli.log_entries
                        );
                        let started = std::time::Instant::now();
                        seeded = seed::seed(
                            state.path(),
                            scenarios::PASSWORD,
                            cli.items,
                            cli.listings,
                            cli.log_entries,
                        )?;
                        eprintln!("seeded in {:.0?}", started.elapsed());
                        (root.join("spin.toml"), &[("log_hmac_key", BENCH_LOG_KEY)])
                    }
                };
                let (spin, state) = start(manifest, variables, state).await?;
                let url = spin.base_url.clone();
                apps.push((spin, state));
                url
            }
        };
        urls.insert(key, url);
    }
    Ok(Targets {
        urls,
        seeded: std::sync::Arc::new(seeded),
        _apps: apps,
    })
}

async fn measure(cli: &Cli, scenario: &Scenario, targets: &Targets) -> Result<Measurement> {
    let base_url = targets.urls[target_key(scenario.target)].clone();
    let setup = Setup {
        client: reqwest::Client::new(),
        base_url: base_url.clone(),
        seeded: targets.seeded.clone(),
    };
    let factory = scenarios::prepare(scenario, &setup)
        .await
        .with_context(|| format!("setting up {}", scenario.name))?;
    load::run(
        &base_url,
        factory,
        cli.connections,
        Duration::from_secs(cli.warmup),
        Duration::from_secs(cli.duration),
    )
    .await
}

async fn warm_up() -> Result<()> {
    let root = workspace_root();
    for manifest in [root.join("spin.toml"), root.join("bench/spin.toml")] {
        let started = std::time::Instant::now();
        let (spin, _state) = start(manifest.clone(), &[], tempfile::tempdir()?).await?;
        drop(spin);
        eprintln!("{} ready in {:.1?}", manifest.display(), started.elapsed());
    }
    Ok(())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.warm_up {
        return warm_up().await;
    }
    if cli.list {
        for scenario in SCENARIOS {
            println!("{:<28} {}", scenario.name, scenario.description);
        }
        return Ok(());
    }
    if let Some(dir) = &cli.seed_into {
        let started = std::time::Instant::now();
        let seeded = seed::seed(
            dir,
            scenarios::PASSWORD,
            cli.items,
            cli.listings,
            cli.log_entries,
        )?;
        eprintln!(
            "seeded {} items, {} listings and {} log entries into {} in {:.0?} (user {}, password {:?})",
            seeded.item_ids.len(),
            seeded.listing_ids.len(),
            cli.log_entries,
            dir.display(),
            started.elapsed(),
            seed::SEED_OWNER,
            scenarios::PASSWORD,
        );
        return Ok(());
    }
    let floor = scenarios::find("hello").expect("the floor scenario exists");
    let mut chosen: Vec<Scenario> = Vec::new();
    if cli.scenarios.is_empty() {
        chosen.extend(SCENARIOS.iter().filter(|s| s.name != "hello").copied());
    } else {
        for name in &cli.scenarios {
            match scenarios::find(name) {
                Some(scenario) if scenario.name != "hello" => chosen.push(scenario),
                Some(_) => {}
                None => bail!("unknown scenario {name:?}; see --list"),
            }
        }
    }

    let mut needed = vec![Target::Floor];
    needed.extend(chosen.iter().map(|s| s.target));
    let targets = targets(&cli, &needed).await?;

    // The floor is measured before and after the scenarios; their mean is the reference.
    eprintln!("measuring the floor...");
    let floor_before = measure(&cli, &floor, &targets).await?;
    let mut results = Vec::new();
    for scenario in &chosen {
        eprintln!("measuring {}...", scenario.name);
        results.push((scenario.name, measure(&cli, scenario, &targets).await?));
    }
    eprintln!("measuring the floor again...");
    let floor_after = measure(&cli, &floor, &targets).await?;
    let floor_rps = (floor_before.requests_per_second() + floor_after.requests_per_second()) / 2.0;

    let mut table = String::new();
    writeln!(
        table,
        "| scenario | requests/s | % of floor | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|"
    )?;
    let mut row = |name: &str, m: &Measurement| {
        writeln!(
            table,
            "| {name} | {:.0} | {:.1}% | {:.2} | {:.2} | {} |",
            m.requests_per_second(),
            100.0 * m.requests_per_second() / floor_rps,
            m.percentile_ms(0.50),
            m.percentile_ms(0.99),
            m.errors
        )
    };
    row("hello (floor, before)", &floor_before)?;
    for (name, measurement) in &results {
        row(name, measurement)?;
    }
    row("hello (floor, after)", &floor_after)?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = format!(
        "Run at unix time {now}, commit {}, {} connections, {} s measured after {} s warm-up, {} CPUs, app at {}, floor at {}.\n\n",
        git_commit(),
        cli.connections,
        cli.duration,
        cli.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        targets.urls.get("app").map_or("(not used)", String::as_str),
        targets.urls["floor"],
    );
    println!("{header}{table}");
    let out = match &cli.out {
        Some(path) => path.clone(),
        None => workspace_root().join(format!("bench/results/{now}.md")),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, format!("{header}{table}"))?;
    eprintln!("saved to {}", out.display());
    Ok(())
}
