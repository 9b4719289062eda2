//! Kafka wire plumbing: request framing with the kafka-protocol codecs, a
//! blocking client for the control plane (ApiVersions, Metadata,
//! CreateTopics, ListOffsets) and a non-blocking connection for the data path
//! (pipelined Produce and Fetch driven by `poll`).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A frame larger than this is refused rather than allocated.
pub const FRAME_BYTES_MAX: usize = 1 << 30;

/// Highest version of each API this tool speaks. Produce 13 and Fetch 13 name
/// topics by id only, so the tool stops below them.
const VERSION_CAPS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    // Consumer groups (--group): non-flexible FindCoordinator (one key),
    // JoinGroup from v4 (MEMBER_ID_REQUIRED), OffsetFetch below v8 (one group).
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::JoinGroup, 4, 9),
    (ApiKey::SyncGroup, 3, 5),
    (ApiKey::Heartbeat, 3, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::LeaveGroup, 3, 5),
];

/// The version of each API to use with this cluster.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub list_offsets: i16,
    pub metadata: i16,
    pub create_topics: i16,
}

/// The versions of the consumer group APIs to use with this cluster.
#[derive(Debug, Clone, Copy)]
pub struct GroupVersions {
    pub find_coordinator: i16,
    pub join_group: i16,
    pub sync_group: i16,
    pub heartbeat: i16,
    pub offset_fetch: i16,
    pub offset_commit: i16,
    pub leave_group: i16,
}

/// Kafka's name for an error code (the ones a load run is likely to meet).
pub fn error_name(code: i16) -> String {
    let name = match code {
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        21 => "INVALID_REQUIRED_ACKS",
        22 => "ILLEGAL_GENERATION",
        25 => "UNKNOWN_MEMBER_ID",
        27 => "REBALANCE_IN_PROGRESS",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        41 => "NOT_CONTROLLER",
        42 => "INVALID_REQUEST",
        87 => "INVALID_RECORD",
        _ => return format!("error {code}"),
    };
    name.to_string()
}

/// Encodes `body` as one size-prefixed request frame.
pub fn encode_request<B: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &B,
) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| anyhow!("encoding {key:?} v{version} header: {e}"))?;
    body.encode(&mut buf, version).map_err(|e| anyhow!("encoding {key:?} v{version}: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Decodes a response frame (size prefix already removed) and checks its correlation id.
pub fn decode_response<R: Decodable>(key: ApiKey, version: i16, correlation_id: i32, mut frame: Bytes) -> Result<R> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .map_err(|e| anyhow!("decoding {key:?} v{version} response header: {e}"))?;
    if header.correlation_id != correlation_id {
        bail!("{key:?} response has correlation id {} where {correlation_id} was expected", header.correlation_id);
    }
    R::decode(&mut frame, version).map_err(|e| anyhow!("decoding {key:?} v{version} response: {e}"))
}

/// Peeks at the correlation id of a response frame (size prefix removed).
pub fn correlation_id(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(0..4)?.try_into().ok()?))
}

pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let mut last = None;
    for sa in addr.to_socket_addrs().with_context(|| format!("resolving {addr}"))? {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!("connecting to {addr}: {}", last.map(|e| e.to_string()).unwrap_or_else(|| "no address".into())))
}

/// A blocking request/response connection for the control plane.
pub struct Client {
    pub addr: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: String,
}

impl Client {
    pub fn connect(addr: &str, client_id: &str) -> Result<Client> {
        let stream = connect(addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client { addr: addr.to_string(), stream, correlation_id: 0, client_id: client_id.to_string() })
    }

    pub fn call<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, request: &Q) -> Result<R> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(key, version, self.correlation_id, &self.client_id, request)?;
        self.stream.write_all(&frame).with_context(|| format!("sending {key:?} to {}", self.addr))?;
        let response =
            read_frame(&mut self.stream).with_context(|| format!("reading {key:?} response from {}", self.addr))?;
        decode_response(key, version, self.correlation_id, response)
    }

    /// Negotiates the versions to use: the highest both sides speak.
    pub fn versions(&mut self) -> Result<Versions> {
        let pick = self.negotiate()?;
        Ok(Versions {
            produce: pick(ApiKey::Produce)?,
            fetch: pick(ApiKey::Fetch)?,
            list_offsets: pick(ApiKey::ListOffsets)?,
            metadata: pick(ApiKey::Metadata)?,
            create_topics: pick(ApiKey::CreateTopics).unwrap_or(-1),
        })
    }

    pub fn group_versions(&mut self) -> Result<GroupVersions> {
        let pick = self.negotiate()?;
        Ok(GroupVersions {
            find_coordinator: pick(ApiKey::FindCoordinator)?,
            join_group: pick(ApiKey::JoinGroup)?,
            sync_group: pick(ApiKey::SyncGroup)?,
            heartbeat: pick(ApiKey::Heartbeat)?,
            offset_fetch: pick(ApiKey::OffsetFetch)?,
            offset_commit: pick(ApiKey::OffsetCommit)?,
            leave_group: pick(ApiKey::LeaveGroup)?,
        })
    }

    /// Asks ApiVersions and returns the chooser of the highest common version of an API.
    fn negotiate(&mut self) -> Result<impl Fn(ApiKey) -> Result<i16>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("corelog-load"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 3, &request)?;
        if response.error_code == 35 {
            // A broker older than ApiVersions v3 answers with v0 and its own range.
            response = self.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        }
        if response.error_code != 0 {
            bail!("ApiVersions failed on {}: {}", self.addr, error_name(response.error_code));
        }
        let served: BTreeMap<i16, (i16, i16)> =
            response.api_keys.iter().map(|a| (a.api_key, (a.min_version, a.max_version))).collect();
        let addr = self.addr.clone();
        Ok(move |key: ApiKey| -> Result<i16> {
            let &(_, ours_min, ours_max) = VERSION_CAPS.iter().find(|(k, _, _)| *k == key).unwrap();
            let &(min, max) =
                served.get(&(key as i16)).ok_or_else(|| anyhow!("broker {addr} does not serve {key:?}"))?;
            let v = ours_max.min(max);
            if v < ours_min.max(min) {
                bail!("no common {key:?} version: broker {}..={}, corelog-load {ours_min}..={ours_max}", min, max);
            }
            Ok(v)
        })
    }
}

/// Opens `n` connections spread over `addrs`, each after one ApiVersions
/// exchange, so the broker holds `n` served connections that then stay idle.
pub fn open_idle(addrs: &[&str], n: usize, client_id: &str) -> Result<Vec<Client>> {
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let mut client = Client::connect(addrs[i % addrs.len()], client_id)
            .with_context(|| format!("idle connection {i} of {n} (is the open-file limit high enough?)"))?;
        let _versions = client.negotiate()?;
        idle.push(client);
    }
    Ok(idle)
}

/// Reads one whole frame from a blocking stream, size prefix removed.
fn read_frame(stream: &mut TcpStream) -> Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > FRAME_BYTES_MAX {
        bail!("response frame size {size} is out of range");
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// A non-blocking connection: frames out from the caller's buffers, whole
/// response frames in, without copying them (they are split off the read
/// buffer as `Bytes`).
pub struct Conn {
    pub addr: String,
    pub stream: TcpStream,
    rbuf: BytesMut,
}

/// Bytes read per `read` call at least (a whole fetch response at most).
const READ_CHUNK: usize = 256 * 1024;

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = connect(addr, Duration::from_secs(10))?;
        stream.set_nonblocking(true)?;
        Ok(Conn { addr: addr.to_string(), stream, rbuf: BytesMut::with_capacity(READ_CHUNK) })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Writes what the socket takes now; 0 if it would block.
    pub fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.stream.write(data) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "connection closed")),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads what is available and hands each complete frame (size prefix
    /// removed) to `on_frame`. Returns an error on EOF or a bad frame.
    pub fn read_frames(&mut self, mut on_frame: impl FnMut(Bytes) -> Result<()>) -> Result<()> {
        loop {
            // Deliver every complete frame already buffered.
            while self.rbuf.len() >= 4 {
                let size = i32::from_be_bytes(self.rbuf[0..4].try_into().unwrap());
                if size < 4 || size as usize > FRAME_BYTES_MAX {
                    bail!("{}: response frame size {size} is out of range", self.addr);
                }
                let total = 4 + size as usize;
                if self.rbuf.len() < total {
                    // Room for the whole frame in one allocation.
                    self.rbuf.reserve(total - self.rbuf.len());
                    break;
                }
                let mut frame = self.rbuf.split_to(total);
                let _ = frame.split_to(4);
                on_frame(frame.freeze())?;
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let spare = self.rbuf.spare_capacity_mut();
            // SAFETY: read(2) writes at most spare.len() bytes into the
            // uninitialised tail, and set_len covers exactly what it wrote.
            let n =
                unsafe { libc::read(self.stream.as_raw_fd(), spare.as_mut_ptr() as *mut libc::c_void, spare.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(anyhow!("{}: read: {e}", self.addr)),
                }
            }
            if n == 0 {
                bail!("{}: connection closed by the broker", self.addr);
            }
            let len = self.rbuf.len();
            unsafe { self.rbuf.set_len(len + n as usize) };
        }
    }
}

/// Waits for readiness on `fds` for at most `timeout` (None = forever).
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as _ });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
