//! The life of a worker thread shared by its subscribers, for the video and the audio hub
//! alike: the first subscriber starts it, the last one to leave stops it, a worker that ended
//! on its own (an error) is started again by the next subscriber, and a shutdown stops it for
//! good.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::lock::lock;
use tokio::sync::broadcast;

/// The stop switch a worker thread watches.
pub(crate) trait StopSwitch {
    /// Asks the worker to finish, waking it if it sleeps.
    fn stop(&self);
    /// Whether [`stop`](Self::stop) was called.
    fn stopped(&self) -> bool;
}

/// A started worker: its control block, the sending end of its stream and its thread (`None`
/// if the thread could not be spawned).
pub(crate) struct Running<C, F> {
    pub control: Arc<C>,
    pub tx: broadcast::Sender<Arc<F>>,
    pub thread: Option<JoinHandle<()>>,
}

impl<C: StopSwitch, F> Running<C, F> {
    /// Still producing: not asked to stop, and the thread is alive.
    fn alive(&self) -> bool {
        !self.control.stopped() && self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

struct State<C, F> {
    subscribers: usize,
    running: Option<Running<C, F>>,
    shut_down: bool,
}

/// Starts, shares and stops one worker thread (see the module docs).
pub(crate) struct OnDemand<C, F> {
    /// "video" or "audio", for the logs.
    name: &'static str,
    state: Mutex<State<C, F>>,
}

impl<C: StopSwitch, F> OnDemand<C, F> {
    /// Nothing running, nobody subscribed.
    pub fn new(name: &'static str) -> Self {
        OnDemand {
            name,
            state: Mutex::new(State {
                subscribers: 0,
                running: None,
                shut_down: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<C, F>> {
        lock(&self.state)
    }

    /// Counts one more subscriber and makes sure the worker runs, calling `start` if it does
    /// not. Returns the worker's stream and control block, or `None` after
    /// [`shutdown`](Self::shutdown) (the subscriber is counted all the same, so
    /// [`leave`](Self::leave) stays balanced).
    pub fn join(
        &self,
        start: impl FnOnce() -> Running<C, F>,
    ) -> Option<(broadcast::Receiver<Arc<F>>, Arc<C>)> {
        let mut state = self.state();
        state.subscribers += 1;
        if state.shut_down {
            return None;
        }
        if !state.running.as_ref().is_some_and(Running::alive) {
            if let Some(old) = state.running.take() {
                old.control.stop();
            }
            let running = start();
            tracing::info!("{} pipeline started", self.name);
            state.running = Some(running);
        }
        let running = state.running.as_ref()?;
        Some((running.tx.subscribe(), running.control.clone()))
    }

    /// Counts one subscriber out; the last one stops the worker.
    pub fn leave(&self) {
        let finished = {
            let mut state = self.state();
            state.subscribers = state.subscribers.saturating_sub(1);
            match state.subscribers {
                0 => state.running.take(),
                _ => None,
            }
        };
        if let Some(running) = finished {
            // The stop wakes the thread; nobody needs to wait for it.
            running.control.stop();
            tracing::info!("last subscriber left; {} pipeline stopping", self.name);
        }
    }

    /// Subscribers counted now.
    pub fn subscribers(&self) -> usize {
        self.state().subscribers
    }

    /// The running worker's control block, if one runs.
    pub fn control(&self) -> Option<Arc<C>> {
        self.state().running.as_ref().map(|r| r.control.clone())
    }

    /// Stops the worker for good (later subscribers get nothing) and waits up to `wait` for its
    /// thread to finish.
    pub fn shutdown(&self, wait: Duration) {
        let running = {
            let mut state = self.state();
            state.shut_down = true;
            state.running.take()
        };
        let Some(Running {
            control,
            tx,
            thread,
        }) = running
        else {
            return;
        };
        control.stop();
        // Subscribers see the stream end once the thread drops its own sender too.
        drop(tx);
        let Some(thread) = thread else { return };
        let deadline = Instant::now() + wait;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl StopSwitch for Flag {
        fn stop(&self) {
            self.0.store(true, Ordering::Release);
        }
        fn stopped(&self) -> bool {
            self.0.load(Ordering::Acquire)
        }
    }

    /// A worker that sends one frame, then waits for its stop.
    fn worker(starts: &AtomicUsize) -> Running<Flag, u32> {
        starts.fetch_add(1, Ordering::Relaxed);
        let control = Arc::new(Flag::default());
        let (tx, _) = broadcast::channel(4);
        let (c, t) = (control.clone(), tx.clone());
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = t.send(Arc::new(7));
            while !c.stopped() {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Running {
            control,
            tx,
            thread: Some(thread),
        }
    }

    #[test]
    fn first_subscriber_starts_last_one_stops_and_shutdown_is_final() {
        let hub = OnDemand::new("test");
        let starts = AtomicUsize::new(0);
        let (mut rx, first) = hub.join(|| worker(&starts)).expect("running");
        let (_, second) = hub.join(|| worker(&starts)).expect("running");
        assert_eq!(starts.load(Ordering::Relaxed), 1, "one worker for both");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*rx.blocking_recv().expect("a frame"), 7);
        hub.leave();
        assert!(!first.stopped(), "one subscriber is left");
        hub.leave();
        assert!(first.stopped(), "the last one stopped it");
        assert_eq!(hub.subscribers(), 0);
        assert!(hub.control().is_none());

        let (_, third) = hub.join(|| worker(&starts)).expect("running again");
        assert_eq!(starts.load(Ordering::Relaxed), 2);
        hub.shutdown(Duration::from_secs(2));
        assert!(third.stopped());
        assert!(hub.join(|| worker(&starts)).is_none(), "shut down for good");
        assert_eq!(starts.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_worker_that_ended_by_itself_is_started_again() {
        let hub = OnDemand::new("test");
        let starts = AtomicUsize::new(0);
        let (_, first) = hub.join(|| worker(&starts)).expect("running");
        first.stop(); // as if the thread had failed and flagged itself
        let (_, second) = hub.join(|| worker(&starts)).expect("running");
        assert_eq!(starts.load(Ordering::Relaxed), 2);
        assert!(!Arc::ptr_eq(&first, &second));
        hub.shutdown(Duration::from_secs(2));
    }
}
