//! A quirk of the host that every response has to respect.
//!
//! Spin answers key-value calls (its SQLite-backed store) and variable lookups inside
//! `tokio::task::block_in_place`, which may hand the runtime thread's scheduler core to another
//! thread for good. When the component then returns its response, hyper's connection task can be
//! woken on another thread and write the response head before the body has left the component.
//! The body then goes out in a second small write, and since Spin does not set TCP_NODELAY that
//! write waits for the client's delayed ACK: about 40 ms on a keep-alive connection.
//!
//! The instance gets back in step by passing through Spin's scheduler before it answers: it
//! yields to the host, which yields to tokio. Measured under Spin 4.1, runs of 500 sequential
//! requests on one keep-alive connection (after 50 unmeasured), requests of 38 ms or more:
//! - `GET /auth/authenticate` (a key-value `get` last): with no wait 144-160 in three runs, one
//!   yield 166-196 in four, two yields none in twelve (p50 0.43-0.67 ms), a 1 ns timer 0-22 in
//!   seven (p50 1.73-2.24 ms: tokio fires timers on 1 ms ticks, so it waits for the next tick);
//! - `GET /messages/unread` (a key-value `get`, then a SQLite query, which waits on a thread of
//!   its own): with no wait 111-129, one yield none, two yields none (p50 0.59-1.01 ms), the
//!   timer 0-9 (p50 1.97-2.39 ms), in the same runs.
//!
//! So the request pipeline calls [`settle`] before returning a response, and it yields twice
//! when a blocking call happened since the instance last yielded twice. Yields move the whole
//! instance, which serves up to 16 requests at once: a request whose blocking call came while
//! another request was already yielding waits for yields of its own.

use std::cell::Cell;

thread_local! {
    /// Blocking host calls this instance has made.
    static BLOCKING_CALLS: Cell<u64> = const { Cell::new(0) };
    /// How many of those calls the instance has yielded twice after.
    static SETTLED_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// How many times the instance yields to the host after a blocking call: one yield right after
/// a key-value `get` still stalled on more than a third of the requests (see the module's note).
const YIELDS_AFTER_A_BLOCKING_CALL: usize = 2;

/// Records a host call that Spin answers inside `block_in_place`.
pub fn note_blocking_call() {
    BLOCKING_CALLS.with(|calls| calls.set(calls.get() + 1));
}

/// Yields to the host if a blocking host call happened since the instance last yielded twice,
/// so the response that follows leaves in one write.
pub async fn settle() {
    let made = BLOCKING_CALLS.with(Cell::get);
    if SETTLED_CALLS.with(Cell::get) >= made {
        return;
    }
    for _ in 0..YIELDS_AFTER_A_BLOCKING_CALL {
        spin_sdk::wit_bindgen::yield_async().await;
    }
    SETTLED_CALLS.with(|settled| settled.set(settled.get().max(made)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Polls `future` until it completes and returns how many times it yielded.
    fn yields_of(future: impl Future<Output = ()>) -> usize {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        let mut yields = 0;
        while future.as_mut().poll(&mut context) == Poll::Pending {
            yields += 1;
        }
        yields
    }

    #[test]
    fn a_response_yields_twice_after_a_blocking_call_and_not_again() {
        assert_eq!(yields_of(settle()), 0);
        note_blocking_call();
        assert_eq!(yields_of(settle()), 2);
        assert_eq!(yields_of(settle()), 0);
    }

    #[test]
    fn a_request_that_settles_while_another_is_yielding_still_yields_twice() {
        note_blocking_call();
        let mut first = pin!(settle());
        let mut context = Context::from_waker(Waker::noop());
        assert_eq!(first.as_mut().poll(&mut context), Poll::Pending);
        assert_eq!(yields_of(settle()), 2);
        assert_eq!(yields_of(first), 1);
    }

    #[test]
    fn a_blocking_call_made_while_another_request_yields_gets_yields_of_its_own() {
        note_blocking_call();
        let mut first = pin!(settle());
        let mut context = Context::from_waker(Waker::noop());
        assert_eq!(first.as_mut().poll(&mut context), Poll::Pending);
        // Another request on the instance reads the key-value store in the meantime.
        note_blocking_call();
        assert_eq!(yields_of(first), 1);
        assert_eq!(yields_of(settle()), 2);
        assert_eq!(yields_of(settle()), 0);
    }
}
