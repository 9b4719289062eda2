//! The group coordinator driven by a sequence of events the input chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The broker's allocator: kafka-protocol pre-allocates arrays from counts
/// read off the wire (see corelog::runtime::alloc), and the broker survives
/// that only with this allocator.
#[global_allocator]
static ALLOCATOR: corelog::runtime::alloc::GuardedAllocator = corelog::runtime::alloc::GuardedAllocator;

fuzz_target!(|data: &[u8]| corelog::fuzz::group_events(data));
