//! Wire-level helpers that the kafka-protocol crate does not provide: the
//! fixed request-header prefix, and the hand-written zero-copy Fetch response
//! framing. No I/O here.

pub mod fetch;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("request frame of {0} bytes is too short for a header")]
    TooShort(usize),
}

/// The first fields of every request header, the same in all header versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl HeaderPrefix {
    /// Reads the prefix without consuming the frame, so the right header
    /// version can be chosen (or a v0 error sent) before full decoding.
    pub fn peek(frame: &[u8]) -> Result<HeaderPrefix, FrameError> {
        if frame.len() < 8 {
            return Err(FrameError::TooShort(frame.len()));
        }
        Ok(HeaderPrefix {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes(frame[4..8].try_into().unwrap()),
        })
    }
}
