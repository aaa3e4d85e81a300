//! A quirk of the host that every response has to respect.
//!
//! Spin answers key-value calls (its SQLite-backed store) and variable lookups inside
//! `tokio::task::block_in_place`. Until the instance next waits on something, the runtime thread
//! running it has handed its scheduler core away, so when the component returns its response in
//! that same stretch, hyper's connection task is woken on another thread and writes the response
//! head before the body has left the component. The body then goes out in a second small write,
//! and since Spin does not set TCP_NODELAY that write waits for the client's delayed ACK: about
//! 40 ms on a keep-alive connection. Measured under Spin 4.1: a handler whose last host call was
//! a key-value `get` stalled on 278 of 500 sequential requests; the same handler followed by a
//! 1 ns timer, which makes the instance wait once, stalled on none (p99 3.7 ms). A SQLite call
//! after the key-value one is not enough in general: a query returning no rows after it still
//! stalled 52 times in 400.
//!
//! So the request pipeline calls [`settle`] before returning a response, and it waits on a
//! timer when a blocking call happened since the instance last waited on one.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static BLOCKED_SINCE_LAST_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Records a host call that Spin answers inside `block_in_place`.
pub fn note_blocking_call() {
    BLOCKED_SINCE_LAST_WAIT.with(|blocked| blocked.set(true));
}

/// Makes the instance wait once if a blocking host call happened since it last waited, so the
/// response that follows leaves in one write.
pub async fn settle() {
    if BLOCKED_SINCE_LAST_WAIT.with(Cell::get) {
        spin_sdk::time::sleep(Duration::from_nanos(1)).await;
        BLOCKED_SINCE_LAST_WAIT.with(|blocked| blocked.set(false));
    }
}
