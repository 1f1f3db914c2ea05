//! Programs vnrit starts on the display it streams: the COMMAND after `--`, or a desktop
//! session (a window manager and a terminal by default on vnrit's own virtual display).
//!
//! [`plan`] decides what to start and what each program's end means (pure, unit-tested);
//! [`child`] runs them: each in its own process group, with `DISPLAY` and the audio server
//! set, its output forwarded to vnrit's log line by line as `[name] line`, and every group
//! stopped (SIGTERM, then SIGKILL after [`child::STOP_GRACE`]) when vnrit stops, on every exit
//! path: [`Launcher::stop`] on a normal stop, `Drop` on an error or panic, and the kernel's
//! parent-death signal for the direct children if vnrit itself is killed.
//!
//! This is blocking and async work beside the capture path: nothing here touches X.

pub mod child;
pub mod plan;

pub use child::{ChildEnv, LaunchError, Launcher};

/// The command-line flags of this module (flattened into the main flag set).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LaunchArgs {
    /// Keep serving after COMMAND exits (default: vnrit exits with COMMAND's exit status).
    #[arg(long, requires = "command")]
    pub keep_running: bool,

    /// Shell command that starts the desktop session instead of the default (a window manager
    /// and a terminal on vnrit's own virtual display), e.g. `--session startxfce4` or
    /// `--session 'openbox & exec xterm'`. Also runs on a display given with --display.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["command", "no_session"])]
    pub session: Option<String>,

    /// Start no session on the virtual display: only the welcome picture.
    #[arg(long, conflicts_with = "command")]
    pub no_session: bool,

    /// Program to run on the display, with its arguments, after `--`, e.g.
    /// `vnrit -- xterm -e htop`. vnrit exits with its exit status when it ends.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Which session to start when there is no COMMAND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChoice {
    /// A window manager and a terminal, on vnrit's own virtual display only.
    Default,
    /// This shell command (`--session`).
    Shell(String),
    /// Nothing (`--no-session`).
    None,
}

/// Validated launch settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    /// COMMAND and its arguments (empty: none).
    pub command: Vec<String>,
    /// The session when there is no COMMAND.
    pub session: SessionChoice,
    /// Keep serving after COMMAND exits.
    pub keep_running: bool,
}

impl From<LaunchArgs> for LaunchConfig {
    fn from(args: LaunchArgs) -> Self {
        let session = match (args.session, args.no_session) {
            (_, true) => SessionChoice::None,
            (Some(cmd), false) => SessionChoice::Shell(cmd),
            (None, false) => SessionChoice::Default,
        };
        LaunchConfig {
            command: args.command,
            session,
            keep_running: args.keep_running,
        }
    }
}
