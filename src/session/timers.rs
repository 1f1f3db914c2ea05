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
//! every driver sleep *up* to the next instant of one process-wide grid. Timers never fire
//! early, at most one grid step late; the deadlines of all connections fall on the same
//! instants, so one wake-up serves every viewer. Writes (RTP, data channel) and reads do not
//! go through timers and are not delayed.
//!
//! The step depends on what the connection is doing ([`TimerGrid::step`]):
//! - media or input in the last [`QUIET_AFTER`]: [`GRID`] (200 ms, the SCTP
//!   delayed-acknowledgement time), or no rounding at all with adaptive bitrate, whose pacer
//!   releases packets on millisecond timers;
//! - idle (only keep-alive pictures, which do not count): [`IDLE_GRID`] (2 s), so a still
//!   desktop's viewers wake every 2 s for their timers, and sender reports go out at that
//!   pace (RFC 3550 suggests 5 s). The ICE consent check (every 2 s, `peer.rs`) rides the
//!   same ticks, the disconnect check (5 s without anything from the viewer) is coarser, and a
//!   real frame or an input message switches the connection back at once. (The first input
//!   message after an idle second is delivered at once; only its SCTP acknowledgement may wait
//!   for the idle step, if the driver sleeps before the message is seen.)

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

/// The step an active connection's timers are rounded up to (without a pacer): the ICE
/// agent's own tick, and the SCTP delayed-acknowledgement time.
pub const GRID: Duration = Duration::from_millis(200);

/// The step of an idle connection (no media nor input for [`QUIET_AFTER`]); a multiple of
/// [`GRID`], so both grids share their instants.
pub const IDLE_GRID: Duration = Duration::from_secs(2);

/// The shared origin of the grid, so all connections tick at the same instants.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// `deadline` rounded up to the next instant of the grid of `step` (itself when it is one).
pub fn round_up(deadline: Instant, step: Duration) -> Instant {
    let origin = origin();
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let steps = since.div_ceil(step.as_nanos().max(1));
    // A u128 of grid steps overflows u32 only after centuries; saturate anyway.
    let steps = u32::try_from(steps).unwrap_or(u32::MAX);
    origin + step * steps
}

/// How long after the last real media write or input message a connection counts as idle.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);

/// Milliseconds from the grid's origin to `t`.
fn millis(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

/// `last_active_ms` of a connection that has sent nothing yet.
const NEVER: u64 = u64::MAX;

/// How coarse one connection's timers may be right now.
#[derive(Debug)]
pub struct TimerGrid {
    connected: AtomicBool,
    /// Packets are paced (adaptive bitrate): timers stay fine while media flows.
    paced: bool,
    /// [`millis`] of the last real media write or input message.
    last_active_ms: AtomicU64,
}

impl TimerGrid {
    /// The state of a connection that is not up yet; `paced` when its packets go through a
    /// pacer (adaptive bitrate).
    pub fn new(paced: bool) -> Arc<Self> {
        Arc::new(TimerGrid {
            connected: AtomicBool::new(false),
            paced,
            last_active_ms: AtomicU64::new(NEVER),
        })
    }

    /// The connection came up (`true`) or went down.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// A real video frame or audio packet is about to be written (call before the write, so the
    /// driver's next sleep is already on the active step).
    pub fn media_sent(&self) {
        self.touch();
    }

    /// An input message arrived from the viewer: its SCTP acknowledgements should not wait
    /// for the idle step.
    pub fn input_received(&self) {
        self.touch();
    }

    fn touch(&self) {
        self.last_active_ms
            .store(millis(Instant::now()), Ordering::Relaxed);
    }

    /// The step sleeps are rounded up to now; `None` = not rounded.
    pub fn step(&self) -> Option<Duration> {
        self.step_at(Instant::now())
    }

    fn step_at(&self, now: Instant) -> Option<Duration> {
        if !self.connected.load(Ordering::Relaxed) {
            return None;
        }
        let last = self.last_active_ms.load(Ordering::Relaxed);
        let quiet =
            last == NEVER || millis(now).saturating_sub(last) >= QUIET_AFTER.as_millis() as u64;
        match (quiet, self.paced) {
            (true, _) => Some(IDLE_GRID),
            (false, false) => Some(GRID),
            (false, true) => None,
        }
    }
}

/// A runtime that delegates everything to `inner`, rounding sleeps up to the step its
/// [`TimerGrid`] gives.
#[derive(Debug)]
pub struct CoarseTimers {
    inner: Arc<dyn Runtime>,
    grid: Arc<TimerGrid>,
}

impl CoarseTimers {
    /// Wraps `inner`; sleeps are rounded to the step of `grid`.
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
        let step = match self.grid.step() {
            Some(step) if !duration.is_zero() => step,
            _ => return self.inner.sleep(duration),
        };
        let now = Instant::now();
        let until = round_up(now + duration, step);
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
        let a = round_up(t, GRID);
        assert!(a >= t && a - t < GRID, "late by at most one step");
        assert_eq!(round_up(a, GRID), a, "a grid instant stays");
        let b = round_up(t + Duration::from_millis(150), GRID);
        assert!(b == a || b == a + GRID);
        // Two connections with deadlines 70 ms apart within one step wake together.
        let c = round_up(a + Duration::from_millis(10), GRID);
        let d = round_up(a + Duration::from_millis(80), GRID);
        assert_eq!(c, d);
        assert_eq!(c, a + GRID);
        // The idle grid's instants are instants of the active grid too.
        let idle = round_up(t, IDLE_GRID);
        assert!(idle >= t && idle - t < IDLE_GRID);
        assert_eq!(round_up(idle, GRID), idle);
    }

    #[tokio::test]
    async fn coarse_sleeps_end_on_the_grid_and_never_early() {
        let grid = TimerGrid::new(false);
        grid.set_connected(true);
        grid.media_sent();
        let rt = CoarseTimers::new(Arc::new(webrtc::runtime::TokioRuntime), grid.clone());
        let start = Instant::now();
        rt.sleep(Duration::from_millis(5)).await;
        let woke = Instant::now();
        assert!(woke - start >= Duration::from_millis(5), "never early");
        let expected = round_up(start + Duration::from_millis(5), GRID);
        assert!(woke >= expected, "not before the grid instant");
        grid.set_connected(false);
        let start = Instant::now();
        rt.sleep(Duration::from_millis(1)).await;
        assert!(Instant::now() - start < GRID, "fine again once cleared");
    }

    #[test]
    fn the_step_follows_what_the_connection_does() {
        let unpaced = TimerGrid::new(false);
        assert_eq!(
            unpaced.step(),
            None,
            "never coarse before the connection is up"
        );
        unpaced.set_connected(true);
        assert_eq!(
            unpaced.step(),
            Some(IDLE_GRID),
            "idle until something is sent"
        );
        unpaced.media_sent();
        let now = Instant::now();
        assert_eq!(unpaced.step_at(now), Some(GRID), "active without a pacer");
        assert_eq!(
            unpaced.step_at(now + QUIET_AFTER + Duration::from_millis(2)),
            Some(IDLE_GRID),
            "idle a second after the last frame"
        );

        let paced = TimerGrid::new(true);
        paced.set_connected(true);
        paced.media_sent();
        let now = Instant::now();
        assert_eq!(paced.step_at(now), None, "fine right after media");
        assert_eq!(paced.step_at(now + QUIET_AFTER / 2), None);
        assert_eq!(
            paced.step_at(now + QUIET_AFTER + Duration::from_millis(2)),
            Some(IDLE_GRID)
        );
        paced.input_received();
        assert_eq!(paced.step(), None, "an input message makes it active again");
        paced.set_connected(false);
        assert_eq!(paced.step_at(now + QUIET_AFTER * 2), None, "fine when down");
    }
}
