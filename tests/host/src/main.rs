//! `spin-test-host`: serves this app's Spin components on wasmtime with Spin 4's semantics, so the
//! end-to-end tests and benchmarks can run where no Spin binary can be installed. Test
//! infrastructure only: the product is checked on real Spin.

mod bindings;
mod key_value;
mod manifest;
mod routes;
mod runtime;
mod server;
mod sqlite;
mod variables;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::manifest::Manifest;
use crate::routes::Router;
use crate::runtime::{ComponentState, ReuseConfig, Shared};

#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The app's manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,

    /// Address to listen on (loopback only in tests); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// Directory holding the default key-value store and SQLite database (Spin's `.spin`).
    #[arg(long, default_value = ".spin")]
    state_dir: PathBuf,

    /// Requests one instance serves before it is dropped (Spin's default for WASIp3: 128).
    #[arg(long, default_value_t = 128)]
    max_instance_reuse_count: usize,

    /// Requests one instance serves at once (Spin's default for WASIp3: 16).
    #[arg(long, default_value_t = 16)]
    max_instance_concurrent_reuse_count: usize,

    /// Milliseconds an idle instance is kept for reuse (Spin's default: 1000).
    #[arg(long, default_value_t = 1_000)]
    idle_instance_timeout_ms: u64,

    /// Milliseconds a request may run before its instance is dropped (Spin: no limit).
    #[arg(long)]
    request_timeout_ms: Option<u64>,

    /// Where compiled components are cached between runs.
    #[arg(long, env = "SPIN_TEST_HOST_CACHE")]
    cache_dir: Option<PathBuf>,

    /// Compile every component into the cache directory and exit (warms the cache before
    /// many hosts start at once).
    #[arg(long, requires = "cache_dir")]
    precompile: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let manifest = Manifest::load(&cli.manifest)?;
    if cli.precompile {
        let engine = runtime::engine()?;
        for component in manifest.components.values() {
            runtime::load_component(&engine, &component.source, cli.cache_dir.as_deref())
                .with_context(|| format!("compiling component {:?}", component.id))?;
        }
        return Ok(());
    }
    let router = Router::build(&manifest.routes)?;
    let resolver = variables::Resolver::new(&manifest, |name| std::env::var(name).ok())?;

    std::fs::create_dir_all(&cli.state_dir)
        .with_context(|| format!("cannot create state directory {}", cli.state_dir.display()))?;
    let key_value = key_value::KeyValueBackend::open(&cli.state_dir.join("sqlite_key_value.db"))?;
    let databases = sqlite::SqliteDatabases::new(HashMap::from([(
        "default".to_owned(),
        cli.state_dir.join("sqlite_db.db"),
    )]));

    let engine = runtime::engine()?;
    let linker = runtime::linker(&engine)?;
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        key_value: Arc::new(key_value),
        databases: Arc::new(databases),
        resolver: Arc::new(resolver),
    });
    let reuse = ReuseConfig {
        max_reuse: cli.max_instance_reuse_count.max(1),
        max_concurrent: cli.max_instance_concurrent_reuse_count.max(1),
        idle_timeout: Duration::from_millis(cli.idle_instance_timeout_ms),
        request_timeout: cli.request_timeout_ms.map(Duration::from_millis),
    };

    let mut handlers = HashMap::new();
    for component in manifest.components.values() {
        let compiled = {
            let engine = engine.clone();
            let source = component.source.clone();
            let cache = cli.cache_dir.clone();
            tokio::task::spawn_blocking(move || {
                runtime::load_component(&engine, &source, cache.as_deref())
            })
            .await??
        };
        let state = ComponentState::new(component, &compiled, &linker, shared.clone(), reuse)?;
        handlers.insert(
            component.id.clone(),
            wasmtime_wasi_http::handler::ProxyHandler::new(state),
        );
    }

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let address = listener.local_addr()?;
    // Tests read this line to learn the port.
    println!("listening on http://{address}");
    let server = Arc::new(server::Server::new(router, handlers, manifest.name.clone()));

    tokio::select! {
        result = server.serve(listener) => result,
        _ = shutdown_signal() => Ok(()),
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
