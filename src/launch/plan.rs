//! What to start and what a child's end means: pure decisions, no processes.
//!
//! [`plan`] turns the launch settings, whether vnrit started its own display, and which
//! programs are installed into the list of programs to start. [`on_exit`] says what the end of
//! one of them means for vnrit, and [`exit_code`] maps a wait status to the code vnrit exits
//! with (a shell's convention: 128 + signal for a killed program).

use super::{LaunchConfig, SessionChoice};

/// Window managers of the default session, lightest first; the first installed one is used.
pub const WINDOW_MANAGERS: &[&str] = &["openbox", "fluxbox", "icewm", "twm"];
/// Terminals of the default session; the first installed one is used.
pub const TERMINALS: &[&str] = &["xterm", "x-terminal-emulator"];

/// What a started program is to vnrit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The COMMAND after `--`: its end ends vnrit (unless `--keep-running`).
    Command,
    /// Part of the desktop session: its end is logged, nothing more.
    Session,
}

/// One program to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Short name for the log prefix, e.g. `xterm`.
    pub name: String,
    /// The program and its arguments (`argv`).
    pub argv: Vec<String>,
    /// What its end means.
    pub role: Role,
}

/// Everything to start, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The programs.
    pub programs: Vec<Program>,
    /// Why the list is empty or short, for the log (e.g. nothing installed).
    pub note: Option<String>,
}

/// What vnrit does when a program ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Stop serving and exit with this code.
    Exit(i32),
    /// Keep serving.
    KeepServing,
}

/// The programs to start for `cfg`. `own_display` is whether vnrit started the display itself
/// (only then is a default session started); `installed` says whether a program is on PATH.
pub fn plan(cfg: &LaunchConfig, own_display: bool, installed: &dyn Fn(&str) -> bool) -> Plan {
    if let Some((first, _)) = cfg.command.split_first() {
        return Plan {
            programs: vec![Program {
                name: base_name(first),
                argv: cfg.command.clone(),
                role: Role::Command,
            }],
            note: None,
        };
    }
    match &cfg.session {
        SessionChoice::None => Plan::default(),
        SessionChoice::Shell(cmd) => Plan {
            programs: vec![Program {
                name: "session".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
                role: Role::Session,
            }],
            note: None,
        },
        SessionChoice::Default if !own_display => Plan::default(),
        SessionChoice::Default => default_session(installed),
    }
}

/// A window manager and a terminal, whichever of them are installed.
fn default_session(installed: &dyn Fn(&str) -> bool) -> Plan {
    let pick = |list: &[&str]| list.iter().find(|p| installed(p)).map(|p| p.to_string());
    let wm = pick(WINDOW_MANAGERS);
    let term = pick(TERMINALS);
    let note = match (&wm, &term) {
        (Some(_), Some(_)) => None,
        (None, None) => Some(
            "no window manager or terminal is installed, so the desktop stays empty: install \
             openbox and xterm (apt-get install openbox xterm), or pass --session CMD or -- COMMAND"
                .to_string(),
        ),
        (None, Some(_)) => Some(
            "no window manager is installed (apt-get install openbox): windows have no frames"
                .to_string(),
        ),
        (Some(_), None) => {
            Some("no terminal is installed (apt-get install xterm)".to_string())
        }
    };
    let programs = [wm, term]
        .into_iter()
        .flatten()
        .map(|name| Program {
            argv: vec![name.clone()],
            name,
            role: Role::Session,
        })
        .collect();
    Plan { programs, note }
}

/// What the end of a program with `role` and exit `code` means.
pub fn on_exit(role: Role, code: i32, keep_running: bool) -> OnExit {
    match role {
        Role::Command if !keep_running => OnExit::Exit(code),
        Role::Command | Role::Session => OnExit::KeepServing,
    }
}

/// The code a shell would report for a wait status: the exit code, or 128 + the signal that
/// killed the program.
pub fn exit_code(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// `/usr/bin/xterm` → `xterm`, for the log prefix.
fn base_name(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    if base.is_empty() {
        program.to_string()
    } else {
        base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(command: &[&str], session: SessionChoice) -> LaunchConfig {
        LaunchConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            session,
            keep_running: false,
        }
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.programs.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn a_command_is_all_that_runs() {
        let all = |_: &str| true;
        let p = plan(
            &cfg(&["/usr/bin/xterm", "-e", "true"], SessionChoice::Default),
            true,
            &all,
        );
        assert_eq!(names(&p), ["xterm"]);
        assert_eq!(p.programs[0].argv, ["/usr/bin/xterm", "-e", "true"]);
        assert_eq!(p.programs[0].role, Role::Command);
        let p = plan(&cfg(&["xclock"], SessionChoice::Default), false, &all);
        assert_eq!(names(&p), ["xclock"], "on any display");
    }

    #[test]
    fn the_default_session_only_on_our_own_display() {
        let all = |_: &str| true;
        let p = plan(&cfg(&[], SessionChoice::Default), true, &all);
        assert_eq!(names(&p), ["openbox", "xterm"]);
        assert!(p.programs.iter().all(|p| p.role == Role::Session));
        assert!(p.note.is_none());
        let p = plan(&cfg(&[], SessionChoice::Default), false, &all);
        assert!(
            p.programs.is_empty(),
            "someone else's display is left alone"
        );
    }

    #[test]
    fn the_default_session_takes_what_is_installed() {
        let only = |have: &'static [&'static str]| move |p: &str| have.contains(&p);
        let p = plan(
            &cfg(&[], SessionChoice::Default),
            true,
            &only(&["twm", "x-terminal-emulator"]),
        );
        assert_eq!(names(&p), ["twm", "x-terminal-emulator"]);
        let p = plan(&cfg(&[], SessionChoice::Default), true, &only(&["xterm"]));
        assert_eq!(names(&p), ["xterm"]);
        assert!(p.note.as_deref().unwrap_or_default().contains("openbox"));
        let p = plan(&cfg(&[], SessionChoice::Default), true, &only(&[]));
        assert!(p.programs.is_empty());
        assert!(p.note.as_deref().unwrap_or_default().contains("--session"));
    }

    #[test]
    fn a_session_command_replaces_the_default_anywhere() {
        let all = |_: &str| true;
        for own in [true, false] {
            let p = plan(
                &cfg(&[], SessionChoice::Shell("startxfce4".into())),
                own,
                &all,
            );
            assert_eq!(p.programs.len(), 1);
            assert_eq!(p.programs[0].argv, ["/bin/sh", "-c", "startxfce4"]);
            assert_eq!(p.programs[0].role, Role::Session);
        }
        let p = plan(&cfg(&[], SessionChoice::None), true, &all);
        assert!(p.programs.is_empty());
    }

    #[test]
    fn the_command_ends_vnrit_unless_kept_running() {
        assert_eq!(on_exit(Role::Command, 3, false), OnExit::Exit(3));
        assert_eq!(on_exit(Role::Command, 3, true), OnExit::KeepServing);
        assert_eq!(on_exit(Role::Session, 0, false), OnExit::KeepServing);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(Some(3), None), 3);
        assert_eq!(exit_code(Some(0), None), 0);
        assert_eq!(exit_code(None, Some(15)), 143);
        assert_eq!(exit_code(None, Some(9)), 137);
    }
}
