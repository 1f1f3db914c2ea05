//! Running the planned programs: process groups, environment, output, exit and stop.
//!
//! Each program starts as the leader of a new process group, so stopping it reaches whatever
//! it started (a terminal's shell, a session script's programs). A wait task per program
//! reports its end; two reader tasks forward its stdout and stderr to the log, one line at a
//! time (lines cut at [`MAX_LINE`] bytes, invalid UTF-8 replaced). The direct child also gets
//! SIGTERM from the kernel if vnrit dies without stopping it (`PR_SET_PDEATHSIG`).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::plan::{self, OnExit, Program, Role};
use super::LaunchConfig;

/// How long a stopped program's process group gets after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// Longest log line forwarded from a program; longer lines are split.
pub const MAX_LINE: u64 = 4096;

/// Starting a program failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`: {source}{}", hint(.source))]
pub struct LaunchError {
    /// The program as given.
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        ErrorKind::NotFound => " (is it installed and on PATH?)",
        ErrorKind::PermissionDenied => " (is it executable?)",
        _ => "",
    }
}

impl LaunchError {
    /// The exit code a shell gives for this failure: 127 for a program not found, else 126.
    pub fn exit_code(&self) -> i32 {
        if self.source.kind() == ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

/// The environment the programs get on top of vnrit's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnv {
    /// `DISPLAY`.
    pub display: String,
    /// `PULSE_SERVER`, when vnrit knows where its audio server is.
    pub pulse_server: Option<String>,
}

/// One program's end, as the wait task reports it.
struct Exited {
    name: String,
    role: Role,
    code: i32,
}

/// The programs vnrit started. Dropping it stops them all (blocking, bounded).
pub struct Launcher {
    /// Process group ids (= the leaders' pids) and names, of every program started.
    groups: Vec<(i32, String)>,
    exits: mpsc::UnboundedReceiver<Exited>,
    keep_running: bool,
    stopped: bool,
}

impl Launcher {
    /// Starts what `cfg` asks for (see [`plan::plan`]). Call inside the tokio runtime. Fails
    /// only when the COMMAND cannot be started; a session program that fails is logged.
    pub fn start(
        cfg: &LaunchConfig,
        own_display: bool,
        env: &ChildEnv,
    ) -> Result<Launcher, LaunchError> {
        let plan = plan::plan(cfg, own_display, &|p| find_program(p).is_some());
        if let Some(note) = &plan.note {
            tracing::info!("{note}");
        }
        let (tx, exits) = mpsc::unbounded_channel();
        let mut launcher = Launcher {
            groups: Vec::new(),
            exits,
            keep_running: cfg.keep_running,
            stopped: false,
        };
        for program in &plan.programs {
            match spawn(program, env, tx.clone()) {
                Ok(pgid) => {
                    tracing::info!(
                        "started {} on {} (pid {pgid}): {}",
                        program.name,
                        env.display,
                        program.argv.join(" ")
                    );
                    launcher.groups.push((pgid, program.name.clone()));
                }
                Err(err) if program.role == Role::Command => return Err(err),
                Err(err) => tracing::warn!("{err}"),
            }
        }
        Ok(launcher)
    }

    /// Resolves with the exit code vnrit should exit with once the COMMAND has ended (never,
    /// with `--keep-running` or without a COMMAND). Logs every program's end.
    pub async fn finished(&mut self) -> i32 {
        loop {
            let Some(exited) = self.exits.recv().await else {
                return std::future::pending().await;
            };
            match plan::on_exit(exited.role, exited.code, self.keep_running) {
                OnExit::Exit(code) => {
                    tracing::info!("{} exited with status {code}; stopping", exited.name);
                    return code;
                }
                OnExit::KeepServing => {
                    tracing::info!("{} exited with status {}", exited.name, exited.code)
                }
            }
        }
    }

    /// Stops every program's process group: SIGTERM, then SIGKILL to what is left after
    /// [`STOP_GRACE`]. Returns once all are gone (or killed).
    pub async fn stop(&mut self) {
        if !self.begin_stop() {
            return;
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.any_alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.finish_stop();
    }

    /// Sends SIGTERM to the live groups; false when there is nothing to stop.
    fn begin_stop(&mut self) -> bool {
        if std::mem::replace(&mut self.stopped, true) || self.groups.is_empty() {
            return false;
        }
        for (pgid, name) in &self.groups {
            if group_alive(*pgid) {
                tracing::debug!("stopping {name} (process group {pgid})");
                signal_group(*pgid, libc::SIGTERM);
            }
        }
        true
    }

    fn any_alive(&self) -> bool {
        self.groups.iter().any(|(pgid, _)| group_alive(*pgid))
    }

    /// SIGKILL for every group still alive.
    fn finish_stop(&self) {
        for (pgid, name) in &self.groups {
            if group_alive(*pgid) {
                tracing::warn!("{name} ignored SIGTERM for {STOP_GRACE:?}; killing it");
                signal_group(*pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if !self.begin_stop() {
            return;
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.any_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish_stop();
    }
}

/// Starts `program` in a new process group; returns the group id (its pid).
fn spawn(
    program: &Program,
    env: &ChildEnv,
    exits: mpsc::UnboundedSender<Exited>,
) -> Result<i32, LaunchError> {
    let fail = |source| LaunchError {
        program: program.argv.first().cloned().unwrap_or_default(),
        source,
    };
    let (first, args) = program
        .argv
        .split_first()
        .ok_or_else(|| fail(std::io::Error::from(ErrorKind::InvalidInput)))?;
    let mut cmd = tokio::process::Command::new(first);
    cmd.args(args)
        .env("DISPLAY", &env.display)
        .env_remove("WAYLAND_DISPLAY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(server) = &env.pulse_server {
        cmd.env("PULSE_SERVER", server);
    }
    if program.role == Role::Session {
        if let Some(home) = std::env::var_os("HOME").filter(|h| std::path::Path::new(h).is_dir()) {
            cmd.current_dir(home);
        }
    }
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe, with constant arguments.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(fail)?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| fail(std::io::Error::other("the process has no pid")))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out, program.name.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err, program.name.clone()));
    }
    let (name, role) = (program.name.clone(), program.role);
    tokio::spawn(async move {
        use std::os::unix::process::ExitStatusExt;
        let code = match child.wait().await {
            Ok(status) => plan::exit_code(status.code(), status.signal()),
            Err(err) => {
                tracing::warn!("cannot wait for {name}: {err}");
                1
            }
        };
        let _ = exits.send(Exited { name, role, code });
    });
    Ok(pid)
}

/// Forwards `stream` to the log, one line at a time, prefixed with `[name]`.
async fn forward(stream: impl AsyncRead + Unpin, name: String) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(target: "vnrit::launch::output", "[{name}] {text}");
        }
    }
}

/// Sends `signal` to every process of group `pgid`.
fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with plain integers; a negative pid names the process group we
        // created for our child (checked alive just before), never pid 0, -1 or init.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// Whether group `pgid` has a process that is not a zombie (zombies are dead, just not yet
/// reaped by their parent, which may be init in a container that never reaps).
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks whether the group exists.
    if pgid <= 1 || unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_group(&stat))
            .is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
    })
}

/// The state and process group of a `/proc/PID/stat` line.
fn stat_group(stat: &str) -> Option<(char, i32)> {
    // "pid (comm) S ppid pgrp ..."; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// The path of `program` if it is an executable file, either as given (with a `/`) or found
/// on `PATH`.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_odd_names() {
        let line = "1234 (my (odd) prog) S 1 1230 1230 0 -1 4194560 ...";
        assert_eq!(stat_group(line), Some(('S', 1230)));
        assert_eq!(stat_group("12 (z) Z 1 12 12"), Some(('Z', 12)));
        assert_eq!(stat_group("garbage"), None);
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("/bin/sh").is_some());
        assert!(find_program("vnrit-no-such-program").is_none());
        assert!(find_program("/etc/passwd").is_none(), "not executable");
    }

    #[test]
    fn our_own_group_is_alive_and_a_made_up_one_is_not() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() };
        assert!(group_alive(own));
        assert!(!group_alive(0) && !group_alive(1) && !group_alive(-5));
    }
}
