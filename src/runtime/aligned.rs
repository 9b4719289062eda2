//! Buffers for O_DIRECT writes. The kernel takes them only when the memory,
//! the file position and the length are all aligned to the device's logical
//! block; 4 KiB covers every block size Linux file systems use.

use std::ops::{Deref, DerefMut};

use aligned_vec::{AVec, ConstAlign};

/// The alignment of O_DIRECT memory, positions and lengths.
pub const DIRECT_IO_ALIGN: usize = 4096;

/// `position` rounded down to a block boundary.
pub fn align_down(position: u64) -> u64 {
    position & !(DIRECT_IO_ALIGN as u64 - 1)
}

/// A growable byte buffer whose memory starts on a block boundary.
pub struct AlignedBuf(AVec<u8, ConstAlign<DIRECT_IO_ALIGN>>);

impl AlignedBuf {
    pub fn new() -> AlignedBuf {
        AlignedBuf(AVec::new(DIRECT_IO_ALIGN))
    }

    pub fn with_capacity(bytes: usize) -> AlignedBuf {
        AlignedBuf(AVec::with_capacity(DIRECT_IO_ALIGN, bytes))
    }

    /// Zero-fills up to the next block boundary, so that the whole buffer can
    /// be written with O_DIRECT.
    pub fn pad_to_block(&mut self) {
        let padded = self.0.len().next_multiple_of(DIRECT_IO_ALIGN);
        self.0.resize(padded, 0);
    }
}

impl Default for AlignedBuf {
    fn default() -> AlignedBuf {
        AlignedBuf::new()
    }
}

/// For `Bytes::from_owner`: a written buffer becomes shared read-only bytes.
impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for AlignedBuf {
    type Target = AVec<u8, ConstAlign<DIRECT_IO_ALIGN>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

// SAFETY: the bytes live in one heap allocation that moving the AVec does
// not move, and only `&mut self` methods (which io_uring's ownership of the
// buffer rules out while an operation runs) can reallocate it.
unsafe impl tokio_uring::buf::IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.len()
    }

    fn bytes_total(&self) -> usize {
        self.0.capacity()
    }
}

// SAFETY: as for IoBuf; `set_init` only grows the length over bytes the
// kernel has just written.
unsafe impl tokio_uring::buf::IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, init_len: usize) {
        if self.0.len() < init_len {
            // SAFETY: the caller (the ring) initialised bytes up to init_len <= capacity.
            unsafe { self.0.set_len(init_len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_aligned_and_pads_to_a_block() {
        let mut buf = AlignedBuf::new();
        buf.extend_from_slice(&[7u8; 5000]);
        assert_eq!(buf.as_ptr() as usize % DIRECT_IO_ALIGN, 0);
        buf.pad_to_block();
        assert_eq!(buf.len(), 2 * DIRECT_IO_ALIGN);
        assert!(buf[5000..].iter().all(|&b| b == 0));
        assert_eq!(align_down(8191), 4096);
        assert_eq!(align_down(8192), 8192);
    }
}
