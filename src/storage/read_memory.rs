//! The memory that read results hold until they are dropped. A fetch answer
//! keeps the buffers its record bytes live in (an O_DIRECT read's window, a
//! hot-tail write buffer) until its connection has sent it, and a client
//! that does not read its socket decides how long that is. Each shard counts
//! those buffers, each once however many answers share it, so a fetch can be
//! refused memory before it reads (`Reservation::take`) and the shard's total
//! stays under the bound its caller sets.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;

#[derive(Default)]
struct Held {
    /// Each buffer read results hold, by its address: (slices alive, bytes
    /// the buffer takes). A buffer cannot be freed, and its address reused,
    /// while it is listed: the slices listed keep it alive.
    buffers: HashMap<usize, (usize, usize)>,
    /// Bytes of the buffers listed plus bytes reserved for reads under way.
    bytes: usize,
}

thread_local! {
    /// Per shard thread, like the buffers themselves.
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

/// Bytes this shard's read results hold, and reserve for reads under way.
pub fn held_bytes() -> usize {
    HELD.with_borrow(|held| held.bytes)
}

/// Memory set aside for a read under way, given back when dropped (by then
/// the read's result holds what it took).
#[must_use]
pub struct Reservation(usize);

impl Reservation {
    /// Sets aside `bytes` unless the shard would then hold more than `bytes_max`.
    pub fn take(bytes: usize, bytes_max: usize) -> Option<Reservation> {
        HELD.with_borrow_mut(|held| {
            let after = held.bytes.checked_add(bytes)?;
            (after <= bytes_max).then(|| {
                held.bytes = after;
                Reservation(bytes)
            })
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = HELD.try_with(|held| held.borrow_mut().bytes -= self.0);
    }
}

/// `slice`, a part of the buffer that starts at `buffer` and takes
/// `footprint` bytes, as bytes that count that buffer as held until their
/// last clone is dropped.
pub(super) fn hold(slice: Bytes, buffer: *const u8, footprint: usize) -> Bytes {
    let buffer = buffer as usize;
    HELD.with_borrow_mut(|held| {
        let (slices, bytes) = held.buffers.entry(buffer).or_insert((0, footprint));
        *slices += 1;
        if *slices == 1 {
            held.bytes += *bytes;
        }
    });
    Bytes::from_owner(HeldSlice { slice, buffer })
}

struct HeldSlice {
    slice: Bytes,
    buffer: usize,
}

impl AsRef<[u8]> for HeldSlice {
    fn as_ref(&self) -> &[u8] {
        &self.slice
    }
}

impl Drop for HeldSlice {
    fn drop(&mut self) {
        // The thread may be exiting; then nothing is counted any more.
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            let Some((slices, bytes)) = held.buffers.get_mut(&self.buffer) else { return };
            *slices -= 1;
            if *slices == 0 {
                let bytes = *bytes;
                held.buffers.remove(&self.buffer);
                held.bytes -= bytes;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_counts_once_until_its_last_slice_is_dropped() {
        let before = held_bytes();
        let buffer = Bytes::from(vec![7u8; 1000]);
        let (a, b) =
            (hold(buffer.slice(0..10), buffer.as_ptr(), 4096), hold(buffer.slice(5..20), buffer.as_ptr(), 4096));
        assert_eq!((&a[..], b.len()), (&[7u8; 10][..], 15));
        assert_eq!(held_bytes(), before + 4096, "two answers sharing a buffer hold it once");
        let clone = a.slice(2..4);
        drop((a, b));
        assert_eq!(held_bytes(), before + 4096, "a slice of an answer still holds the buffer");
        drop(clone);
        assert_eq!(held_bytes(), before);
    }

    #[test]
    fn reservations_stay_under_the_bound_and_are_given_back() {
        let before = held_bytes();
        let first = Reservation::take(600, before + 1000).expect("fits");
        assert!(Reservation::take(500, before + 1000).is_none(), "would pass the bound");
        let second = Reservation::take(400, before + 1000).expect("fits exactly");
        drop((first, second));
        assert_eq!(held_bytes(), before);
        let one = Reservation::take(1, usize::MAX).expect("fits");
        assert!(Reservation::take(usize::MAX, usize::MAX).is_none(), "no overflow");
        drop(one);
    }
}
