//! The shared engines several Spin processes run on: a Redis server for the key-value stores
//! and, for SQLite, either one database file or a libSQL server (sqld). Each is started on a
//! free loopback port in a process group of its own and ended with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{KV_STORES, ProcessGroup, free_port, workspace_root};
use serde_json::{Value, json};
use tokio::process::Command;

/// A server in a process group of its own, on a loopback port, ended with its group when
/// dropped.
pub struct Server {
    _group: ProcessGroup,
    pub port: u16,
}

impl Server {
    /// Starts `program` with `args(port)` and waits until the port accepts connections.
    async fn start(program: &Path, args: impl Fn(u16) -> Vec<String>, log: &Path) -> Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(program);
        command.args(args(port));
        let mut group = ProcessGroup::spawn(command, log)
            .with_context(|| format!("cannot run {}", program.display()))?;
        group
            .wait_until_listening(port, Duration::from_secs(30))
            .await?;
        Ok(Self {
            _group: group,
            port,
        })
    }
}

/// A program from an environment variable, else from `fallbacks`, else from PATH.
fn program(variable: &str, name: &str, fallbacks: &[PathBuf]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    fallbacks
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Redis without persistence: the test's key-value stores, one database number per label.
pub async fn start_redis(dir: &Path) -> Result<Server> {
    let redis = program("REDIS_SERVER", "redis-server", &[]);
    Server::start(
        &redis,
        |port| {
            ["--bind", "127.0.0.1", "--port", &port.to_string()]
                .into_iter()
                .chain(["--save", "", "--appendonly", "no", "--databases", "16"])
                .map(str::to_owned)
                .collect()
        },
        &dir.join("redis.log"),
    )
    .await
    .context("redis-server is needed (Debian: apt-get install redis-server; the test command installs it)")
}

/// The libSQL server beside the project (`../shared/bin/sqld`), or `SQLD_BIN`, or PATH, with
/// room for `max_connections` client streams (one per statement or transaction in flight; sqld
/// makes a new one wait at most 1 s for room), and configured as deploy/README.md advises:
/// checkpoints by time, because its checkpoints every 1,000 pages made writers fail as locked
/// and, once in a while, stopped every write for good (README.md, "A known sqld fault").
pub async fn start_sqld(dir: &Path, max_connections: usize) -> Result<Server> {
    let sqld = program(
        "SQLD_BIN",
        "sqld",
        &[workspace_root().join("../shared/bin/sqld")],
    );
    let db_path = dir.join("sqld-data");
    Server::start(
        &sqld,
        |port| {
            vec![
                "--http-listen-addr".into(),
                format!("127.0.0.1:{port}"),
                "--db-path".into(),
                db_path.display().to_string(),
                "--max-concurrent-connections".into(),
                max_connections.to_string(),
                "--checkpoint-interval-s".into(),
                "60".into(),
            ]
        },
        &dir.join("sqld.log"),
    )
    .await
    .context("sqld (the libSQL server) is needed: ../shared/bin/sqld, SQLD_BIN or PATH")
}

/// Where the processes keep their one SQLite database.
pub enum SharedDatabase {
    /// One file every process opens (`type = "spin"` with the same `path`).
    File(PathBuf),
    /// A libSQL server (`type = "libsql"`), by its HTTP URL.
    Libsql(String),
}

impl SharedDatabase {
    /// The runtime configuration every process starts with.
    pub fn runtime_config(&self, redis_port: u16) -> String {
        let mut config: String = KV_STORES
            .iter()
            .enumerate()
            .map(|(number, label)| {
                format!(
                    "[key_value_store.{label}]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{redis_port}/{number}\"\n\n"
                )
            })
            .collect();
        config.push_str(&match self {
            Self::File(path) => format!(
                "[sqlite_database.default]\ntype = \"spin\"\npath = {:?}\n",
                path.display().to_string()
            ),
            Self::Libsql(url) => {
                format!(
                    "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{url}\"\ntoken = \"\"\n"
                )
            }
        });
        config
    }

    /// The first column of the first row of `sql`, an integer, read from outside the app.
    pub async fn integer(&self, sql: &str) -> Result<i64> {
        match self {
            Self::File(path) => {
                let connection = rusqlite::Connection::open(path)?;
                connection.busy_timeout(Duration::from_secs(5))?;
                Ok(connection.query_row(sql, [], |row| row.get(0))?)
            }
            Self::Libsql(url) => libsql_integer(url, sql).await,
        }
    }
}

/// One request to sqld's HTTP API (Hrana over HTTP, `/v2/pipeline`), its answer as JSON.
async fn pipeline(url: &str, request: Value) -> Result<Value> {
    Ok(reqwest::Client::new()
        .post(format!("{url}/v2/pipeline"))
        .json(&request)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// One statement through sqld's HTTP API, on a stream closed with it.
async fn libsql_integer(url: &str, sql: &str) -> Result<i64> {
    let request = json!({"requests": [
        {"type": "execute", "stmt": {"sql": sql}},
        {"type": "close"},
    ]});
    let reply = pipeline(url, request).await?;
    let cell = &reply["results"][0]["response"]["result"]["rows"][0][0];
    cell["value"]
        .as_str()
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("no integer in sqld's answer to {sql}: {reply}"))
}

/// A client stream held open at sqld (and so one of its connections) until closed.
pub struct HeldStream {
    url: String,
    baton: String,
}

impl HeldStream {
    pub async fn open(url: &str) -> Result<Self> {
        let request = json!({"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}]});
        let reply = pipeline(url, request).await?;
        let baton = reply["baton"]
            .as_str()
            .with_context(|| format!("no baton in sqld's answer: {reply}"))?;
        Ok(Self {
            url: url.to_owned(),
            baton: baton.to_owned(),
        })
    }

    pub async fn close(self) -> Result<()> {
        let request = json!({"baton": self.baton, "requests": [{"type": "close"}]});
        pipeline(&self.url, request).await.map(drop)
    }
}
