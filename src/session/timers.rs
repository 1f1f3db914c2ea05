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
//! delayed. With adaptive bitrate the pacer releases packets on millisecond timers, so the
//! grid applies only while no media flows: [`TimerGrid::media_sent`] marks every real video
//! frame and audio packet, keep-alive pictures do not, and a second after the last one the
//! connection goes back to the grid.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// How long after the last real media write a paced connection returns to the grid.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);

/// Milliseconds from the grid's origin to `t`.
fn millis(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

/// Whether one connection's timers may be coarse right now.
#[derive(Debug)]
pub struct TimerGrid {
    connected: AtomicBool,
    /// Packets are paced (adaptive bitrate): timers stay fine while media flows.
    paced: bool,
    /// [`millis`] of the last real media write.
    last_media_ms: AtomicU64,
}

impl TimerGrid {
    /// The state of a connection that is not up yet; `paced` when its packets go through a
    /// pacer (adaptive bitrate).
    pub fn new(paced: bool) -> Arc<Self> {
        Arc::new(TimerGrid {
            connected: AtomicBool::new(false),
            paced,
            last_media_ms: AtomicU64::new(0),
        })
    }

    /// The connection came up (`true`) or went down.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// A real video frame or audio packet is about to be written (call before the write, so the
    /// driver's next sleep is already fine).
    pub fn media_sent(&self) {
        if self.paced {
            self.last_media_ms
                .store(millis(Instant::now()), Ordering::Relaxed);
        }
    }

    /// Whether sleeps are rounded up to the grid now.
    pub fn coarse(&self) -> bool {
        self.coarse_at(Instant::now())
    }

    fn coarse_at(&self, now: Instant) -> bool {
        if !self.connected.load(Ordering::Relaxed) {
            return false;
        }
        !self.paced
            || millis(now).saturating_sub(self.last_media_ms.load(Ordering::Relaxed))
                >= QUIET_AFTER.as_millis() as u64
    }
}

/// A runtime that delegates everything to `inner`, rounding sleeps up to the grid while its
/// [`TimerGrid`] says so.
#[derive(Debug)]
pub struct CoarseTimers {
    inner: Arc<dyn Runtime>,
    grid: Arc<TimerGrid>,
}

impl CoarseTimers {
    /// Wraps `inner`; sleeps are rounded while `grid` is coarse.
    pub fn new(inner: Arc<dyn Runtime>, grid: Arc<TimerGrid>) -> Arc<Self> {
        Arc::new(CoarseTimers { inner, grid })
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
        if duration.is_zero() || !self.grid.coarse() {
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
        let grid = TimerGrid::new(false);
        grid.set_connected(true);
        let rt = CoarseTimers::new(Arc::new(webrtc::runtime::TokioRuntime), grid.clone());
        let start = Instant::now();
        rt.sleep(Duration::from_millis(5)).await;
        let woke = Instant::now();
        assert!(woke - start >= Duration::from_millis(5), "never early");
        let expected = round_up(start + Duration::from_millis(5));
        assert!(woke >= expected, "not before the grid instant");
        grid.set_connected(false);
        let start = Instant::now();
        rt.sleep(Duration::from_millis(1)).await;
        assert!(Instant::now() - start < GRID, "fine again once cleared");
    }

    #[test]
    fn paced_connections_stay_fine_while_media_flows() {
        let unpaced = TimerGrid::new(false);
        assert!(
            !unpaced.coarse(),
            "never coarse before the connection is up"
        );
        unpaced.set_connected(true);
        unpaced.media_sent();
        assert!(
            unpaced.coarse(),
            "without a pacer, always coarse once connected"
        );

        let paced = TimerGrid::new(true);
        paced.set_connected(true);
        paced.media_sent();
        let now = Instant::now();
        assert!(!paced.coarse_at(now), "fine right after media");
        assert!(!paced.coarse_at(now + QUIET_AFTER / 2));
        assert!(paced.coarse_at(now + QUIET_AFTER + Duration::from_millis(2)));
        paced.set_connected(false);
        assert!(!paced.coarse_at(now + QUIET_AFTER * 2), "fine when down");
    }
}
