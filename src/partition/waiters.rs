//! Long polls wait on the partitions they read: each replica has its own
//! notification, which its log fires when its high watermark moves, so a
//! write to one partition wakes only the fetches waiting on it.
//!
//! A fetch over several partitions registers on all of them before it
//! checks whether anything moved since its read, and then waits for any:
//! a write that lands between the read and the wait is not lost (tokio's
//! `Notified`, once enabled, keeps a `notify_waiters` that happens before
//! it is polled).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Registrations on the writes of several partitions.
pub struct WriteWaiters<'a> {
    /// Boxed: a `Notified` must not move once enabled. One per partition of
    /// a long poll that found too little, never per message.
    notified: Vec<Pin<Box<Notified<'a>>>>,
}

impl<'a> WriteWaiters<'a> {
    /// Registers on each of `notifies` now: any write from here on wakes
    /// [`any`](Self::any), even one that comes before it is awaited.
    pub fn register(notifies: impl IntoIterator<Item = &'a Notify>) -> WriteWaiters<'a> {
        let mut notified: Vec<_> = notifies.into_iter().map(|n| Box::pin(n.notified())).collect();
        for n in &mut notified {
            n.as_mut().enable();
        }
        WriteWaiters { notified }
    }

    /// Resolves once any registered partition has been written to (never,
    /// when none is registered: the caller's deadline ends the wait).
    pub async fn any(&mut self) {
        poll_fn(|cx| match self.notified.iter_mut().any(|n| n.as_mut().poll(cx).is_ready()) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(test: impl Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(test);
    }

    async fn woken(waiters: &mut WriteWaiters<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), waiters.any()).await.is_ok()
    }

    #[test]
    fn a_write_to_one_partition_does_not_wake_a_waiter_on_another() {
        run(async {
            let (x, y) = (Notify::new(), Notify::new());
            let mut on_y = WriteWaiters::register([&y]);
            x.notify_waiters();
            assert!(!woken(&mut on_y).await, "a write to x woke a waiter on y");
            y.notify_waiters();
            assert!(woken(&mut on_y).await);
        });
    }

    #[test]
    fn a_write_between_registering_and_waiting_is_not_lost() {
        run(async {
            let (x, y) = (Notify::new(), Notify::new());
            let mut waiters = WriteWaiters::register([&x, &y]);
            // The fetch re-reads here; the write lands before it waits.
            y.notify_waiters();
            assert!(woken(&mut waiters).await, "a write before the wait was lost");
        });
    }

    #[test]
    fn nothing_registered_waits_for_the_deadline() {
        run(async {
            let mut none = WriteWaiters::register([]);
            assert!(!woken(&mut none).await);
        });
    }
}
