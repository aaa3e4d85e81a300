//! `bench`: measures scenarios (routes with their setup) under real Spin and reports each one's
//! requests/s, p50, p99 and errors against platform floors measured in the same run: Spin's
//! hello component, one key-value get, one SQLite point read and, when login runs, one argon2id
//! verification. Every scenario is read against hello and against the floor of what it cannot
//! avoid. Results go to
//! bench/results/<time>.md with a chart beside it (<time>.svg).
//!
//!     cargo run --release -p bench                          # every scenario, 32 connections
//!     cargo run --release -p bench -- -c 1 --get-routes     # one-connection latency of GETs
//!     cargo run --release -p bench -- authenticate login    # some of them

mod build;
mod chart;
mod cpu;
mod load;
mod scenarios;
mod seed;

/// The administrator of the seeded app (for the logs scenarios).
pub const BENCH_ADMIN: &str = "bench-admin";
/// The log chain key of the seeded app: the seeder seals the seeded log with it.
pub const BENCH_LOG_KEY: &str = "bench-log-chain-key-0123456789abcdef";

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use e2e::{AppConfig, RunningSpin, workspace_root};

use crate::load::Measurement;
use crate::scenarios::{FLOORS, Floor, SCENARIOS, Scenario, Setup, Target};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the app's routes under Spin against the platform's floors")]
struct Cli {
    /// Scenarios to run (see --list); all when none are named. The floors always run.
    scenarios: Vec<String>,

    /// Only the GET routes (for the one-connection latency table).
    #[arg(long)]
    get_routes: bool,

    /// Concurrent keep-alive connections.
    #[arg(short, long, default_value_t = 32)]
    connections: usize,

    /// Measured seconds per scenario.
    #[arg(short, long, default_value_t = 10)]
    duration: u64,

    /// Unmeasured seconds before each scenario.
    #[arg(short, long, default_value_t = 2)]
    warmup: u64,

    /// Catalog items seeded for the large-data scenarios.
    #[arg(long, default_value_t = 100_000)]
    items: usize,

    /// Property listings seeded for the similarity search scenario.
    #[arg(long, default_value_t = 100_000)]
    listings: usize,

    /// Log entries seeded for the logs scenarios.
    #[arg(long, default_value_t = 1_000_000)]
    log_entries: usize,

    /// Where to write the results table (default: bench/results/<time>.md); the chart goes
    /// beside it as .svg.
    #[arg(long)]
    out: Option<PathBuf>,

    /// An extra argument for the app's `spin up` (not the floors'), repeatable: e.g.
    /// `--app-arg=--max-instance-concurrent-reuse-count --app-arg=1`.
    #[arg(long = "app-arg", value_name = "ARG", allow_hyphen_values = true)]
    app_args: Vec<String>,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Start the app and the floors once under Spin and exit: the first start of a build
    /// compiles every component, later ones use Spin's cache.
    #[arg(long)]
    warm_up: bool,

    /// Seed this (new) state directory with --items, --listings and --log-entries, then exit:
    /// `spin up --state-dir <dir>` serves it.
    #[arg(long, value_name = "DIR")]
    seed_into: Option<PathBuf>,
}

/// The running apps, by target.
struct Targets {
    urls: HashMap<Target, String>,
    seeded: std::sync::Arc<seed::Seeded>,
    _apps: Vec<(RunningSpin, tempfile::TempDir)>,
}

/// Starts `manifest` under Spin on a state directory of its own.
async fn start(
    manifest: PathBuf,
    variables: &[(&str, &str)],
    extra_args: &[String],
    state: tempfile::TempDir,
) -> Result<(RunningSpin, tempfile::TempDir)> {
    start_with(
        AppConfig::new(state.path()),
        manifest,
        variables,
        extra_args,
        state,
    )
    .await
}

/// Starts the floors (bench/spin.toml), with the write floor's database in a file of its own.
async fn start_floors(state: tempfile::TempDir) -> Result<(RunningSpin, tempfile::TempDir)> {
    let runtime_config = state.path().join("runtime-config.toml");
    let writes = state.path().join("sqlite-writes.db");
    std::fs::write(
        &runtime_config,
        format!(
            "{}[sqlite_database.writes]\ntype = \"spin\"\npath = {:?}\n",
            e2e::local_runtime_config(state.path()),
            writes.display().to_string()
        ),
    )?;
    let mut config = AppConfig::new(state.path());
    config.runtime_config = Some(runtime_config);
    let manifest = workspace_root().join("bench/spin.toml");
    start_with(config, manifest, &[], &floor_seeds(), state).await
}

async fn start_with(
    mut config: AppConfig,
    manifest: PathBuf,
    variables: &[(&str, &str)],
    extra_args: &[String],
    state: tempfile::TempDir,
) -> Result<(RunningSpin, tempfile::TempDir)> {
    config.manifest = manifest;
    config.reuse = e2e::InstanceReuse::Spin;
    config.extra_args = extra_args.to_vec();
    // Setup registers many users from one address.
    config = config.variable("register_max_per_client", "1000000");
    for (name, value) in variables {
        config = config.variable(name, value);
    }
    let spin = RunningSpin::start(&config).await?;
    Ok((spin, state))
}

/// The floors' seeds: the key-value value and the SQLite row they read.
fn floor_seeds() -> Vec<String> {
    [
        "--key-value",
        "floor=a small value, like a session",
        "--sqlite",
        "CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        "--sqlite",
        "INSERT OR REPLACE INTO floor (id, body) VALUES (1, 'a small row, like an item')",
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn start_target(
    cli: &Cli,
    target: Target,
    seeded: &mut seed::Seeded,
) -> Result<(RunningSpin, tempfile::TempDir)> {
    let root = workspace_root();
    let state = tempfile::tempdir()?;
    match target {
        Target::Floors => start_floors(state).await,
        Target::App => start(root.join("spin.toml"), &[], &cli.app_args, state).await,
        Target::AppWithoutAccessLog => {
            let variables = [("access_log", "off")];
            start(root.join("spin.toml"), &variables, &cli.app_args, state).await
        }
        Target::Seeded | Target::SeededWithoutAccessLog => {
            let with_log = target == Target::Seeded;
            // The copy without the log serves only catalog items; items are seeded first, so
            // their ids come out the same without the listings and the log.
            let (listings, log_entries) = if with_log {
                (cli.listings, cli.log_entries)
            } else {
                (0, 0)
            };
            eprintln!(
                "seeding {} items, {listings} listings and {log_entries} log entries...",
                cli.items
            );
            let started = std::time::Instant::now();
            let this = seed::seed(
                state.path(),
                scenarios::PASSWORD,
                cli.items,
                listings,
                log_entries,
            )?;
            if with_log || seeded.item_ids.is_empty() {
                *seeded = this;
            }
            eprintln!("seeded in {:.0?}", started.elapsed());
            let access_log = if with_log { "on" } else { "off" };
            let variables = [("log_hmac_key", BENCH_LOG_KEY), ("access_log", access_log)];
            start(root.join("spin.toml"), &variables, &cli.app_args, state).await
        }
    }
}

async fn targets(cli: &Cli, needed: &[Target]) -> Result<Targets> {
    let mut urls = HashMap::new();
    let mut apps = Vec::new();
    let mut seeded = seed::Seeded::default();
    for &target in needed {
        if urls.contains_key(&target) {
            continue;
        }
        eprintln!("starting {target:?} under Spin...");
        let (spin, state) = start_target(cli, target, &mut seeded).await?;
        urls.insert(target, spin.base_url.clone());
        apps.push((spin, state));
    }
    Ok(Targets {
        urls,
        seeded: std::sync::Arc::new(seeded),
        _apps: apps,
    })
}

async fn measure(cli: &Cli, scenario: &Scenario, targets: &Targets) -> Result<Measurement> {
    let base_url = targets.urls[&scenario.target].clone();
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
    let started = std::time::Instant::now();
    let app = workspace_root().join("spin.toml");
    drop(start(app.clone(), &[], &[], tempfile::tempdir()?).await?);
    eprintln!("{} ready in {:.1?}", app.display(), started.elapsed());
    let started = std::time::Instant::now();
    drop(start_floors(tempfile::tempdir()?).await?);
    eprintln!(
        "the floors (bench/spin.toml) ready in {:.1?}",
        started.elapsed()
    );
    Ok(())
}

fn chosen(cli: &Cli) -> Result<Vec<Scenario>> {
    if cli.scenarios.is_empty() {
        return Ok(SCENARIOS
            .iter()
            .filter(|s| !cli.get_routes || s.get_route)
            .copied()
            .collect());
    }
    let mut chosen = Vec::new();
    for name in &cli.scenarios {
        match scenarios::find(name) {
            Some(scenario) if FLOORS.iter().any(|f| f.name == scenario.name) => {}
            Some(scenario) => chosen.push(scenario),
            None => bail!("unknown scenario {name:?}; see --list"),
        }
    }
    Ok(chosen)
}

/// The floors to measure: hello, key-value and SQLite always; the password hash only when a
/// chosen scenario is read against it (it takes the cores for as long as it runs), and the
/// SQLite write only when a chosen scenario stores a row.
fn floors_for(chosen: &[Scenario]) -> Vec<Scenario> {
    FLOORS
        .iter()
        .filter(|floor| match Floor::of_scenario(floor.name) {
            Some(Floor::Argon2) => chosen.iter().any(|s| s.floor == Floor::Argon2),
            Some(Floor::SqliteWrite) => chosen.iter().any(|s| scenarios::stores_a_row(s.name)),
            _ => true,
        })
        .copied()
        .collect()
}

/// One measured scenario, with the floors it is read against.
pub struct Row {
    pub scenario: Scenario,
    pub measurement: Measurement,
}

/// Each floor's mean rate over its runs before and after the scenarios.
fn floor_rates(floors: &[Row]) -> HashMap<Floor, f64> {
    let mut rates: HashMap<Floor, Vec<f64>> = HashMap::new();
    for row in floors {
        let floor = Floor::of_scenario(row.scenario.name).expect("a floor scenario");
        rates
            .entry(floor)
            .or_default()
            .push(row.measurement.requests_per_second());
    }
    rates
        .into_iter()
        .map(|(floor, values)| (floor, values.iter().sum::<f64>() / values.len() as f64))
        .collect()
}

/// Server CPU per request, rounded to the microsecond, or `-` where `/proc` could not be read.
fn server_cpu_cell(measurement: &Measurement) -> String {
    measurement
        .server_cpu_us_per_request()
        .map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"))
}

fn table(rows: &[Row], floors: &HashMap<Floor, f64>) -> Result<String> {
    let mut table = String::new();
    writeln!(
        table,
        "| scenario | requests/s | % of hello | floor | % of floor | p50 ms | p99 ms | errors | server CPU us/request |\n|---|---:|---:|---|---:|---:|---:|---:|---:|"
    )?;
    for row in rows {
        let m = &row.measurement;
        let rate = m.requests_per_second();
        writeln!(
            table,
            "| {} | {:.0} | {:.1}% | {} | {:.1}% | {:.2} | {:.2} | {} | {} |",
            row.scenario.name,
            rate,
            100.0 * rate / floors[&Floor::Hello],
            row.scenario.floor.scenario(),
            100.0 * rate / floors[&row.scenario.floor],
            m.percentile_ms(0.50),
            m.percentile_ms(0.99),
            m.errors,
            server_cpu_cell(m)
        )?;
    }
    Ok(table)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.warm_up {
        return warm_up().await;
    }
    if cli.list {
        for scenario in FLOORS.iter().chain(SCENARIOS) {
            println!("{:<28} {}", scenario.name, scenario.description);
        }
        return Ok(());
    }
    if let Some(dir) = &cli.seed_into {
        let started = std::time::Instant::now();
        seed::seed(
            dir,
            scenarios::PASSWORD,
            cli.items,
            cli.listings,
            cli.log_entries,
        )?;
        eprintln!(
            "seeded {} into {} in {:.0?} (user {}, password {:?}; serve it with log_hmac_key={BENCH_LOG_KEY})",
            cli.items,
            dir.display(),
            started.elapsed(),
            seed::SEED_OWNER,
            scenarios::PASSWORD,
        );
        return Ok(());
    }
    let chosen = chosen(&cli)?;
    let mut needed = vec![Target::Floors];
    needed.extend(chosen.iter().map(|s| s.target));
    let targets = targets(&cli, &needed).await?;

    let floor_scenarios = floors_for(&chosen);
    let total = chosen.len() + 2 * floor_scenarios.len();
    let mut done = 0;
    let mut progress = |name: &str| {
        done += 1;
        eprintln!("[{done}/{total}] measuring {name}...");
    };
    // The floors are measured before and after the scenarios; their means are the reference.
    let mut floor_rows = Vec::new();
    for floor in &floor_scenarios {
        progress(floor.name);
        floor_rows.push(Row {
            scenario: *floor,
            measurement: measure(&cli, floor, &targets).await?,
        });
    }
    let mut rows = Vec::new();
    for scenario in &chosen {
        progress(scenario.name);
        let measurement = measure(&cli, scenario, &targets).await?;
        eprintln!(
            "    {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} us of server CPU a request",
            measurement.requests_per_second(),
            measurement.percentile_ms(0.5),
            measurement.percentile_ms(0.99),
            measurement.errors,
            server_cpu_cell(&measurement)
        );
        rows.push(Row {
            scenario: *scenario,
            measurement,
        });
    }
    for floor in &floor_scenarios {
        progress(floor.name);
        floor_rows.push(Row {
            scenario: *floor,
            measurement: measure(&cli, floor, &targets).await?,
        });
    }
    let floors = floor_rates(&floor_rows);
    let mut all_rows = floor_rows;
    all_rows.extend(rows);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = format!(
        "Run at unix time {now}, {}, under {}, {} connection(s), {} s measured after {} s warm-up, {} CPUs{}. Floors (mean of before and after): {}.\n\n",
        build::describe(&workspace_root()),
        spin_version(),
        cli.connections,
        cli.duration,
        cli.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        app_args_note(&cli.app_args),
        floors_note(&floor_scenarios, &floors),
    );
    let table = table(&all_rows, &floors)?;
    println!("{header}{table}");
    let out = match &cli.out {
        Some(path) => path.clone(),
        None => workspace_root().join(format!("bench/results/{now}.md")),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, format!("{header}{table}"))?;
    let svg = out.with_extension("svg");
    std::fs::write(&svg, chart::svg(&all_rows, &floors, cli.connections))?;
    eprintln!("saved {} and {}", out.display(), svg.display());
    Ok(())
}

fn spin_version() -> String {
    std::process::Command::new(e2e::spin_binary())
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "spin (version unknown)".into())
}

/// Each measured floor's mean rate, in measuring order, for the results' header.
fn floors_note(floor_scenarios: &[Scenario], rates: &HashMap<Floor, f64>) -> String {
    floor_scenarios
        .iter()
        .map(|floor| {
            let rate = rates[&Floor::of_scenario(floor.name).expect("a floor")];
            format!("{} {rate:.0}/s", floor.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the app's `spin up` differed from the defaults, for the results' header.
fn app_args_note(app_args: &[String]) -> String {
    if app_args.is_empty() {
        String::new()
    } else {
        format!(", the app started with `{}`", app_args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(floors: &[Scenario]) -> Vec<&'static str> {
        floors.iter().map(|floor| floor.name).collect()
    }

    #[test]
    fn the_hash_floor_runs_only_when_a_chosen_scenario_is_read_against_it() {
        let authenticate = scenarios::find("authenticate").unwrap();
        let login = scenarios::find("login").unwrap();
        assert_eq!(
            names(&floors_for(&[authenticate])),
            ["hello", "kv-get", "sqlite-read"]
        );
        assert_eq!(
            names(&floors_for(&[authenticate, login])),
            ["hello", "kv-get", "sqlite-read", "argon2-verify"]
        );
    }

    #[test]
    fn the_write_floor_runs_only_when_a_chosen_scenario_stores_a_row() {
        let read = scenarios::find("messages-read").unwrap();
        let write = scenarios::find("messages-write").unwrap();
        assert_eq!(
            names(&floors_for(&[read])),
            ["hello", "kv-get", "sqlite-read"]
        );
        assert_eq!(
            names(&floors_for(&[read, write])),
            ["hello", "kv-get", "sqlite-read", "sqlite-write"]
        );
    }

    #[test]
    fn every_floor_scenario_names_its_floor() {
        for floor in FLOORS {
            let measured = Floor::of_scenario(floor.name).expect("a floor");
            assert_eq!(measured.scenario(), floor.name);
        }
        assert_eq!(Floor::of_scenario("login"), None);
    }
}
