//! Text typed as key strokes at a steady rate: the per-viewer queues of characters that `tx`
//! messages (IME commits, soft keyboards, the page's type-text action) asked for, and when
//! the next stroke is due.
//!
//! Pure decision code: time comes in as arguments and the X thread presses the keys. One
//! character is typed every [`STROKE_INTERVAL`]; a late wake-up catches up by at most
//! [`MAX_CATCH_UP`] strokes, so the rate stays steady and X clients are never flooded (each
//! character the keymap lacks rebinds a spare keycode, and a client must read its key event
//! before that keycode is rebound again). Viewers typing at once take turns, one character
//! each. Line breaks (`\r\n`, `\r`, `\n`) become one Return, tabs a Tab; other control
//! characters are dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time between two typed characters (250 characters a second).
pub const STROKE_INTERVAL: Duration = Duration::from_millis(4);
/// Strokes typed at once after a late wake-up, at most.
pub const MAX_CATCH_UP: usize = 4;
/// Characters one viewer may have waiting to be typed (a 64 KiB text and then some).
pub const MAX_BACKLOG_CHARS: usize = 70_000;

/// One viewer's characters still to type, and the count its session checks new text against.
#[derive(Debug)]
struct Queue {
    chars: VecDeque<char>,
    backlog: Arc<AtomicUsize>,
}

/// The typing queues of every viewer (see the module docs).
#[derive(Debug, Default)]
pub struct Typist {
    queues: BTreeMap<u64, Queue>,
    /// When the next stroke is due; `None` while nothing waits.
    next: Option<Instant>,
    /// The session that typed last (turns go round in session order).
    last: u64,
}

/// What a character of typed text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// A printable character.
    Char(char),
    /// Return (a line break).
    Return,
    /// Tab.
    Tab,
}

impl Stroke {
    /// The stroke for a queued character (the queue holds only these three kinds).
    pub fn of(c: char) -> Stroke {
        match c {
            '\n' => Stroke::Return,
            '\t' => Stroke::Tab,
            c => Stroke::Char(c),
        }
    }
}

impl Typist {
    /// Queue `text` for `session`. `reserved` characters were counted into `backlog` by the
    /// session; the count is corrected to what is actually queued (line breaks folded,
    /// control characters dropped).
    pub fn push(
        &mut self,
        session: u64,
        text: &str,
        reserved: usize,
        backlog: Arc<AtomicUsize>,
        now: Instant,
    ) {
        let q = self.queues.entry(session).or_insert_with(|| Queue {
            chars: VecDeque::new(),
            backlog,
        });
        let before = q.chars.len();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    q.chars.push_back('\n');
                }
                '\n' | '\t' => q.chars.push_back(c),
                c if c.is_control() => {}
                c => q.chars.push_back(c),
            }
        }
        let added = q.chars.len() - before;
        let _ = q
            .backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(reserved.saturating_sub(added)))
            });
        if q.chars.is_empty() {
            self.queues.remove(&session);
        } else if self.next.is_none() {
            self.next = Some(now);
        }
    }

    /// Drop what `session` still has to type; returns how many characters that was.
    pub fn cancel(&mut self, session: u64) -> usize {
        let Some(q) = self.queues.remove(&session) else {
            return 0;
        };
        let n = q.chars.len();
        let _ = q
            .backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(n))
            });
        if self.queues.is_empty() {
            self.next = None;
        }
        n
    }

    /// Drop everything every session still has to type.
    pub fn cancel_all(&mut self) {
        let ids: Vec<u64> = self.queues.keys().copied().collect();
        for id in ids {
            self.cancel(id);
        }
    }

    /// When the next stroke is due, if anything waits.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The strokes due at `now`, in the order to type them, as `(session, stroke)`.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, Stroke)> {
        let mut out = Vec::new();
        while let Some(at) = self.next {
            if at > now {
                break;
            }
            if out.len() == MAX_CATCH_UP {
                // Too late to catch up on everything: go on at the steady pace from now.
                self.next = Some(now + STROKE_INTERVAL);
                break;
            }
            let Some(session) = self.next_session() else {
                self.next = None;
                break;
            };
            if let Some(q) = self.queues.get_mut(&session) {
                if let Some(c) = q.chars.pop_front() {
                    let _ = q
                        .backlog
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                            Some(b.saturating_sub(1))
                        });
                    out.push((session, Stroke::of(c)));
                }
                if q.chars.is_empty() {
                    self.queues.remove(&session);
                }
            }
            self.last = session;
            self.next = (!self.queues.is_empty()).then_some(at + STROKE_INTERVAL);
        }
        out
    }

    /// The next session in turn after the one that typed last.
    fn next_session(&self) -> Option<u64> {
        self.queues
            .range(self.last.saturating_add(1)..)
            .next()
            .or_else(|| self.queues.iter().next())
            .map(|(&id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(strokes: &[(u64, Stroke)]) -> String {
        strokes
            .iter()
            .map(|(_, s)| match s {
                Stroke::Char(c) => *c,
                Stroke::Return => '⏎',
                Stroke::Tab => '⇥',
            })
            .collect()
    }

    fn push(t: &mut Typist, id: u64, text: &str, now: Instant) -> Arc<AtomicUsize> {
        let n = text.chars().count();
        let backlog = Arc::new(AtomicUsize::new(n));
        t.push(id, text, n, Arc::clone(&backlog), now);
        backlog
    }

    #[test]
    fn types_one_stroke_per_interval_in_order() {
        let t0 = Instant::now();
        let mut t = Typist::default();
        let backlog = push(&mut t, 1, "中文a\r\nb\tc\u{7}", t0);
        assert_eq!(
            backlog.load(Ordering::Acquire),
            7,
            "BEL dropped, CRLF one stroke"
        );
        assert_eq!(t.deadline(), Some(t0));
        let mut all = Vec::new();
        let mut now = t0;
        while let Some(at) = t.deadline() {
            assert!(at >= now, "no stroke is due in the past of the last one");
            now = at;
            let due = t.due(now);
            assert_eq!(due.len(), 1, "one stroke per slot when on time");
            all.extend(due);
        }
        assert_eq!(typed(&all), "中文a⏎b⇥c");
        assert_eq!(
            now - t0,
            STROKE_INTERVAL * 6,
            "seven strokes, six intervals"
        );
        assert_eq!(backlog.load(Ordering::Acquire), 0);
        assert!(t.due(now + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn a_late_wake_up_catches_up_a_little_only() {
        let t0 = Instant::now();
        let mut t = Typist::default();
        push(&mut t, 1, &"x".repeat(100), t0);
        let late = t0 + Duration::from_secs(1);
        assert_eq!(t.due(late).len(), MAX_CATCH_UP);
        // The rest keeps the steady pace from there.
        assert!(t.due(late).is_empty());
        let next = t.deadline().expect("more to type");
        assert_eq!(next, late + STROKE_INTERVAL);
        assert_eq!(t.due(next).len(), 1);
    }

    #[test]
    fn viewers_take_turns_and_cancel_their_own() {
        let t0 = Instant::now();
        let mut t = Typist::default();
        push(&mut t, 1, "aaa", t0);
        let b2 = push(&mut t, 2, "bbbb", t0);
        let mut got = Vec::new();
        let mut now = t0;
        for _ in 0..4 {
            now = t.deadline().expect("due");
            got.extend(t.due(now));
        }
        assert_eq!(typed(&got), "abab");
        assert_eq!(t.cancel(2), 2);
        assert_eq!(b2.load(Ordering::Acquire), 0, "the backlog is given back");
        let mut rest = Vec::new();
        while let Some(at) = t.deadline() {
            rest.extend(t.due(at));
        }
        assert_eq!(typed(&rest), "a");
        assert_eq!(t.cancel(1), 0);
        let _ = now;
    }

    #[test]
    fn text_of_only_control_characters_queues_nothing() {
        let t0 = Instant::now();
        let mut t = Typist::default();
        let backlog = push(&mut t, 3, "\u{1b}\u{0}", t0);
        assert_eq!(backlog.load(Ordering::Acquire), 0);
        assert_eq!(t.deadline(), None);
        t.cancel_all();
    }
}
