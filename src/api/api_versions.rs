//! ApiVersions: the served version ranges, straight from [`super::HANDLERS`].

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Encodable;

use super::{ApiError, Context, ErrorCode, Response, HANDLERS};

fn response(error: ErrorCode) -> ApiVersionsResponse {
    let api_keys = HANDLERS
        .iter()
        .map(|h| {
            ApiVersion::default()
                .with_api_key(h.key as i16)
                .with_min_version(*h.versions.start())
                .with_max_version(*h.versions.end())
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(error.code()).with_api_keys(api_keys)
}

pub fn handle(ctx: &Context<'_>, _request: ApiVersionsRequest) -> Result<Response, ApiError> {
    ctx.respond(&response(ErrorCode::None))
}

/// The answer to an ApiVersions version we do not know: v0 body, v0 header
/// (no tagged fields), so that any client can parse it and retry lower.
pub fn unsupported_version(correlation_id: i32) -> Result<Response, ApiError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    response(ErrorCode::UnsupportedVersion)
        .encode(&mut buf, 0)
        .map_err(|e| ApiError::Encode(format!("{:?} v0: {e}", ApiKey::ApiVersions)))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Response::Frame(buf.freeze()))
}
