//! One UDP port for every viewer (`--udp-port N`): a demultiplexer under webrtc-rs.
//!
//! webrtc-rs 0.21 binds its own UDP socket per connection (an ephemeral port). Each connection
//! built with `--udp-port` gets a [`MuxRuntime`]: it delegates everything to the tokio runtime
//! except `wrap_udp_socket`, which returns a [`VirtualSocket`]. That socket keeps the ephemeral
//! address as its identity (the ICE agent's host candidate), but sends media through the one
//! shared socket bound on port N of the same local address and receives what the
//! demultiplexer routes to it. Only traffic to the configured STUN/TURN servers uses the
//! ephemeral socket itself (all connections talk to the same server address, so its replies
//! could not be told apart on the shared port).
//!
//! Routing on the shared port: a STUN Binding request names the receiving agent in its
//! USERNAME (`<our ufrag>:<their ufrag>`), so first contact is routed by our ufrag (registered
//! from the local description); after that, and for anything that is not such a request
//! (DTLS, SRTP, STUN responses), by the remote address, which is learnt from both directions.
//! The host candidates the server signals are rewritten from the ephemeral port to N.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::lock::lock;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagrams a virtual socket holds before new ones are dropped (its connection is stalled).
const QUEUE_LIMIT: usize = 512;
/// Largest datagram read from the shared socket.
const MAX_DATAGRAM: usize = 65_536;

/// What can go wrong setting up the shared port.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The shared port could not be bound.
    #[error("cannot use UDP port {addr} for --udp-port; pick a free port, or stop the program that holds it")]
    Bind {
        /// Address that failed.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Datagrams waiting for one virtual socket, and the task to wake when one arrives.
#[derive(Default)]
struct Inbox {
    packets: VecDeque<(Vec<u8>, SocketAddr)>,
    waker: Option<Waker>,
}

/// The receiving side of one virtual socket, shared with the demultiplexer.
#[derive(Default)]
struct Queue {
    inbox: Mutex<Inbox>,
}

impl Queue {
    fn push(&self, data: &[u8], from: SocketAddr) {
        let mut inbox = lock(&self.inbox);
        if inbox.packets.len() >= QUEUE_LIMIT {
            tracing::trace!("udp mux: queue full, dropping a datagram from {from}");
            return;
        }
        inbox.packets.push_back((data.to_vec(), from));
        if let Some(waker) = inbox.waker.take() {
            waker.wake();
        }
    }
}

/// Routing tables of one shared socket.
#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Weak<Queue>>,
    by_remote: HashMap<SocketAddr, Weak<Queue>>,
}

/// Most remote addresses remembered per shared socket; past it, routes of closed connections
/// are dropped and, if that is not enough, new addresses are only routed by ufrag.
const ROUTE_LIMIT: usize = 4096;

impl Routes {
    fn insert_remote(&mut self, remote: SocketAddr, queue: &Arc<Queue>) {
        if self.by_remote.len() >= ROUTE_LIMIT {
            self.by_remote.retain(|_, q| q.strong_count() > 0);
            if self.by_remote.len() >= ROUTE_LIMIT {
                tracing::debug!("udp mux: route table full, not remembering {remote}");
                return;
            }
        }
        self.by_remote.insert(remote, Arc::downgrade(queue));
    }
}

/// One shared socket (`ip:N`) and its routes.
struct Shared {
    socket: tokio::net::UdpSocket,
    routes: Mutex<Routes>,
}

impl Shared {
    fn learn(&self, remote: SocketAddr, queue: &Arc<Queue>) {
        let mut routes = lock(&self.routes);
        let known = routes
            .by_remote
            .get(&remote)
            .is_some_and(|q| Weak::ptr_eq(q, &Arc::downgrade(queue)));
        if !known {
            routes.insert_remote(remote, queue);
        }
    }

    /// The queue a datagram from `from` belongs to.
    fn route(&self, data: &[u8], from: SocketAddr) -> Option<Arc<Queue>> {
        let mut routes = lock(&self.routes);
        if let Some(ufrag) = stun_request_ufrag(data) {
            if let Some(queue) = routes.by_ufrag.get(ufrag).and_then(Weak::upgrade) {
                routes.insert_remote(from, &queue);
                return Some(queue);
            }
        }
        let queue = routes.by_remote.get(&from).and_then(Weak::upgrade);
        if queue.is_none() {
            routes.by_remote.remove(&from);
        }
        queue
    }

    async fn receive_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match self.socket.recv_from(&mut buf).await {
                Ok((n, from)) => match self.route(&buf[..n], from) {
                    Some(queue) => queue.push(&buf[..n], from),
                    None => tracing::trace!("udp mux: no connection for a datagram from {from}"),
                },
                Err(err) => {
                    // ICMP errors (port unreachable) surface here; they are per peer.
                    tracing::trace!("udp mux: receive error: {err}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// The shared port: one socket per local address, bound to port N on first use.
#[derive(Clone)]
pub struct UdpMux {
    port: u16,
    handle: tokio::runtime::Handle,
    sockets: Arc<Mutex<HashMap<IpAddr, Arc<Shared>>>>,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UdpMux(port {})", self.port)
    }
}

impl UdpMux {
    /// A demultiplexer on `port`, binding `first_ip:port` now so a taken port is reported at
    /// start. Must be called inside the tokio runtime that will drive the shared sockets.
    pub fn new(port: u16, first_ip: IpAddr) -> Result<Self, MuxError> {
        let mut mux = Self {
            port,
            handle: tokio::runtime::Handle::current(),
            sockets: Arc::default(),
        };
        let first = mux.shared(first_ip)?;
        // Port 0 (tests): every further address uses the port the first one got.
        mux.port = first
            .socket
            .local_addr()
            .map_err(|source| MuxError::Bind {
                addr: SocketAddr::new(first_ip, port),
                source,
            })?
            .port();
        Ok(mux)
    }

    /// The shared port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn shared(&self, ip: IpAddr) -> Result<Arc<Shared>, MuxError> {
        let mut sockets = lock(&self.sockets);
        if let Some(shared) = sockets.get(&ip) {
            return Ok(shared.clone());
        }
        let addr = SocketAddr::new(ip, self.port);
        let bind = || -> io::Result<tokio::net::UdpSocket> {
            let std = std::net::UdpSocket::bind(addr)?;
            std.set_nonblocking(true)?;
            let _entered = self.handle.enter();
            tokio::net::UdpSocket::from_std(std)
        };
        let socket = bind().map_err(|source| MuxError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            socket,
            routes: Mutex::default(),
        });
        self.handle.spawn(shared.clone().receive_loop());
        tracing::info!("media for all viewers on UDP {addr}");
        sockets.insert(ip, shared.clone());
        Ok(shared)
    }

    /// A connection's view of the shared port; `servers` are the STUN/TURN addresses it talks
    /// to directly.
    pub fn connection(&self, servers: HashSet<SocketAddr>) -> Arc<MuxConnection> {
        Arc::new(MuxConnection {
            mux: self.clone(),
            servers,
            sockets: Mutex::default(),
        })
    }
}

/// One connection's virtual sockets: registers its ufrag and rewrites its host candidates.
pub struct MuxConnection {
    mux: UdpMux,
    servers: HashSet<SocketAddr>,
    sockets: Mutex<Vec<Member>>,
}

/// One virtual socket of a connection: its ephemeral local address, its queue, and the shared
/// socket it sends through.
type Member = (SocketAddr, Arc<Queue>, Arc<Shared>);

impl MuxConnection {
    /// Routes STUN requests for `ufrag` (the connection's local ICE user fragment) to it.
    pub fn register_ufrag(&self, ufrag: &str) {
        for (_, queue, shared) in lock(&self.sockets).iter() {
            lock(&shared.routes)
                .by_ufrag
                .insert(ufrag.to_string(), Arc::downgrade(queue));
        }
    }

    /// A candidate line with the port of this connection's UDP host candidates replaced by the
    /// shared port; other candidates are returned unchanged.
    pub fn rewrite_candidate(&self, candidate: &str) -> String {
        let fields: Vec<&str> = candidate.split(' ').collect();
        // candidate:<foundation> <component> <transport> <priority> <ip> <port> typ <type> ...
        if fields.len() < 8 || !fields[2].eq_ignore_ascii_case("udp") || fields[7] != "host" {
            return candidate.to_string();
        }
        let Ok(ip) = fields[4].parse::<IpAddr>() else {
            return candidate.to_string();
        };
        let Ok(port) = fields[5].parse::<u16>() else {
            return candidate.to_string();
        };
        let ours = lock(&self.sockets)
            .iter()
            .any(|(local, _, _)| *local == SocketAddr::new(ip, port));
        if !ours {
            return candidate.to_string();
        }
        let port = self.mux.port.to_string();
        let mut out: Vec<&str> = fields;
        out[5] = &port;
        out.join(" ")
    }

    /// `sdp` with every `a=candidate:` line passed through [`Self::rewrite_candidate`].
    pub fn rewrite_sdp(&self, sdp: &str) -> String {
        sdp.split_inclusive('\n')
            .map(|line| match line.strip_prefix("a=") {
                Some(rest) if rest.starts_with("candidate:") => {
                    let end = rest.len() - rest.trim_end_matches(['\r', '\n']).len();
                    let (body, eol) = rest.split_at(rest.len() - end);
                    format!("a={}{eol}", self.rewrite_candidate(body))
                }
                _ => line.to_string(),
            })
            .collect()
    }

    /// The runtime to build this connection with.
    pub fn runtime(self: &Arc<Self>) -> Arc<dyn Runtime> {
        Arc::new(MuxRuntime { conn: self.clone() })
    }
}

impl Drop for MuxConnection {
    fn drop(&mut self) {
        let sockets = std::mem::take(&mut *lock(&self.sockets));
        for (_, queue, shared) in sockets {
            let mut routes = lock(&shared.routes);
            routes
                .by_ufrag
                .retain(|_, q| !q.ptr_eq(&Arc::downgrade(&queue)));
            routes
                .by_remote
                .retain(|_, q| !q.ptr_eq(&Arc::downgrade(&queue)));
        }
    }
}

/// The tokio runtime, but UDP sockets are virtual sockets on the shared port.
struct MuxRuntime {
    conn: Arc<MuxConnection>,
}

impl fmt::Debug for MuxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MuxRuntime({:?})", self.conn.mux)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = socket.local_addr()?;
        let shared = self
            .conn
            .mux
            .shared(local.ip())
            .map_err(|e| io::Error::new(io::ErrorKind::AddrInUse, e.to_string()))?;
        let own = TokioRuntime.wrap_udp_socket(socket)?;
        let queue = Arc::new(Queue::default());
        lock(&self.conn.sockets).push((local, queue.clone(), shared.clone()));
        Ok(Arc::new(VirtualSocket {
            local,
            own,
            queue,
            shared,
            servers: self.conn.servers.clone(),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        Box::pin(async move { TokioRuntime.connect_tcp(remote_addr).await })
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { TokioRuntime.resolve_host(host).await })
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio+udp-mux"
    }
}

/// A connection's UDP socket on the shared port (see the module docs).
struct VirtualSocket {
    local: SocketAddr,
    own: Arc<dyn AsyncUdpSocket>,
    queue: Arc<Queue>,
    shared: Arc<Shared>,
    servers: HashSet<SocketAddr>,
}

impl fmt::Debug for VirtualSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VirtualSocket({} via port {})",
            self.local,
            self.shared_port()
        )
    }
}

impl VirtualSocket {
    fn shared_port(&self) -> u16 {
        self.shared.socket.local_addr().map_or(0, |a| a.port())
    }
}

impl AsyncUdpSocket for VirtualSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let to = transmit.destination;
        if self.servers.contains(&to) {
            return self.own.poll_send(cx, transmit);
        }
        self.shared.learn(to, &self.queue);
        // max_gso_segments() is 1, so `contents` is one datagram.
        self.shared.socket.poll_send_to(cx, transmit.contents, to)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        {
            let mut inbox = lock(&self.queue.inbox);
            if let Some((data, from)) = inbox.packets.pop_front() {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                let mut filled = RecvMeta::default();
                filled.addr = from;
                filled.len = n;
                filled.stride = n.max(1);
                filled.dst_ip = Some(self.local.ip());
                *m = filled;
                return Poll::Ready(Ok(1));
            }
            inbox.waker = Some(cx.waker().clone());
        }
        // Replies from STUN/TURN servers arrive on the connection's own socket.
        self.own.poll_recv(cx, bufs, meta)
    }
}

/// The local ICE ufrag named by a STUN Binding request (`USERNAME = <ours>:<theirs>`).
fn stun_request_ufrag(data: &[u8]) -> Option<&str> {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    if data.len() < 20 || data[0..2] != BINDING_REQUEST || data[4..8] != MAGIC {
        return None;
    }
    let mut at = 20;
    while at + 4 <= data.len() {
        let typ = u16::from_be_bytes([data[at], data[at + 1]]);
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let value = data.get(at + 4..at + 4 + len)?;
        if typ == 0x0006 {
            let user = std::str::from_utf8(value).ok()?;
            return user.split_once(':').map(|(ours, _)| ours);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn stun_requests_name_our_ufrag() {
        assert_eq!(
            stun_request_ufrag(&binding_request("abcd:wxyz")),
            Some("abcd")
        );
        let mut response = binding_request("abcd:wxyz");
        response[1] = 0x01;
        response[0] = 0x01; // 0x0101 = success response: no routing by ufrag
        assert_eq!(stun_request_ufrag(&response), None);
        assert_eq!(stun_request_ufrag(&[0x16, 0xfe, 0xfd]), None, "DTLS");
        let mut truncated = binding_request("abcd:wxyz");
        truncated.truncate(26);
        assert_eq!(stun_request_ufrag(&truncated), None);
    }

    #[tokio::test]
    async fn candidates_and_sdp_are_rewritten_to_the_shared_port() {
        let mux = UdpMux::new(0, "127.0.0.1".parse().unwrap()).unwrap();
        let conn = mux.connection(HashSet::new());
        let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std.set_nonblocking(true).unwrap();
        let eph = std.local_addr().unwrap().port();
        let runtime = conn.runtime();
        let _socket = runtime.wrap_udp_socket(std).unwrap();
        let host = format!("candidate:1 1 udp 2130706431 127.0.0.1 {eph} typ host");
        assert_eq!(
            conn.rewrite_candidate(&host),
            format!(
                "candidate:1 1 udp 2130706431 127.0.0.1 {} typ host",
                mux.port()
            )
        );
        let other = "candidate:2 1 udp 1694498815 10.0.0.9 4000 typ srflx raddr 0.0.0.0 rport 0";
        assert_eq!(conn.rewrite_candidate(other), other);
        let sdp = format!("v=0\r\na={host}\r\na=mid:0\r\n");
        assert_eq!(
            conn.rewrite_sdp(&sdp),
            format!(
                "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 {} typ host\r\na=mid:0\r\n",
                mux.port()
            )
        );
    }
}
