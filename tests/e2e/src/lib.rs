//! Starts the app on `spin-test-host` for a test: a child process on a free loopback port with
//! a fresh state directory, plus an HTTP client with typed request helpers.
//!
//! `E2E_INSTANCE_REUSE=fresh` makes every request use a new component instance (Spin's
//! `--max-instance-reuse-count 1`); the default reuses instances as Spin 4 does (128 requests,
//! 16 at once). The test command runs the whole suite both ways.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A password that passes every rule, for tests that are not about passwords.
pub const PASSWORD: &str = "correct horse battery staple";

/// The repository root (this crate lives in `tests/e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

fn host_binary() -> PathBuf {
    match std::env::var_os("SPIN_TEST_HOST_BIN") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/release/spin-test-host"),
    }
}

/// How the host reuses component instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceReuse {
    /// Spin 4's defaults: up to 128 requests per instance, 16 at once.
    Spin,
    /// A new instance for every request.
    Fresh,
}

impl InstanceReuse {
    pub fn from_env() -> Self {
        match std::env::var("E2E_INSTANCE_REUSE").as_deref() {
            Ok("fresh") => Self::Fresh,
            _ => Self::Spin,
        }
    }

    fn flags(self) -> [String; 4] {
        let (total, concurrent) = match self {
            Self::Spin => (128, 16),
            Self::Fresh => (1, 1),
        };
        [
            "--max-instance-reuse-count".into(),
            total.to_string(),
            "--max-instance-concurrent-reuse-count".into(),
            concurrent.to_string(),
        ]
    }
}

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub reuse: InstanceReuse,
    /// `SPIN_VARIABLE_*` settings and the like.
    pub env: Vec<(String, String)>,
}

impl HostConfig {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            manifest: workspace_root().join("spin.toml"),
            state_dir: state_dir.to_owned(),
            reuse: InstanceReuse::from_env(),
            env: Vec::new(),
        }
    }

    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.env.push((
            format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
            value.to_owned(),
        ));
        self
    }
}

/// A running `spin-test-host` process.
pub struct RunningHost {
    child: Child,
    pub base_url: String,
    pub stderr_path: PathBuf,
}

impl RunningHost {
    pub async fn start(config: &HostConfig) -> Result<Self> {
        let binary = host_binary();
        if !binary.exists() {
            bail!(
                "{} is missing: build everything first (see the test command in README.md)",
                binary.display()
            );
        }
        std::fs::create_dir_all(&config.state_dir)?;
        let stderr_path = config.state_dir.join("host.stderr");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)?;
        let mut command = Command::new(&binary);
        command
            .arg("--from")
            .arg(&config.manifest)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--state-dir")
            .arg(&config.state_dir)
            .arg("--cache-dir")
            .arg(workspace_root().join("target/spin-test-host-cache"))
            .args(config.reuse.flags())
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = command.spawn().context("cannot start spin-test-host")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .context("spin-test-host did not start within 120 s")??;
        let Some(base_url) =
            first.and_then(|line| line.strip_prefix("listening on ").map(str::to_owned))
        else {
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            bail!("spin-test-host failed to start:\n{log}");
        };
        // Keep draining stdout so the host never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            base_url,
            stderr_path,
        })
    }

    /// Ends the host the hard way, as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// What the host and the components wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The app under test: a host, its state directory and an HTTP client.
pub struct TestApp {
    pub host: RunningHost,
    pub config: HostConfig,
    pub client: reqwest::Client,
    _state: Option<tempfile::TempDir>,
}

/// Starts the app with a fresh state directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|config| config).await
}

/// Starts the app with a fresh state directory and a customised configuration.
pub async fn spawn_app_with(customise: impl FnOnce(HostConfig) -> HostConfig) -> TestApp {
    let state = tempfile::tempdir().expect("temporary directory");
    let config = customise(HostConfig::new(state.path()));
    let host = RunningHost::start(&config).await.expect("host starts");
    TestApp {
        host,
        config,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _state: Some(state),
    }
}

/// A response read whole: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts this is an RFC 9457 problem with the given status and returns its body.
    #[track_caller]
    pub fn problem(self, status: u16) -> Value {
        let reply = self.expect(status);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "a problem document"
        );
        let body = reply.json();
        assert_eq!(body["status"], status);
        assert!(body["type"].as_str().unwrap().starts_with("urn:problem:"));
        assert!(body["title"].is_string() && body["detail"].is_string());
        body
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.host.base_url, path)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request is answered");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body").to_vec(),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path).bearer_auth(token))
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn post_json_with_token(&self, path: &str, body: &Value, token: &str) -> Reply {
        self.send(
            self.request(reqwest::Method::POST, path)
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// Registers an account and returns the public user.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        self.post_json(
            "/auth/register",
            &serde_json::json!({ "username": username, "password": password }),
        )
        .await
        .expect(201)
        .json()
    }

    /// Logs in and returns the whole 200 body.
    pub async fn login_response(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/login",
            &serde_json::json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        self.login_response(username, password)
            .await
            .expect(200)
            .json()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers and logs in a new user; returns (user, token).
    pub async fn signed_in_user(&self, username: &str) -> (Value, String) {
        let user = self.register(username, PASSWORD).await;
        let token = self.login(username, PASSWORD).await;
        (user, token)
    }

    /// Stops the host abruptly (SIGKILL) and starts a new one on the same state directory.
    pub async fn restart(&mut self) {
        self.host.kill().await;
        self.host = RunningHost::start(&self.config)
            .await
            .expect("host restarts");
    }

    /// Polls `probe` until it returns `Some`, for effects that land just after a response
    /// (log entries are stored once the response has been sent).
    pub async fn eventually<T, F, Fut>(&self, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        for _ in 0..100 {
            if let Some(value) = probe().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the expected effect did not appear within 5 s");
    }
}

/// Sends SIGKILL to a process (used to crash a host mid-load).
pub fn sigkill(pid: u32) {
    // SAFETY: plain kill(2) on a child process id we own.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}
