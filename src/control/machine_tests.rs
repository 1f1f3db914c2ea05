//! Unit tests of the control state machine: time is passed in, no sockets.

use super::*;

const IDLE: Duration = Duration::from_secs(60);

fn s(t0: Instant) -> ControlState {
    ControlState::new(Mode::Exclusive, IDLE, t0)
}

fn at(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

fn key(k: &str) -> Option<String> {
    Some(k.to_string())
}

fn to(from: Option<ViewerId>, to: Option<ViewerId>) -> Option<Handover> {
    Some(Handover { from, to })
}

#[test]
fn first_full_viewer_controls_and_others_are_refused() {
    let t0 = Instant::now();
    let mut c = s(t0);
    assert_eq!(
        c.join(1, Some("Ann"), Role::Control, key("a"), t0),
        to(None, Some(1))
    );
    assert_eq!(c.join(2, None, Role::Control, key("b"), t0), None);
    assert_eq!(c.join(3, None, Role::ViewOnly, None, t0), None);
    assert_eq!(c.join(4, None, Role::Whep, None, t0), None);
    assert!(c.may_control(1) && !c.may_control(2) && !c.may_control(3));
    assert_eq!(c.input(1, t0), Ok(()));
    assert_eq!(c.input(2, t0), Err(Refusal::NotInControl("Ann".into())));
    assert_eq!(c.input(3, t0), Err(Refusal::ViewOnly));
    assert_eq!(c.input(4, t0), Err(Refusal::ViewOnly));
    let p = c.presence(t0);
    assert_eq!(p.controller, Some(1));
    let names: Vec<_> = p
        .viewers
        .iter()
        .map(|v| (v.name.as_str(), v.role))
        .collect();
    assert_eq!(
        names,
        [
            ("Ann", Role::Control),
            ("viewer 2", Role::Control),
            ("viewer 3", Role::ViewOnly),
            ("viewer 4", Role::Whep)
        ]
    );
}

#[test]
fn request_then_give_moves_control() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, None, t0);
    c.join(2, None, Role::Control, None, t0);
    assert_eq!(c.act(2, Action::Request, at(t0, 1.0)), Ok(None));
    assert!(c.presence(t0).viewers[1].requesting);
    assert_eq!(c.act(2, Action::Give(1), t0), Err(Refusal::NotController));
    assert_eq!(
        c.act(1, Action::Give(2), at(t0, 2.0)),
        Ok(to(Some(1), Some(2)))
    );
    assert!(c.may_control(2) && !c.may_control(1));
    assert!(!c.presence(t0).viewers[1].requesting);
}

#[test]
fn two_requests_at_once_are_served_in_order() {
    let t0 = Instant::now();
    let mut c = s(t0);
    for id in 1..=3 {
        c.join(id, None, Role::Control, None, t0);
    }
    // Both arrive in the same instant; the machine still orders them.
    assert_eq!(c.act(3, Action::Request, t0), Ok(None));
    assert_eq!(c.act(2, Action::Request, t0), Ok(None));
    // A repeated request keeps its place.
    assert_eq!(c.act(3, Action::Request, t0), Ok(None));
    assert_eq!(c.act(1, Action::Release, t0), Ok(to(Some(1), Some(3))));
    assert_eq!(c.act(3, Action::Release, t0), Ok(to(Some(3), Some(2))));
    // Nobody waits any more: a release leaves control free, even with one viewer left.
    assert_eq!(c.act(2, Action::Release, t0), Ok(to(Some(2), None)));
    assert_eq!(c.controller(), None);
    assert_eq!(c.act(1, Action::Request, t0), Ok(to(None, Some(1))));
}

#[test]
fn give_to_a_viewer_who_just_left_keeps_control() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, None, t0);
    c.join(2, None, Role::Control, None, t0);
    c.act(2, Action::Request, t0).unwrap();
    assert_eq!(c.leave(2, t0), None);
    assert_eq!(c.act(1, Action::Give(2), t0), Err(Refusal::NoSuchViewer(2)));
    assert_eq!(c.controller(), Some(1));
    c.join(3, None, Role::ViewOnly, None, t0);
    assert_eq!(c.act(1, Action::Give(3), t0), Err(Refusal::NoSuchViewer(3)));
    assert_eq!(c.controller(), Some(1));
}

#[test]
fn idle_controller_can_be_taken_over() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, Some("Ann"), Role::Control, None, t0);
    c.join(2, None, Role::Control, None, t0);
    c.input(1, at(t0, 30.0)).unwrap();
    let busy = c.act(2, Action::Take { admin: false }, at(t0, 80.0));
    assert_eq!(
        busy,
        Err(Refusal::Busy {
            name: "Ann".into(),
            idle_s: 50,
            limit_s: 60
        })
    );
    // Refused input from others does not count as the controller's activity.
    assert!(c.input(2, at(t0, 85.0)).is_err());
    assert_eq!(c.presence(at(t0, 85.0)).idle_ms, 55_000);
    assert_eq!(
        c.act(2, Action::Take { admin: false }, at(t0, 90.0)),
        Ok(to(Some(1), Some(2)))
    );
    // The new controller is fresh: the old one cannot take it straight back.
    assert!(c
        .act(1, Action::Take { admin: false }, at(t0, 91.0))
        .is_err());
}

#[test]
fn admin_takes_at_once_but_never_for_view_only() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, None, t0);
    c.join(2, None, Role::Control, None, t0);
    c.join(3, None, Role::ViewOnly, None, t0);
    for action in [
        Action::Request,
        Action::Take { admin: true },
        Action::Give(1),
    ] {
        assert_eq!(c.act(3, action, t0), Err(Refusal::ViewOnly));
    }
    assert_eq!(
        c.act(2, Action::Take { admin: true }, at(t0, 0.5)),
        Ok(to(Some(1), Some(2)))
    );
    c.leave(1, t0);
    c.leave(2, t0);
    // Alone and still view-only: no control.
    assert_eq!(c.tick(at(t0, 10.0)), None);
    assert!(!c.may_control(3));
}

#[test]
fn reload_within_grace_keeps_control() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, Some("Ann"), Role::Control, key("ann"), t0);
    c.join(2, None, Role::Control, key("bob"), t0);
    assert_eq!(c.leave(1, at(t0, 1.0)), to(Some(1), None));
    assert_eq!(c.presence(t0).reserved_for.as_deref(), Some("Ann"));
    assert_eq!(
        c.input(2, at(t0, 1.5)),
        Err(Refusal::NotInControl("Ann (reconnecting)".into()))
    );
    // Another page joining meanwhile does not get it.
    assert_eq!(c.join(3, None, Role::Control, key("cy"), at(t0, 2.0)), None);
    assert_eq!(
        c.join(4, Some("Ann"), Role::Control, key("ann"), at(t0, 2.5)),
        to(None, Some(4))
    );
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_reload_whose_new_socket_comes_first_keeps_control() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, key("ann"), t0);
    c.join(2, None, Role::Control, key("bob"), t0);
    // The reloaded page connects before the old socket is noticed closed.
    assert_eq!(c.join(3, None, Role::Control, key("ann"), t0), None);
    assert_eq!(c.leave(1, at(t0, 0.1)), to(Some(1), Some(3)));
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn reservation_expires_and_the_waiting_request_is_granted() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, key("a"), t0);
    c.join(2, None, Role::Control, key("b"), t0);
    c.join(3, None, Role::Control, key("c"), t0);
    c.act(3, Action::Request, t0).unwrap();
    assert_eq!(c.leave(1, t0), to(Some(1), None));
    let deadline = c.next_deadline().unwrap();
    assert_eq!(deadline, t0 + RECONNECT_GRACE);
    assert_eq!(c.tick(at(t0, 4.9)), None);
    assert_eq!(c.tick(deadline), to(None, Some(3)));
    // The old page comes back too late: it watches.
    assert_eq!(c.join(5, None, Role::Control, key("a"), at(t0, 6.0)), None);
    assert_eq!(c.controller(), Some(3));
}

#[test]
fn a_request_while_reserved_takes_the_free_control() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, key("a"), t0);
    c.join(2, None, Role::Control, key("b"), t0);
    c.leave(1, t0);
    assert_eq!(
        c.act(2, Action::Request, at(t0, 1.0)),
        Ok(to(None, Some(2)))
    );
    assert_eq!(c.join(3, None, Role::Control, key("a"), at(t0, 2.0)), None);
    assert_eq!(c.controller(), Some(2));
}

#[test]
fn controller_without_key_leaving_passes_to_the_only_one_left() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, None, Role::Control, None, t0);
    c.join(2, None, Role::Control, None, t0);
    c.join(9, None, Role::ViewOnly, None, t0);
    assert_eq!(c.leave(1, t0), to(Some(1), Some(2)));
    // The last full viewer leaves: nobody controls, and the view-only one never does.
    assert_eq!(c.leave(2, t0), to(Some(2), None));
    assert!(!c.may_control(9));
    // A lone newcomer gets control even while a reservation would be pending.
    c.join(3, None, Role::Control, key("x"), t0);
    c.leave(3, t0);
    assert_eq!(
        c.join(4, None, Role::Control, key("y"), at(t0, 1.0)),
        to(None, Some(4))
    );
}

#[test]
fn shared_mode_lets_every_full_viewer_in() {
    let t0 = Instant::now();
    let mut c = ControlState::new(Mode::Shared, IDLE, t0);
    assert_eq!(c.join(1, None, Role::Control, None, t0), None);
    c.join(2, None, Role::Control, None, t0);
    c.join(3, None, Role::ViewOnly, None, t0);
    assert_eq!(c.input(1, t0), Ok(()));
    assert_eq!(c.input(2, t0), Ok(()));
    assert_eq!(c.input(3, t0), Err(Refusal::ViewOnly));
    assert_eq!(c.act(2, Action::Request, t0), Err(Refusal::Shared));
    let p = c.presence(t0);
    assert_eq!(p.controller, None);
    assert_eq!(
        p.viewers.iter().map(|v| v.control).collect::<Vec<_>>(),
        [true, true, false]
    );
}

#[test]
fn names_are_checked() {
    let t0 = Instant::now();
    let mut c = s(t0);
    c.join(1, Some("  \u{1}bad"), Role::Control, None, t0);
    assert_eq!(c.name(1), "viewer 1");
    assert_eq!(c.rename(1, " Zoë "), Ok(()));
    assert_eq!(c.name(1), "Zoë");
    assert_eq!(c.rename(1, ""), Err(Refusal::BadName));
    assert_eq!(c.rename(1, &"x".repeat(33)), Err(Refusal::BadName));
    assert_eq!(c.rename(1, "a\nb"), Err(Refusal::BadName));
    assert_eq!(c.rename(1, &"é".repeat(32)), Ok(()));
}

#[test]
fn random_event_sequences_keep_the_invariants() {
    let t0 = Instant::now();
    let mut c = s(t0);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut now = t0;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let id = seed % 6;
        now += Duration::from_millis(seed % 3000);
        let k = key(["a", "b", "c"][(seed >> 8) as usize % 3]);
        let role = [Role::Control, Role::ViewOnly, Role::Whep][(seed >> 12) as usize % 3];
        match (seed >> 20) % 9 {
            0 => drop(c.join(id, None, role, k, now)),
            1 => drop(c.leave(id, now)),
            2 => drop(c.act(id, Action::Request, now)),
            3 => drop(c.act(id, Action::Give(seed >> 30 & 7), now)),
            4 => drop(c.act(id, Action::Release, now)),
            5 => drop(c.act(
                id,
                Action::Take {
                    admin: seed & 1 == 0,
                },
                now,
            )),
            6 => drop(c.tick(now)),
            7 => drop(c.input(id, now)),
            _ => drop(c.rename(id, "n")),
        }
        let p = c.presence(now);
        let controllers: Vec<_> = p.viewers.iter().filter(|v| v.control).collect();
        assert!(controllers.len() <= 1, "{p:?}");
        if let Some(ctl) = p.controller {
            let v = p
                .viewers
                .iter()
                .find(|v| v.id == ctl)
                .expect("controller is present");
            assert_eq!(v.role, Role::Control);
            assert!(v.control && !v.requesting);
        }
        assert!(p.controller.is_none() || p.reserved_for.is_none());
    }
}
