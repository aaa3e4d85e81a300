//! Engine, linker and the per-component instance management Spin 4 uses for WASIp3 components:
//! one `ProxyHandler` per component, each worker instance serving up to `max_reuse` requests in
//! total and `max_concurrent` at once, dropped after being idle for a while.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, ViewFn, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::key_value::{KeyValue, KeyValueBackend, KeyValueInstance};
use crate::manifest::Component as ManifestComponent;
use crate::sqlite::{Sqlite, SqliteDatabases, SqliteInstance};
use crate::variables::{Resolver, Variables, VariablesInstance};

/// How instances are reused, as Spin's `--max-instance-reuse-count`,
/// `--max-instance-concurrent-reuse-count` and `--idle-instance-timeout` set it.
#[derive(Debug, Clone, Copy)]
pub struct ReuseConfig {
    pub max_reuse: usize,
    pub max_concurrent: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Option<Duration>,
}

/// What every instance of the app shares.
pub struct Shared {
    pub engine: Engine,
    pub key_value: Arc<KeyValueBackend>,
    pub databases: Arc<SqliteDatabases>,
    pub resolver: Arc<Resolver>,
}

/// A store's data: WASI, WASI HTTP and Spin's interfaces for one instance.
pub struct InstanceData {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    key_value: KeyValueInstance,
    sqlite: SqliteInstance,
    variables: VariablesInstance,
}

impl WasiView for InstanceData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Outbound HTTP is denied: the app declares no `allowed_outbound_hosts`, so Spin refuses every
/// outgoing request with `HTTP-request-denied`.
struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<UnsyncBoxBody<Bytes, ErrorCode>>,
                        Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
                    ),
                    wasmtime_wasi::TrappableError<ErrorCode>,
                >,
            > + Send,
    > {
        Box::new(async { Err(ErrorCode::HttpRequestDenied.into()) })
    }
}

pub fn engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    // Spin compiles with epoch interruption on (it pays for the checks even without timeouts).
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(1_000)
        .total_memories(1_000)
        .total_tables(2_000)
        .total_stacks(1_000)
        .total_core_instances(4_000)
        .table_elements(100_000)
        .max_component_instance_size(10 << 20)
        .max_core_instance_size(10 << 20)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    let engine = Engine::new(&config)?;

    // The epoch never reaches a store's deadline unless a request timeout is configured; the
    // ticker keeps `Store::set_epoch_deadline` meaningful when one is.
    let ticker = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = ticker.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
    Ok(engine)
}

const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Compiles a component, or loads the artifact compiled earlier for the same bytes and engine
/// settings (Cranelift takes seconds on large components; tests start many hosts).
pub fn load_component(engine: &Engine, path: &Path, cache_dir: Option<&Path>) -> Result<Component> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read component {}", path.display()))?;
    let Some(cache_dir) = cache_dir else {
        return Ok(Component::new(engine, &bytes)?);
    };
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let key = Sha256::new()
        .chain_update(&bytes)
        .chain_update(engine_hash.finish().to_le_bytes())
        .finalize();
    let cached: PathBuf = cache_dir.join(format!("{}.cwasm", hex(&key)));
    if cached.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash, into a cache directory only this host writes.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(component);
        }
    }
    let compiled = engine.precompile_component(&bytes)?;
    std::fs::create_dir_all(cache_dir)?;
    let partial = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&partial, &compiled)?;
    std::fs::rename(&partial, &cached)?;
    // SAFETY: just produced by this engine.
    Ok(unsafe { Component::deserialize(engine, &compiled) }?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn linker(engine: &Engine) -> Result<Linker<InstanceData>> {
    let mut linker = Linker::new(engine);
    // Rust's std for wasm32-wasip2 imports WASI 0.2; spin-sdk 7 imports WASI 0.3.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    crate::bindings::spin::key_value::key_value::add_to_linker::<_, KeyValue>(
        &mut linker,
        |data: &mut InstanceData| &mut data.key_value,
    )?;
    crate::bindings::spin::sqlite::sqlite::add_to_linker::<_, Sqlite>(
        &mut linker,
        |data: &mut InstanceData| &mut data.sqlite,
    )?;
    crate::bindings::spin::variables::variables::add_to_linker::<_, Variables>(
        &mut linker,
        |data: &mut InstanceData| &mut data.variables,
    )?;
    Ok(linker)
}

/// Everything needed to make a fresh instance of one component.
pub struct ComponentState {
    id: String,
    pre: ServicePre<InstanceData>,
    shared: Arc<Shared>,
    key_value_stores: Arc<HashSet<String>>,
    sqlite_databases: Arc<HashSet<String>>,
    environment: Vec<(String, String)>,
    reuse: ReuseConfig,
}

impl ComponentState {
    pub fn new(
        component: &ManifestComponent,
        compiled: &Component,
        linker: &Linker<InstanceData>,
        shared: Arc<Shared>,
        reuse: ReuseConfig,
    ) -> Result<Self> {
        let pre = linker
            .instantiate_pre(compiled)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component {:?} cannot be linked", component.id))?;
        let pre = ServicePre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {:?} does not export wasi:http/handler@0.3.0",
                    component.id
                )
            })?;
        Ok(Self {
            id: component.id.clone(),
            pre,
            shared,
            key_value_stores: Arc::new(component.key_value_stores.clone()),
            sqlite_databases: Arc::new(component.sqlite_databases.clone()),
            environment: component
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            reuse,
        })
    }

    fn new_store(&self) -> Store<InstanceData> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&self.environment)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let data = InstanceData {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            key_value: KeyValueInstance::new(
                self.key_value_stores.clone(),
                self.shared.key_value.clone(),
            ),
            sqlite: SqliteInstance::new(
                self.sqlite_databases.clone(),
                self.shared.databases.clone(),
            ),
            variables: VariablesInstance::new(self.id.clone(), self.shared.resolver.clone()),
        };
        let mut store = Store::new(&self.shared.engine, data);
        match self.reuse.request_timeout {
            Some(timeout) => {
                let ticks = (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
                store.set_epoch_deadline(ticks);
            }
            None => store.set_epoch_deadline(u64::MAX / 2),
        }
        store
    }
}

impl HandlerState for ComponentState {
    type StoreData = InstanceData;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceData, Expiration, Worker>> {
        let mut store = self.new_store();
        let service = self.pre.instantiate_async(&mut store).await?;
        let request_timeout = self.reuse.request_timeout.unwrap_or(Duration::MAX);
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: ViewFn::P3(|data: &mut InstanceData| data.http()),
            expiration: Expiration {
                idle_timeout: self.reuse.idle_timeout,
                request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            },
            state: Worker {
                component: self.id.clone(),
                max_reuse: self.reuse.max_reuse,
                max_concurrent: self.reuse.max_concurrent,
                request_timeout,
            },
        })
    }
}

/// Ends a worker after its idle timeout, or once its requests exceed the request timeout.
pub struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// Decides how many requests a worker takes, as Spin's HTTP trigger does.
pub struct Worker {
    component: String,
    max_reuse: usize,
    max_concurrent: usize,
    request_timeout: Duration,
}

impl WorkerState for Worker {
    type StoreData = InstanceData;
    type RequestId = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, InstanceData>,
        _id: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        let timeout = self.request_timeout;
        Box::pin(async move {
            if timeout == Duration::MAX {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(timeout).await
            }
        })
    }

    fn drop(&self, store: Store<InstanceData>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            eprintln!(
                "[{}] instance ended with an error: {error:?}",
                self.component
            );
        }
        drop(store);
    }
}
