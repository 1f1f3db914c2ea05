//! Glass-to-glass latency source for `bench/run.sh`: draws, on the X display in `$DISPLAY`
//! (or `--display`), a machine-readable time code of the current wall-clock milliseconds
//! (CLOCK_REALTIME, the clock behind the browser's `Date.now()`), refreshed every few
//! milliseconds, plus an optional moving scene (a sweeping bar and a scrolling "text" area)
//! so the encoder works as it would on a real desktop.
//!
//! Time code layout (the page decoder in `bench/bench.mjs` mirrors it): two rows of square
//! blocks of [`BLOCK`] px starting at ([`ORIGIN_X`], [`ORIGIN_Y`]). Each row is a start
//! guard (white, black, white, black), 48 data bits (most significant first, white = 1),
//! then a stop guard (black, white, white, black). The second row carries the inverted data
//! bits, so a frame that mixes two codes or was smeared by the encoder fails the check
//! instead of decoding to a wrong time. The code is drawn into a pixmap and copied to the
//! window in one request, so a capture never sees half of it.
//!
//! Run: `DISPLAY=:N cargo run --release --example timecode -- [--still] [--period-ms 5]
//! [--seconds 0]` (0 = until killed).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use x11rb::connection::Connection;
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, Rectangle, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _; // sync()
use x11rb::COPY_DEPTH_FROM_PARENT;

/// Side of one time-code block, in pixels.
pub const BLOCK: u16 = 24;
/// Left edge of the time code.
pub const ORIGIN_X: i16 = 48;
/// Top edge of the first time-code row.
pub const ORIGIN_Y: i16 = 48;
/// Data bits per row.
pub const BITS: usize = 48;
/// Start guard, drawn before the data bits (1 = white).
pub const START_GUARD: [bool; 4] = [true, false, true, false];
/// Stop guard, drawn after the data bits (1 = white).
pub const STOP_GUARD: [bool; 4] = [false, true, true, false];

/// Blocks per row: guards plus data.
const ROW_BLOCKS: usize = START_GUARD.len() + BITS + STOP_GUARD.len();
/// Quiet zone (black border) around the code, in pixels.
const QUIET: u16 = BLOCK;

/// What can stop the time-code drawer.
#[derive(Debug, thiserror::Error)]
enum TimecodeError {
    /// No X server to draw on.
    #[error("cannot connect to the X display ({0}); set DISPLAY or pass --display :N")]
    Connect(#[from] ConnectError),
    /// The X connection broke while drawing.
    #[error("X connection lost ({0}); is the X server still running?")]
    Connection(#[from] ConnectionError),
    /// The X server refused a request or ran out of ids.
    #[error(
        "X request failed ({0}); the display must be 24-bit TrueColor (Xvfb -screen 0 WxHx24)"
    )]
    Request(#[from] ReplyOrIdError),
    /// The X server answered a round trip with an error.
    #[error("X round trip failed ({0}); is the X server still running?")]
    Reply(#[from] ReplyError),
    /// A command-line argument was not understood.
    #[error("{0}\nusage: timecode [--display :N] [--still] [--period-ms MS] [--seconds S]")]
    Usage(String),
}

/// Command-line options.
struct Options {
    display: Option<String>,
    moving: bool,
    period: Duration,
    seconds: u64,
}

fn parse_args() -> Result<Options, TimecodeError> {
    let mut o = Options {
        display: None,
        moving: true,
        period: Duration::from_millis(5),
        seconds: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| TimecodeError::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--display" => o.display = Some(value("--display")?),
            "--still" => o.moving = false,
            "--period-ms" => {
                let v = value("--period-ms")?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| (1..=1000).contains(ms))
                    .ok_or_else(|| TimecodeError::Usage(format!("bad --period-ms {v:?}")))?;
                o.period = Duration::from_millis(ms);
            }
            "--seconds" => {
                let v = value("--seconds")?;
                o.seconds = v
                    .parse()
                    .map_err(|_| TimecodeError::Usage(format!("bad --seconds {v:?}")))?;
            }
            other => return Err(TimecodeError::Usage(format!("unknown argument {other:?}"))),
        }
    }
    Ok(o)
}

/// Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Rectangles of the white blocks for `value`, relative to the code pixmap's origin.
fn white_blocks(value: u64) -> Vec<Rectangle> {
    let mut rects = Vec::with_capacity(2 * ROW_BLOCKS);
    for (row, inverted) in [(0u16, false), (1u16, true)] {
        let data = (0..BITS).map(|i| ((value >> (BITS - 1 - i)) & 1 == 1) != inverted);
        let blocks = START_GUARD
            .iter()
            .copied()
            .chain(data)
            .chain(STOP_GUARD.iter().copied());
        for (col, white) in blocks.enumerate() {
            if white {
                rects.push(Rectangle {
                    x: (QUIET + col as u16 * BLOCK) as i16,
                    y: (QUIET + row * BLOCK) as i16,
                    width: BLOCK,
                    height: BLOCK,
                });
            }
        }
    }
    rects
}

/// A tiny xorshift generator: the scene needs variety, not quality.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run(o: Options) -> Result<(), TimecodeError> {
    let (conn, screen_num) = x11rb::connect(o.display.as_deref())?;
    let screen = &conn.setup().roots[screen_num];
    let (w, h) = (screen.width_in_pixels, screen.height_in_pixels);
    let (root, depth) = (screen.root, screen.root_depth);

    let win = conn.generate_id()?;
    conn.create_window(
        COPY_DEPTH_FROM_PARENT,
        win,
        root,
        0,
        0,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new()
            .background_pixel(0x20_30_40)
            .override_redirect(1),
    )?;
    conn.map_window(win)?;

    let code_w = 2 * QUIET + ROW_BLOCKS as u16 * BLOCK;
    let code_h = 2 * QUIET + 2 * BLOCK;
    let code = conn.generate_id()?;
    conn.create_pixmap(depth, code, win, code_w, code_h)?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, win, &CreateGCAux::new().graphics_exposures(0))?;
    conn.flush()?;

    // The scene: a bar sweeping across the lower part and a scrolling block of "text".
    let scene_top = (ORIGIN_Y as u16 + code_h + 32).min(h);
    let text = Rectangle {
        x: (w / 2) as i16,
        y: scene_top as i16,
        width: w / 2 - 32,
        height: h.saturating_sub(scene_top + 32),
    };
    let bar_w: u16 = 120;
    let mut bar_x: i16 = 0;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let line_h: u16 = 16;
    let scroll: u16 = 4;
    let mut line_fill: u16 = 0;

    let start = Instant::now();
    let mut next = start;
    let mut tick: u64 = 0;
    loop {
        if o.seconds > 0 && start.elapsed() >= Duration::from_secs(o.seconds) {
            return Ok(());
        }
        if o.moving && tick.is_multiple_of(3) {
            // Sweep the bar across the left half.
            conn.change_gc(gc, &ChangeGCAux::new().foreground(0x20_30_40))?;
            let band_h = h.saturating_sub(scene_top);
            conn.poly_fill_rectangle(
                win,
                gc,
                &[Rectangle {
                    x: bar_x,
                    y: scene_top as i16,
                    width: bar_w,
                    height: band_h,
                }],
            )?;
            bar_x = (bar_x + 12) % (w / 2 - bar_w) as i16;
            let hue = (tick as u32 * 7) & 0xff;
            conn.change_gc(
                gc,
                &ChangeGCAux::new().foreground((hue << 16) | 0x80_00 | (255 - hue)),
            )?;
            conn.poly_fill_rectangle(
                win,
                gc,
                &[Rectangle {
                    x: bar_x,
                    y: scene_top as i16,
                    width: bar_w,
                    height: band_h,
                }],
            )?;
            // Scroll the text area up and write "words" on its bottom line.
            if text.height > 2 * line_h {
                conn.copy_area(
                    win,
                    win,
                    gc,
                    text.x,
                    text.y + scroll as i16,
                    text.x,
                    text.y,
                    text.width,
                    text.height - scroll,
                )?;
                let bottom = text.y + (text.height - scroll) as i16;
                conn.change_gc(gc, &ChangeGCAux::new().foreground(0xf0_f0_f0))?;
                conn.poly_fill_rectangle(
                    win,
                    gc,
                    &[Rectangle {
                        x: text.x,
                        y: bottom,
                        width: text.width,
                        height: scroll,
                    }],
                )?;
                line_fill += scroll;
                if line_fill >= line_h {
                    line_fill = 0;
                } else if line_fill > 4 {
                    let mut words = Vec::new();
                    let mut x = text.x + 8;
                    let right = text.x + text.width as i16 - 8;
                    while x < right {
                        let len = (6 + rng.next() % 60) as i16;
                        let width = len.min(right - x) as u16;
                        words.push(Rectangle {
                            x,
                            y: bottom,
                            width,
                            height: scroll,
                        });
                        x += len + 8 + (rng.next() % 40) as i16;
                    }
                    conn.change_gc(gc, &ChangeGCAux::new().foreground(0x20_20_20))?;
                    conn.poly_fill_rectangle(win, gc, &words)?;
                }
            }
        }
        // The time code: drawn off-screen, then copied in one request (atomic for capture).
        conn.change_gc(gc, &ChangeGCAux::new().foreground(0x00_00_00))?;
        conn.poly_fill_rectangle(
            code,
            gc,
            &[Rectangle {
                x: 0,
                y: 0,
                width: code_w,
                height: code_h,
            }],
        )?;
        conn.change_gc(gc, &ChangeGCAux::new().foreground(0xff_ff_ff))?;
        conn.poly_fill_rectangle(code, gc, &white_blocks(now_ms()))?;
        conn.copy_area(
            code,
            win,
            gc,
            0,
            0,
            ORIGIN_X - QUIET as i16,
            ORIGIN_Y - QUIET as i16,
            code_w,
            code_h,
        )?;
        conn.flush()?;

        if !o.moving && tick == 0 {
            // A still scene: one code, then nothing changes.
            conn.sync()?;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if o.seconds > 0 && start.elapsed() >= Duration::from_secs(o.seconds) {
                    return Ok(());
                }
            }
        }
        tick += 1;
        next += o.period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // fell behind (busy machine): do not try to catch up in a burst
        }
    }
}

fn main() {
    let result = parse_args().and_then(run);
    if let Err(e) = result {
        eprintln!("timecode: {e}");
        std::process::exit(1);
    }
}
