//! Coarse, shared timer ticks for connected viewers, so idle connections wake the process
//! together instead of each on its own.
//!
//! webrtc-rs runs one driver task per connection that sleeps until the earliest protocol
//! deadline of that connection. On a still screen the deadlines are periodic: the ICE agent
//! asks to run every 200 ms (a fixed interval in webrtc-rs 0.21, whatever the keep-alive
//! setting), sender reports every second. Every viewer's timers thus fire at their own phase,
//! and every firing wakes a tokio worker (and often the other one): the per-viewer CPU of a
//! still desktop is mostly these wake-ups.
//!
//! [`CoarseTimers`] wraps the connection's runtime and, once the connection is up, rounds
//! every driver sleep *up* to the next multiple of [`GRID`] on one process-wide clock. Timers
//! never fire early, at most one grid step late; the deadlines of all connections fall on the
//! same instants, so one wake-up serves every viewer, and the ICE tick stretches to about
//! twice the grid. Writes (RTP, data channel) and reads do not go through timers and are not
//! delayed. Not used with adaptive bitrate: its pacer needs millisecond timers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
};

/// The step every connected viewer's timers are rounded up to: the ICE agent's own tick, and
/// the SCTP delayed-acknowledgement time.
pub const GRID: Duration = Duration::from_millis(200);

/// The shared origin of the grid, so all connections tick at the same instants.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// `deadline` rounded up to the next grid instant (itself when it is one).
pub fn round_up(deadline: Instant) -> Instant {
    let origin = origin();
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let grid = GRID.as_nanos();
    let steps = since.div_ceil(grid);
    // A u128 of grid steps overflows u32 only after centuries; saturate anyway.
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    origin + GRID * steps
}

/// A runtime that delegates everything to `inner`, rounding sleeps up to the grid while
/// `coarse` is set.
#[derive(Debug)]
pub struct CoarseTimers {
    inner: Arc<dyn Runtime>,
    coarse: Arc<AtomicBool>,
}

impl CoarseTimers {
    /// Wraps `inner`; sleeps are rounded while `coarse` is `true` (set it once the
    /// connection is up, clear it when it is not).
    pub fn new(inner: Arc<dyn Runtime>, coarse: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(CoarseTimers { inner, coarse })
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for CoarseTimers {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        if !self.coarse.load(Ordering::Relaxed) || duration.is_zero() {
            return self.inner.sleep(duration);
        }
        let now = Instant::now();
        let until = round_up(now + duration);
        self.inner.sleep(until.saturating_duration_since(now))
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "coarse-timers"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_onto_one_shared_grid() {
        let t = Instant::now() + Duration::from_millis(3);
        let a = round_up(t);
        assert!(a >= t && a - t < GRID, "late by at most one step");
        assert_eq!(round_up(a), a, "a grid instant stays");
        let b = round_up(t + Duration::from_millis(150));
        assert!(b == a || b == a + GRID);
        // Two connections with deadlines 70 ms apart within one step wake together.
        let c = round_up(a + Duration::from_millis(10));
        let d = round_up(a + Duration::from_millis(80));
        assert_eq!(c, d);
        assert_eq!(c, a + GRID);
    }

    #[tokio::test]
    async fn coarse_sleeps_end_on_the_grid_and_never_early() {
        let coarse = Arc::new(AtomicBool::new(true));
        let rt = CoarseTimers::new(Arc::new(webrtc::runtime::TokioRuntime), coarse.clone());
        let start = Instant::now();
        rt.sleep(Duration::from_millis(5)).await;
        let woke = Instant::now();
        assert!(woke - start >= Duration::from_millis(5), "never early");
        let expected = round_up(start + Duration::from_millis(5));
        assert!(woke >= expected, "not before the grid instant");
        coarse.store(false, Ordering::Relaxed);
        let start = Instant::now();
        rt.sleep(Duration::from_millis(1)).await;
        assert!(Instant::now() - start < GRID, "fine again once cleared");
    }
}
