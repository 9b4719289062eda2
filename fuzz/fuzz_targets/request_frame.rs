//! The request decoder: one request frame, header and body, as api::handle decodes it.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The broker's allocator: kafka-protocol pre-allocates arrays from counts
/// read off the wire (see corelog::runtime::alloc), and the broker survives
/// that only with this allocator.
#[global_allocator]
static ALLOCATOR: corelog::runtime::alloc::GuardedAllocator = corelog::runtime::alloc::GuardedAllocator;

fuzz_target!(|data: &[u8]| corelog::fuzz::request_frame(data));
