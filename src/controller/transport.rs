//! TCP between the voters' controller listeners (`controller.quorum.voters`).
//!
//! A frame is `[u32 length][u8 kind][payload]`, the length counting the
//! kind and the payload and bounded by `FRAME_BYTES_MAX`; the body is read
//! as its bytes arrive, so a length alone costs no memory. Kind 0 carries a
//! raft-rs `Message` (protobuf), kind 1 a node's heartbeat to the
//! controller leader. A frame that is too long, of an unknown kind, that
//! does not decode, or that speaks for a node the connection may not speak
//! for closes its connection (a log line, never a panic); the sender
//! reconnects.
//!
//! Only the voters may connect, checked by the source address: a voter
//! whose host is an IP address (or a name that resolved at start) is
//! accepted from that address only, and its frames may speak only for the
//! voters at that address. Each node connects out from its own voter
//! address so that the check holds on one machine's loopback addresses too.
//! This is a weak check (a source address can be spoofed on a network that
//! allows it); a shared secret or TLS between voters is future work.
//!
//! Each peer has one outgoing connection, written by its own thread from a
//! bounded queue: when the queue is full or the peer is down, messages are
//! dropped, which Raft tolerates (it resends what was not acknowledged).
//! Connections are retried with a doubling backoff.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::Message;
use thiserror::Error;

use super::duties::Heartbeat;
use super::storage::ENTRY_BYTES_MAX;
use super::Event;
use crate::cluster::{NodeId, Voter};

/// Room in a frame beside its largest entry or snapshot image: the raft
/// message's other fields.
const FRAME_OVERHEAD_BYTES: usize = 64 << 10;
/// Largest frame: an append carrying the largest entry the log takes, or a
/// snapshot carrying the whole metadata image (JSON, about 200 bytes per
/// partition of three replicas: 16 MiB is some 80,000 partitions; a larger
/// image would need snapshots sent in chunks).
pub const FRAME_BYTES_MAX: usize = ENTRY_BYTES_MAX + FRAME_OVERHEAD_BYTES;
/// Frames queued for one peer before new ones are dropped.
const PEER_QUEUE_FRAMES: usize = 1_024;
/// Inbound connections served at once per other voter (one is in use; the
/// rest is room for reconnections whose old connection has not timed out).
/// With `FRAME_BYTES_MAX`, this bounds what inbound frames can hold.
const INBOUND_CONNECTIONS_PER_VOTER: usize = 4;
/// A new connection's first frame comes at once (the peer connected to
/// send it), or the connection is closed.
const FIRST_FRAME_MS: u64 = 5_000;
/// An inbound connection silent this long is closed (a leader sends a
/// heartbeat every tick, 100 ms; a node heartbeats every
/// broker.heartbeat.interval.ms, 2 s by default).
const INBOUND_IDLE_MS: u64 = 10_000;
/// Refused connections logged at most this often.
const REFUSED_LOG_INTERVAL_MS: u64 = 10_000;
const RECONNECT_BACKOFF_MS_MIN: u64 = 50;
const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;
const CONNECT_TIMEOUT_MS: u64 = 1_000;
const WRITE_TIMEOUT_MS: u64 = 5_000;

const KIND_RAFT: u8 = 0;
const KIND_HEARTBEAT: u8 = 1;
/// node (4), broker epoch (8), applied index (8), want shutdown (1).
const HEARTBEAT_BYTES: usize = 21;
/// A heartbeat from a build without controlled shutdown: no flag.
const HEARTBEAT_BYTES_V0: usize = 20;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is longer than {FRAME_BYTES_MAX}")]
    TooLong(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("a frame speaks for node {0}, which this connection may not speak for")]
    Impersonation(NodeId),
    #[error("raft message does not decode: {0}")]
    Raft(String),
    #[error("heartbeat of {0} bytes is malformed ({HEARTBEAT_BYTES} bytes, the last 0 or 1)")]
    Heartbeat(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(5 + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(payload);
    bytes
}

pub fn raft_frame(message: &Message) -> Vec<u8> {
    frame(KIND_RAFT, &message.write_to_bytes().expect("a raft message encodes"))
}

pub fn heartbeat_frame(heartbeat: &Heartbeat) -> Vec<u8> {
    let mut payload = Vec::with_capacity(HEARTBEAT_BYTES);
    payload.extend_from_slice(&heartbeat.node.0.to_be_bytes());
    payload.extend_from_slice(&heartbeat.epoch.to_be_bytes());
    payload.extend_from_slice(&heartbeat.applied.to_be_bytes());
    payload.push(u8::from(heartbeat.want_shutdown));
    frame(KIND_HEARTBEAT, &payload)
}

/// Decodes one frame's body (kind and payload).
pub fn decode(body: &[u8]) -> Result<Event, FrameError> {
    let (&kind, payload) = body.split_first().ok_or(FrameError::Empty)?;
    match kind {
        KIND_RAFT => Message::parse_from_bytes(payload).map(Event::Raft).map_err(|e| FrameError::Raft(e.to_string())),
        KIND_HEARTBEAT => {
            let want_shutdown = match payload.len() {
                HEARTBEAT_BYTES_V0 => false,
                HEARTBEAT_BYTES => match payload[HEARTBEAT_BYTES_V0] {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::Heartbeat(payload.len())),
                },
                other => return Err(FrameError::Heartbeat(other)),
            };
            let node = NodeId(u32::from_be_bytes(payload[0..4].try_into().expect("4 bytes")));
            let epoch = i64::from_be_bytes(payload[4..12].try_into().expect("8 bytes"));
            let applied = u64::from_be_bytes(payload[12..20].try_into().expect("8 bytes"));
            Ok(Event::Heartbeat(Heartbeat { node, epoch, applied, want_shutdown }))
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

/// Reads one frame's body; None at a clean end of stream. The body grows as
/// its bytes come: a hostile length costs only what is actually sent.
fn read_frame(stream: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > FRAME_BYTES_MAX {
        return Err(FrameError::TooLong(length));
    }
    let mut body = Vec::new();
    stream.take(length as u64).read_to_end(&mut body)?;
    if body.len() < length {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(body))
}

/// The node a frame speaks for: a raft message's sender, a heartbeat's node.
fn speaker(event: &Event) -> Option<NodeId> {
    match event {
        Event::Raft(message) => super::node::node_of(message.from),
        Event::Heartbeat(heartbeat) => Some(heartbeat.node),
        _ => None,
    }
}

/// Where each other voter may connect from.
#[derive(Debug, Clone)]
pub struct VoterSources {
    /// Each voter but this node, with its addresses; None where its host
    /// is a name that did not resolve (any address then passes for it).
    voters: Vec<(NodeId, Option<Vec<IpAddr>>)>,
}

impl VoterSources {
    pub fn new(me: NodeId, voters: &[Voter]) -> VoterSources {
        let addresses = |v: &Voter| -> Option<Vec<IpAddr>> {
            if let Ok(ip) = v.host.parse::<IpAddr>() {
                return Some(vec![ip.to_canonical()]);
            }
            let resolved: Vec<IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&v.addr())
                .map(|addrs| addrs.map(|a| a.ip().to_canonical()).collect())
                .unwrap_or_default();
            if resolved.is_empty() {
                tracing::warn!(voter = %v.id, host = %v.host, "controller: voter host does not resolve; its connections are not checked by address");
                return None;
            }
            Some(resolved)
        };
        VoterSources { voters: voters.iter().filter(|v| v.id != me).map(|v| (v.id, addresses(v))).collect() }
    }

    /// The voters a connection from `ip` may speak for (none: refused).
    pub fn speakers(&self, ip: IpAddr) -> Vec<NodeId> {
        let ip = ip.to_canonical();
        let from = |ips: &Option<Vec<IpAddr>>| ips.as_ref().is_none_or(|ips| ips.contains(&ip));
        self.voters.iter().filter(|(_, ips)| from(ips)).map(|(id, _)| *id).collect()
    }

    fn count(&self) -> usize {
        self.voters.len()
    }
}

/// The outgoing side: one queue (and writer thread) per peer.
pub struct Transport {
    peers: Vec<(NodeId, SyncSender<Vec<u8>>)>,
}

impl Transport {
    /// Listens on `me`'s address and starts a writer per other voter. Every
    /// inbound frame from a voter becomes an event in `events`.
    pub fn start(me: &Voter, voters: &[Voter], events: SyncSender<Event>) -> std::io::Result<Transport> {
        let listener = TcpListener::bind(me.addr())?;
        let inbound = events.clone();
        let sources = VoterSources::new(me.id, voters);
        std::thread::Builder::new()
            .name("controller-listen".into())
            .spawn(move || accept(listener, sources, inbound))?;
        // Connections leave from this voter's own address, the one the peers check.
        let local = me.host.parse::<IpAddr>().ok();
        let mut peers = Vec::new();
        for voter in voters.iter().filter(|v| v.id != me.id) {
            let (queue, frames) = mpsc::sync_channel(PEER_QUEUE_FRAMES);
            peers.push((voter.id, queue));
            let (voter, events) = (voter.clone(), events.clone());
            std::thread::Builder::new()
                .name(format!("controller-peer-{}", voter.id))
                .spawn(move || write_to_peer(voter, local, frames, events))?;
        }
        Ok(Transport { peers })
    }

    /// Queues `frame` for `to`; dropped if its queue is full.
    pub fn send(&self, to: NodeId, frame: Vec<u8>) {
        if let Some((_, queue)) = self.peers.iter().find(|(id, _)| *id == to) {
            if let Err(TrySendError::Full(_)) = queue.try_send(frame) {
                tracing::debug!(peer = %to, "controller: peer queue full, message dropped");
            }
        }
    }
}

fn accept(listener: TcpListener, sources: VoterSources, events: SyncSender<Event>) {
    let open = Arc::new(AtomicUsize::new(0));
    let open_max = INBOUND_CONNECTIONS_PER_VOTER * sources.count().max(1);
    let mut refused_logged: Option<Instant> = None;
    let mut refused = 0u64;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let peer = stream.peer_addr().ok();
        let speakers = peer.map(|p| sources.speakers(p.ip())).unwrap_or_default();
        let why = if speakers.is_empty() {
            Some("not from a voter's address")
        } else if open.load(Ordering::Relaxed) >= open_max {
            Some("too many inbound connections")
        } else {
            None
        };
        if let Some(why) = why {
            refused += 1;
            if refused_logged.is_none_or(|at| at.elapsed() >= Duration::from_millis(REFUSED_LOG_INTERVAL_MS)) {
                tracing::warn!(?peer, why, refused, "controller: connection refused");
                refused_logged = Some(Instant::now());
                refused = 0;
            }
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (events, open) = (events.clone(), open.clone());
        let spawned = std::thread::Builder::new().name("controller-conn".into()).spawn(move || {
            read_from_peer(stream, peer, &speakers, &events);
            open.fetch_sub(1, Ordering::Relaxed);
        });
        if spawned.is_err() {
            tracing::warn!("controller: cannot start a connection thread");
        }
    }
}

fn read_from_peer(mut stream: TcpStream, peer: Option<SocketAddr>, speakers: &[NodeId], events: &SyncSender<Event>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(FIRST_FRAME_MS)));
    let _ = stream.set_nodelay(true);
    let mut first = true;
    loop {
        let event =
            read_frame(&mut stream).and_then(|body| body.map(|b| decode(&b)).transpose()).and_then(|event| match event
                .as_ref()
                .and_then(speaker)
            {
                Some(node) if !speakers.contains(&node) => Err(FrameError::Impersonation(node)),
                _ => Ok(event),
            });
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(?peer, error = %e, "controller: closing a connection that sent a bad frame");
                return;
            }
        };
        if first {
            first = false;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(INBOUND_IDLE_MS)));
        }
        match events.try_send(event) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn write_to_peer(voter: Voter, local: Option<IpAddr>, frames: Receiver<Vec<u8>>, events: SyncSender<Event>) {
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    let mut connection: Option<TcpStream> = None;
    while let Ok(frame) = frames.recv() {
        if connection.is_none() {
            connection = connect(&voter, local);
            if connection.is_none() {
                let _ = events.try_send(Event::Unreachable(voter.id));
                // Whatever queued while the peer is down is stale: Raft resends.
                while frames.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                continue;
            }
            backoff_ms = RECONNECT_BACKOFF_MS_MIN;
        }
        let stream = connection.as_mut().expect("connected above");
        if let Err(e) = stream.write_all(&frame) {
            tracing::debug!(peer = %voter.id, error = %e, "controller: connection to peer lost");
            connection = None;
            let _ = events.try_send(Event::Unreachable(voter.id));
        }
    }
}

/// Connects to `voter` from `local` (this voter's address) where it is an
/// address this machine has, so the peer's source check recognises it.
fn connect(voter: &Voter, local: Option<IpAddr>) -> Option<TcpStream> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&voter.addr()).ok()?.next()?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).ok()?;
    if let Some(ip) = local.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        if let Err(e) = socket.bind(&SocketAddr::new(ip, 0).into()) {
            tracing::debug!(%ip, error = %e, "controller: cannot connect from this voter's address");
        }
    }
    socket.connect_timeout(&addr.into(), Duration::from_millis(CONNECT_TIMEOUT_MS)).ok()?;
    let stream: TcpStream = socket.into();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(WRITE_TIMEOUT_MS)));
    Some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hostile_ones_are_refused() {
        let heartbeat = Heartbeat { node: NodeId(3), epoch: 77, applied: 80, want_shutdown: true };
        let bytes = heartbeat_frame(&heartbeat);
        let body = read_frame(&mut &bytes[..]).unwrap().unwrap();
        assert!(matches!(decode(&body).unwrap(), Event::Heartbeat(h) if h == heartbeat));
        // An older build's heartbeat has no flag: it does not want to shut down.
        let old = decode(&body[..body.len() - 1]).unwrap();
        assert!(matches!(old, Event::Heartbeat(h) if h == Heartbeat { want_shutdown: false, ..heartbeat }));
        assert!(matches!(decode(&[&body[..body.len() - 1], &[2]].concat()), Err(FrameError::Heartbeat(21))));
        let mut message = Message::default();
        (message.from, message.to, message.term) = (1, 2, 9);
        let body = read_frame(&mut &raft_frame(&message)[..]).unwrap().unwrap();
        assert!(matches!(decode(&body).unwrap(), Event::Raft(m) if m == message));

        // A length past the bound is refused before a byte is allocated for it.
        let huge = [0xff, 0xff, 0xff, 0xff, KIND_RAFT];
        assert!(matches!(read_frame(&mut &huge[..]), Err(FrameError::TooLong(_))));
        assert!(matches!(decode(&[9, 1, 2]), Err(FrameError::UnknownKind(9))));
        assert!(matches!(decode(&[]), Err(FrameError::Empty)));
        assert!(matches!(decode(&[KIND_HEARTBEAT, 1, 2]), Err(FrameError::Heartbeat(2))));
        // Random bytes as a raft message: an error or some message, never a panic.
        let mut seed = 7u64;
        for _ in 0..2_000 {
            let len = (seed % 64) as usize;
            let body: Vec<u8> = (0..=len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = decode(&[&[KIND_RAFT], &body[..]].concat());
        }
        // A stream cut mid-frame is an error, a clean end is None.
        assert!(read_frame(&mut &bytes[..bytes.len() - 1]).is_err());
        assert!(read_frame(&mut &[][..]).unwrap().is_none());
    }
}
