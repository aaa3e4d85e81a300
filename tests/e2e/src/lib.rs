//! Starts the app under real Spin for a test: `spin up` on a free loopback port with a fresh
//! state directory, in a process group of its own, plus an HTTP client with typed helpers.
//!
//! `spin` is found through `SPIN_BIN`, else on `PATH` (the test command puts Spin 4.1 there).
//! `E2E_INSTANCE_REUSE=fresh` makes every request use a new component instance
//! (`--max-instance-reuse-count 1`); the default keeps Spin's own reuse (128 requests per
//! instance, 16 at once). The test command runs the whole suite both ways.

mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::process::Command;

pub use process::ProcessGroup;
use process::read_output;

/// A password that passes every rule, for tests that are not about passwords.
pub const PASSWORD: &str = "correct horse battery staple";

/// The operator's one-time admin bootstrap credential every test app starts with.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-credential-0123456789abcdef";

/// How long a first `spin up` of a new build may take: it compiles every component.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The repository root (this crate lives in `tests/e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

/// The Spin CLI: `SPIN_BIN` if set, otherwise `spin` from `PATH`.
pub fn spin_binary() -> PathBuf {
    std::env::var_os("SPIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("spin"))
}

/// How Spin reuses component instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceReuse {
    /// Spin's defaults for WASIp3 components: up to 128 requests per instance, 16 at once.
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

    fn flags(self) -> Vec<String> {
        match self {
            // Spin's own defaults: nothing to pass.
            Self::Spin => Vec::new(),
            Self::Fresh => [
                "--max-instance-reuse-count",
                "1",
                "--max-instance-concurrent-reuse-count",
                "1",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// How to start the app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub manifest: PathBuf,
    pub state_dir: PathBuf,
    pub reuse: InstanceReuse,
    /// A runtime configuration file (`--runtime-config-file`), if any.
    pub runtime_config: Option<PathBuf>,
    /// Spin variables (`--variable name=value`).
    pub variables: Vec<(String, String)>,
    /// Further `spin up` arguments (`--key-value`, `--sqlite` seeds).
    pub extra_args: Vec<String>,
}

/// The app's key-value stores (the labels spin.toml grants), each kept in its own file.
pub const KV_STORES: &[&str] = &["sessions", "signing", "audit", "similarity_cache"];

/// The key-value stores runtime-config/local.toml keeps in memory rather than in a file.
pub const IN_MEMORY_KV_STORES: &[&str] = &["similarity_cache"];

/// A runtime configuration like runtime-config/local.toml: each key-value store in a file under
/// `state_dir`, except the similarity cache, which is in memory.
pub fn local_runtime_config(state_dir: &Path) -> String {
    runtime_config_with_files(state_dir, |label| !IN_MEMORY_KV_STORES.contains(&label))
}

/// A runtime configuration keeping every key-value store in a file under `state_dir`, for
/// tests that look into a store's file.
pub fn file_runtime_config(state_dir: &Path) -> String {
    runtime_config_with_files(state_dir, |_| true)
}

fn runtime_config_with_files(state_dir: &Path, in_file: impl Fn(&str) -> bool) -> String {
    KV_STORES
        .iter()
        .map(|label| {
            let mut table = format!("[key_value_store.{label}]\ntype = \"spin\"\n");
            if in_file(label) {
                let path = state_dir.join(kv_file_name(label));
                table.push_str(&format!("path = {:?}\n", path.display().to_string()));
            }
            table + "\n"
        })
        .collect()
}

/// The file a key-value store is kept in, under the state directory.
pub fn kv_file_name(label: &str) -> String {
    format!("kv-{}.db", label.replace('_', "-"))
}

impl AppConfig {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            manifest: workspace_root().join("spin.toml"),
            state_dir: state_dir.to_owned(),
            reuse: InstanceReuse::from_env(),
            runtime_config: None,
            variables: vec![("admin_bootstrap_token".into(), BOOTSTRAP_TOKEN.into())],
            extra_args: Vec::new(),
        }
    }

    /// The SQLite file of the key-value store `label`.
    pub fn kv_file(&self, label: &str) -> PathBuf {
        self.state_dir.join(kv_file_name(label))
    }

    /// Sets a Spin variable (replacing an earlier value).
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.retain(|(existing, _)| existing != name);
        self.variables.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A free TCP port on 127.0.0.1 at the moment of asking.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running `spin up` on 127.0.0.1, in a process group of its own (see [`ProcessGroup`]).
pub struct RunningSpin {
    group: ProcessGroup,
    pub base_url: String,
}

impl RunningSpin {
    pub async fn start(config: &AppConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.state_dir)?;
        let output_path = config.state_dir.join("spin.log");
        // A port taken between asking and binding makes Spin exit: try another.
        for attempt in 1.. {
            let written_before = read_output(&output_path).len();
            let port = free_port()?;
            match Self::start_on(config, port, &output_path).await {
                Ok(spin) => return Ok(spin),
                Err(error) => {
                    let log = read_output(&output_path);
                    let port_taken = log
                        .get(written_before..)
                        .unwrap_or_default()
                        .contains("in use");
                    if !port_taken || attempt == 3 {
                        return Err(error);
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn start_on(config: &AppConfig, port: u16, output_path: &Path) -> Result<Self> {
        let mut command = Command::new(spin_binary());
        command
            .arg("up")
            .arg("--from")
            .arg(&config.manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(&config.state_dir)
            .args(config.reuse.flags());
        let runtime_config = match &config.runtime_config {
            Some(path) => path.clone(),
            None => {
                let path = config.state_dir.join("runtime-config.toml");
                std::fs::write(&path, local_runtime_config(&config.state_dir))?;
                path
            }
        };
        command.arg("--runtime-config-file").arg(runtime_config);
        for (name, value) in &config.variables {
            command.arg("--variable").arg(format!("{name}={value}"));
        }
        command.args(&config.extra_args);
        let mut group = ProcessGroup::spawn(command, output_path).with_context(|| {
            format!(
                "cannot run {}: install Spin 4.1 or later, or set SPIN_BIN",
                spin_binary().display()
            )
        })?;
        // Spin accepts connections only once every component is loaded.
        group.wait_until_listening(port, START_TIMEOUT).await?;
        Ok(Self {
            group,
            base_url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Ends Spin the hard way, as a crash would: SIGKILL to the whole process group.
    pub async fn kill(&mut self) {
        self.group.kill().await;
    }

    /// What Spin and the components wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.group.output()
    }
}

/// The app under test: Spin, its state directory and an HTTP client.
pub struct TestApp {
    pub spin: RunningSpin,
    pub config: AppConfig,
    pub client: reqwest::Client,
    /// The first admin's token, once [`TestApp::admin`] made one.
    first_admin: std::sync::Mutex<Option<String>>,
    _state: Option<tempfile::TempDir>,
}

/// Starts the app with a fresh state directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|config| config).await
}

/// Starts the app with a fresh state directory and a customised configuration.
pub async fn spawn_app_with(customise: impl FnOnce(AppConfig) -> AppConfig) -> TestApp {
    let state = tempfile::tempdir().expect("temporary directory");
    let config = customise(AppConfig::new(state.path()));
    let mut app = start_app(config).await;
    app._state = Some(state);
    app
}

/// Longer than any request of the suite takes, however loaded the machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the app as `config` says; its state directory is the caller's to remove.
pub async fn start_app(config: AppConfig) -> TestApp {
    let spin = RunningSpin::start(&config).await.expect("spin up starts");
    TestApp {
        spin,
        config,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A request that hangs fails its test (which then ends its processes) instead of
            // holding the whole run.
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap(),
        first_admin: std::sync::Mutex::new(None),
        _state: None,
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
        format!("{}{}", self.spin.base_url, path)
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

    /// Registers `username` and makes it an administrator: the first one with the operator's
    /// bootstrap credential, later ones by the first one's grant. Returns a token with the role.
    pub async fn admin(&self, username: &str) -> String {
        let (_, token) = self.signed_in_user(username).await;
        let first_admin = self.first_admin.lock().unwrap().clone();
        match first_admin {
            None => {
                self.post_json_with_token(
                    "/auth/bootstrap",
                    &serde_json::json!({ "bootstrap_token": BOOTSTRAP_TOKEN }),
                    &token,
                )
                .await
                .expect(200);
            }
            Some(admin) => {
                self.send(
                    self.request(
                        reqwest::Method::PUT,
                        &format!("/auth/users/{username}/role"),
                    )
                    .bearer_auth(&admin)
                    .json(&serde_json::json!({ "role": "admin" })),
                )
                .await
                .expect(200);
            }
        }
        let token = self.login(username, PASSWORD).await;
        self.first_admin
            .lock()
            .unwrap()
            .get_or_insert_with(|| token.clone());
        token
    }

    /// Stops Spin abruptly (SIGKILL) and starts it again on the same state directory.
    pub async fn restart(&mut self) {
        self.spin.kill().await;
        self.spin = RunningSpin::start(&self.config)
            .await
            .expect("spin up restarts");
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
