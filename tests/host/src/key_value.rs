//! `spin:key-value/key-value@3.0.0` as Spin's default store implements it: one SQLite file
//! (`sqlite_key_value.db` in the state directory, Spin's own schema) behind a single shared
//! connection, rollback journal and full sync, no atomic read-modify-write. Labels a component did
//! not declare are refused with `access-denied` before anything else is checked.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

use crate::bindings::key_value::{self, Error};

/// Spin caps what it buffers for a guest at 128 MiB.
const MAX_RESULT_BYTES: usize = 128 << 20;
/// Spin's limit on stores open at once in one instance.
const STORE_TABLE_CAPACITY: usize = 256;

/// The guest-visible handle type; the host keeps what it refers to in [`KeyValueInstance`].
pub struct StoreHandle;

/// The SQLite file behind every key-value label.
pub struct KeyValueBackend {
    connection: Mutex<rusqlite::Connection>,
}

impl KeyValueBackend {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let connection = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open key-value file {}", path.display()))?;
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
            [],
        )?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let connection = self.connection.lock().unwrap();
        let mut statement = connection
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")
            .map_err(other)?;
        let mut rows = statement.query([store, key]).map_err(other)?;
        let value = match rows.next().map_err(other)? {
            Some(row) => Some(row.get::<_, Vec<u8>>(0).map_err(other)?),
            None => None,
        };
        if value.as_ref().is_some_and(|v| v.len() > MAX_RESULT_BYTES) {
            return Err(Error::Other(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            )));
        }
        Ok(value)
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        let connection = self.connection.lock().unwrap();
        connection
            .prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(store, key) DO UPDATE SET value = ?3",
            )
            .and_then(|mut statement| statement.execute(rusqlite::params![store, key, value]))
            .map(drop)
            .map_err(other)
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), Error> {
        let connection = self.connection.lock().unwrap();
        connection
            .prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")
            .and_then(|mut statement| statement.execute([store, key]))
            .map(drop)
            .map_err(other)
    }

    fn keys(&self, store: &str) -> Result<Vec<String>, Error> {
        let connection = self.connection.lock().unwrap();
        let mut statement = connection
            .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")
            .map_err(other)?;
        let keys = statement
            .query_map([store], |row| row.get::<_, String>(0))
            .map_err(other)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)?;
        Ok(keys)
    }
}

fn other(error: rusqlite::Error) -> Error {
    Error::Other(error.to_string())
}

/// Per-instance key-value state: what the component may open and what it has open.
pub struct KeyValueInstance {
    allowed: Arc<HashSet<String>>,
    backend: Arc<KeyValueBackend>,
    open_stores: HashMap<u32, String>,
    next_rep: u32,
}

impl KeyValueInstance {
    pub fn new(allowed: Arc<HashSet<String>>, backend: Arc<KeyValueBackend>) -> Self {
        Self {
            allowed,
            backend,
            open_stores: HashMap::new(),
            next_rep: 1,
        }
    }

    fn label(&self, store: &Resource<StoreHandle>) -> wasmtime::Result<String> {
        self.open_stores
            .get(&store.rep())
            .cloned()
            .ok_or_else(|| wasmtime::format_err!("invalid key-value store handle"))
    }
}

/// Marker for the linker: the host data behind `spin:key-value`.
pub struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = &'a mut KeyValueInstance;
}

/// Runs blocking SQLite work the way Spin's key-value store does: on the current worker thread.
fn blocking<R>(work: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(work)
}

impl key_value::Host for KeyValueInstance {}

impl key_value::HostStore for KeyValueInstance {
    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.open_stores.remove(&store.rep());
        Ok(())
    }
}

/// The backend and the label behind an open store handle.
fn backend_and_label<T: Send>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<StoreHandle>,
) -> wasmtime::Result<(Arc<KeyValueBackend>, String)> {
    accessor.with(|mut access| {
        let state = access.get();
        state
            .label(store)
            .map(|label| (state.backend.clone(), label))
    })
}

impl<T: Send> key_value::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, Error>> {
        Ok(accessor.with(|mut access| {
            let state = access.get();
            if !state.allowed.contains(&label) {
                return Err(Error::AccessDenied);
            }
            if state.open_stores.len() >= STORE_TABLE_CAPACITY {
                return Err(Error::StoreTableFull);
            }
            let rep = state.next_rep;
            state.next_rep += 1;
            state.open_stores.insert(rep, label);
            Ok(Resource::new_own(rep))
        }))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (backend, label) = backend_and_label(accessor, &store)?;
        Ok(blocking(|| backend.get(&label, &key)))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (backend, label) = backend_and_label(accessor, &store)?;
        Ok(blocking(|| backend.set(&label, &key, &value)))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (backend, label) = backend_and_label(accessor, &store)?;
        Ok(blocking(|| backend.delete(&label, &key)))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (backend, label) = backend_and_label(accessor, &store)?;
        Ok(blocking(|| backend.get(&label, &key)).map(|value| value.is_some()))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let (backend, label) = backend_and_label(accessor, &store)?;
        let (keys, outcome) = match blocking(|| backend.keys(&label)) {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((keys, outcome))
        })
    }
}
