//! Kafka frames without I/O: a request is a size prefix (i32, bytes after
//! it), a request header and a body; a response is a size prefix, a response
//! header (whose version follows from the request's) and a body.

use std::io::Read;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::error::{decode_error, encode_error, ClientError};

/// Bytes of the size prefix in front of every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Room reserved for a request before encoding it: most requests fit, the
/// rest grow the buffer once.
const REQUEST_BYTES_INITIAL: usize = 256;

/// The API key a request type is sent under.
pub fn api_key<Req: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(Req::KEY).map_err(|()| ClientError::UnknownApiKey { key: Req::KEY })
}

/// Encodes one request frame: size prefix, request header, body. Written in
/// one pass with the size patched in last, so the body is walked once.
pub fn encode_request<Req: Request>(
    request: &Req,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<BytesMut, ClientError> {
    let key = api_key::<Req>()?;
    let mut frame = BytesMut::with_capacity(REQUEST_BYTES_INITIAL);
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()))
        .encode(&mut frame, key.request_header_version(version))
        .map_err(encode_error(key, version))?;
    request.encode(&mut frame, version).map_err(encode_error(key, version))?;
    let size = frame.len() - SIZE_PREFIX_BYTES;
    let size = i32::try_from(size).map_err(|_| ClientError::FrameSize { size: i32::MAX, max: i32::MAX as usize })?;
    frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

/// Decodes a response frame (size prefix removed): checks that its header
/// answers `correlation_id`, then decodes the whole body. Bytes left over
/// mean the two sides disagree about the version's layout.
pub fn decode_response<Resp: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: Bytes,
) -> Result<Resp, ClientError> {
    let body = decode_response_header(key, version, correlation_id, frame)?;
    decode_body(key, version, body)
}

/// Decodes a response header, checks that it answers `correlation_id`, and
/// returns the body that follows.
pub fn decode_response_header(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<Bytes, ClientError> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).map_err(decode_error(
        key,
        version,
        "response header",
    ))?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::CorrelationId { key, got: header.correlation_id, expected: correlation_id });
    }
    Ok(frame)
}

/// Decodes a whole response body (the frame after its header).
pub fn decode_body<Resp: Decodable>(key: ApiKey, version: i16, mut body: Bytes) -> Result<Resp, ClientError> {
    let response = Resp::decode(&mut body, version).map_err(decode_error(key, version, "response"))?;
    if body.has_remaining() {
        return Err(ClientError::TrailingBytes { key, version, remaining: body.remaining() });
    }
    Ok(response)
}

/// Peeks at the correlation id of a response frame (size prefix removed).
pub fn correlation_id(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(0..4)?.try_into().ok()?))
}

/// The size a frame's prefix announces, if it is within `0..=bytes_max`.
pub fn checked_size(prefix: [u8; SIZE_PREFIX_BYTES], bytes_max: usize) -> Result<usize, ClientError> {
    let size = i32::from_be_bytes(prefix);
    match usize::try_from(size) {
        Ok(bytes) if bytes <= bytes_max => Ok(bytes),
        _ => Err(ClientError::FrameSize { size, max: bytes_max }),
    }
}

/// Reads one size-prefixed frame from a blocking stream and returns it
/// without the prefix. A size over `bytes_max` means the peer is not a Kafka
/// broker or the stream is out of step: reading on would only allocate
/// memory for garbage.
pub fn read_frame(stream: &mut impl Read, bytes_max: usize) -> std::io::Result<Bytes> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    stream.read_exact(&mut prefix)?;
    let size = checked_size(prefix, bytes_max).map_err(std::io::Error::other)?;
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame)?;
    Ok(Bytes::from(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    use crate::requests::topic_name;

    const CLIENT_ID: StrBytes = StrBytes::from_static_str("test-client");

    fn create_request() -> CreateTopicsRequest {
        let topic = CreatableTopic::default().with_name(topic_name("orders")).with_num_partitions(3);
        CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(25_000)
    }

    #[test]
    fn request_frame_round_trips() {
        for version in [2, 5, 7] {
            let mut frame = encode_request(&create_request(), version, 42, &CLIENT_ID).unwrap().freeze();
            let size = frame.get_i32() as usize;
            assert_eq!(size, frame.len());
            let header = decode_request_header_from_buffer(&mut frame).unwrap();
            assert_eq!(header.request_api_key, ApiKey::CreateTopics as i16);
            assert_eq!(header.request_api_version, version);
            assert_eq!(header.correlation_id, 42);
            assert_eq!(header.client_id.as_deref(), Some("test-client"));
            let body: CreateTopicsRequest = CreateTopicsRequest::decode(&mut frame, version).unwrap();
            assert_eq!(body, create_request());
            assert!(!frame.has_remaining());
        }
    }

    fn response_frame(correlation_id: i32, version: i16) -> BytesMut {
        let mut frame = BytesMut::new();
        let header_version = ApiKey::CreateTopics.response_header_version(version);
        ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut frame, header_version).unwrap();
        CreateTopicsResponse::default().with_throttle_time_ms(7).encode(&mut frame, version).unwrap();
        frame
    }

    #[test]
    fn response_frame_decodes_and_checks_correlation_id() {
        let frame = response_frame(5, 7).freeze();
        assert_eq!(correlation_id(&frame), Some(5));
        let response: CreateTopicsResponse = decode_response(ApiKey::CreateTopics, 7, 5, frame).unwrap();
        assert_eq!(response.throttle_time_ms, 7);
        let mismatch =
            decode_response::<CreateTopicsResponse>(ApiKey::CreateTopics, 7, 5, response_frame(6, 7).freeze());
        assert!(matches!(mismatch, Err(ClientError::CorrelationId { got: 6, expected: 5, .. })));
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut frame = response_frame(1, 4);
        frame.put_u8(0);
        let result = decode_response::<CreateTopicsResponse>(ApiKey::CreateTopics, 4, 1, frame.freeze());
        assert!(matches!(result, Err(ClientError::TrailingBytes { remaining: 1, .. })));
    }

    #[test]
    fn read_frame_rejects_oversized_and_negative_sizes() {
        let oversized = 11i32.to_be_bytes();
        assert!(read_frame(&mut &oversized[..], 10).is_err());
        assert!(read_frame(&mut &(-1i32).to_be_bytes()[..], 10).is_err());
        let mut ok = vec![0, 0, 0, 2, 9, 8];
        assert_eq!(&read_frame(&mut &ok[..], 10).unwrap()[..], &[9, 8]);
        ok.truncate(5);
        assert!(read_frame(&mut &ok[..], 10).is_err());
    }
}
