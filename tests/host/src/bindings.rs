//! Host bindings for Spin's interfaces, generated from the WIT under `wit/`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-imports",
    imports: { default: async | trappable },
    with: {
        "spin:sqlite/sqlite.connection": crate::sqlite::ConnectionHandle,
        "spin:key-value/key-value.store": crate::key_value::StoreHandle,
    },
});

pub use spin::key_value::key_value;
pub use spin::sqlite::sqlite;
pub use spin::variables::variables;
