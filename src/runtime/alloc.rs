//! The process allocator, with a guard against reservations no real request
//! needs.
//!
//! kafka-protocol 0.18 decodes an array by reading its element count off the
//! wire and calling `Vec::with_capacity(count)` before it decodes a single
//! element (upstream PRs #152, #161 and #200 fix this and are not released).
//! A frame of a dozen bytes can claim two billion elements and ask for
//! hundreds of GiB; the system allocator refuses, and Rust aborts the whole
//! broker. Here every allocation of `HUGE_BYTES` or more is served by an
//! anonymous `MAP_NORESERVE` mapping instead: address space is reserved but
//! no memory is committed until it is touched, so the decoder runs into the
//! end of the frame, returns an error, and the mapping is unmapped. Nothing
//! the broker allocates on purpose comes near this size (requests are bounded
//! by socket.request.max.bytes, write and read buffers by a few MiB).
//!
//! With `vm.overcommit_memory = 2` the kernel refuses such mappings too and
//! the abort remains; remove this guard once kafka-protocol bounds its
//! pre-allocation.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up are reserved lazily. Low enough that the
/// kernel's heuristic overcommit (which refuses a single reservation larger
/// than RAM + swap) cannot refuse one on any host with 256 MiB or more; high
/// enough that nothing the broker sizes on purpose reaches it (requests stop
/// at socket.request.max.bytes, 100 MiB by default; read and write buffers
/// are a few MiB). It was 4 GiB, which left hosts with less memory than that
/// open to the abort.
const HUGE_BYTES: usize = 256 << 20;
const PAGE_BYTES: usize = 4096;

pub struct GuardedAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_BYTES
}

unsafe fn map_lazily(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint; the kernel picks a free range.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr as *mut u8
    }
}

// SAFETY: every block is freed by the same mechanism that allocated it, decided
// by its layout's size, which Rust passes back unchanged to dealloc/realloc.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) && layout.align() <= PAGE_BYTES {
            // SAFETY: size is non-zero (it is at least HUGE_BYTES).
            return unsafe { map_lazily(layout.size()) };
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) && layout.align() <= PAGE_BYTES {
            // SAFETY: anonymous mappings are zero-filled.
            return unsafe { map_lazily(layout.size()) };
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) && layout.align() <= PAGE_BYTES {
            // SAFETY: ptr came from map_lazily with this very size.
            unsafe { libc::munmap(ptr as *mut libc::c_void, layout.size()) };
            return;
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !is_huge(&layout) && new_size < HUGE_BYTES {
            // SAFETY: forwarded as is.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing the threshold either way: move the block between the two mechanisms.
        // SAFETY: the caller guarantees new_size and the alignment form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block of the new layout, then a copy of what fits, then the old one freed.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_are_lazy_and_small_ones_normal() {
        let a = GuardedAllocator;
        for size in [64, HUGE_BYTES, 256 << 30] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a valid layout; the block is written at both ends, then freed with the same layout.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null(), "{size} bytes");
                p.write(1);
                p.add(size - 1).write(2);
                a.dealloc(p, layout);
            }
        }
    }
}
