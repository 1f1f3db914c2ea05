//! From a browser key event (`KeyboardEvent.code` + `KeyboardEvent.key`) to an X keysym.
//!
//! The rule: what the key *means* wins. A single printable character in `key` becomes that
//! character's keysym, so text typed on any layout arrives as typed, whatever layout the X
//! server has. Named keys ("Enter", "Shift", "AltGraph", ...) map to their keysyms, with
//! `code` telling left from right and the keypad from the main block. Only when `key` says
//! nothing useful ("Unidentified"), or a shortcut (Ctrl/Alt/Meta held) is typed on a
//! non-Latin layout, does the physical key decide, read as on a US keyboard, so Ctrl+C
//! stays Ctrl+C on a Russian layout.
//!
//! Dead keys ("Dead") produce nothing: the browser composes and reports the finished
//! character with the next key, which is then typed as a character.

/// What to do with a key event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Press (or release) the key producing this keysym.
    Keysym(u32),
    /// Nothing: a dead key, or a key X has no use for.
    Ignore,
}

/// A few keysyms the rest of the module refers to.
pub mod sym {
    /// Left Shift.
    pub const SHIFT_L: u32 = 0xffe1;
    /// Right Shift.
    pub const SHIFT_R: u32 = 0xffe2;
    /// Left Control.
    pub const CONTROL_L: u32 = 0xffe3;
    /// Right Control.
    pub const CONTROL_R: u32 = 0xffe4;
    /// Left Alt.
    pub const ALT_L: u32 = 0xffe9;
    /// Right Alt.
    pub const ALT_R: u32 = 0xffea;
    /// Left Super (Windows/Command key).
    pub const SUPER_L: u32 = 0xffeb;
    /// Right Super.
    pub const SUPER_R: u32 = 0xffec;
    /// AltGr.
    pub const ISO_LEVEL3_SHIFT: u32 = 0xfe03;
    /// Mode switch (an older AltGr).
    pub const MODE_SWITCH: u32 = 0xff7e;
}

/// The keysym for a key event, or [`KeyAction::Ignore`]. `shortcut` says Ctrl, Alt or
/// Meta is held by this viewer. `None` means the event names no key this table knows.
pub fn keysym_for(code: &str, key: &str, shortcut: bool) -> Option<KeyAction> {
    if key == "Dead" {
        return Some(KeyAction::Ignore);
    }
    let mut chars = key.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if !c.is_control() {
            if let Some(ks) = keypad_char(code, c) {
                return Some(KeyAction::Keysym(ks));
            }
            // Shortcuts on a non-Latin layout: use the physical key's US meaning.
            if shortcut && !c.is_ascii() {
                if let Some(ks) = code_keysym(code) {
                    return Some(KeyAction::Keysym(ks));
                }
            }
            return Some(KeyAction::Keysym(char_keysym(c)));
        }
    }
    if let Some(ks) = named_keysym(code, key) {
        return Some(KeyAction::Keysym(ks));
    }
    code_keysym(code).map(KeyAction::Keysym)
}

/// The keysym of a Unicode character: Latin-1 keysyms equal their code points, everything
/// else uses the Unicode keysym range (0x0100_0000 + code point).
pub fn char_keysym(c: char) -> u32 {
    let cp = c as u32;
    match cp {
        0x20..=0x7e | 0xa0..=0xff => cp,
        _ => 0x0100_0000 + cp,
    }
}

/// The character a keysym stands for, if it is a Latin-1 or Unicode keysym.
pub fn keysym_char(ks: u32) -> Option<char> {
    match ks {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(ks),
        0x0100_0100..=0x0110_ffff => char::from_u32(ks - 0x0100_0000),
        _ => None,
    }
}

/// Whether a keysym is a modifier (Shift, Control, Alt, Super, AltGr, locks).
pub fn is_modifier(ks: u32) -> bool {
    matches!(ks, 0xffe1..=0xffee | 0xfe01..=0xfe0f | sym::MODE_SWITCH | 0xff7f)
}

/// Keypad characters: digits and operators typed on the numeric keypad.
fn keypad_char(code: &str, c: char) -> Option<u32> {
    if !code.starts_with("Numpad") {
        return None;
    }
    Some(match c {
        '0'..='9' => 0xffb0 + (c as u32 - '0' as u32),
        '*' => 0xffaa,
        '+' => 0xffab,
        '-' => 0xffad,
        '/' => 0xffaf,
        '=' => 0xffbd,
        '.' | ',' if code == "NumpadDecimal" => 0xffae,
        ',' => 0xffac,
        _ => return None,
    })
}

/// Named keys (`key` is a word), with `code` choosing the side or the keypad.
fn named_keysym(code: &str, key: &str) -> Option<u32> {
    let right = code.ends_with("Right");
    let pad = code.starts_with("Numpad");
    let side = |l: u32, r: u32| if right { r } else { l };
    let kp = |main: u32, keypad: u32| if pad { keypad } else { main };
    Some(match key {
        "Enter" => kp(0xff0d, 0xff8d),
        "Tab" => 0xff09,
        "Backspace" => 0xff08,
        "Escape" => 0xff1b,
        "Delete" => kp(0xffff, 0xff9f),
        "Insert" => kp(0xff63, 0xff9e),
        "Home" => kp(0xff50, 0xff95),
        "End" => kp(0xff57, 0xff9c),
        "PageUp" => kp(0xff55, 0xff9a),
        "PageDown" => kp(0xff56, 0xff9b),
        "ArrowLeft" => kp(0xff51, 0xff96),
        "ArrowUp" => kp(0xff52, 0xff97),
        "ArrowRight" => kp(0xff53, 0xff98),
        "ArrowDown" => kp(0xff54, 0xff99),
        "Clear" => kp(0xff0b, 0xff9d),
        "Shift" => side(sym::SHIFT_L, sym::SHIFT_R),
        "Control" => side(sym::CONTROL_L, sym::CONTROL_R),
        "Alt" => side(sym::ALT_L, sym::ALT_R),
        "AltGraph" => sym::ISO_LEVEL3_SHIFT,
        "Meta" | "OS" | "Super" => side(sym::SUPER_L, sym::SUPER_R),
        "CapsLock" => 0xffe5,
        "NumLock" => 0xff7f,
        "ScrollLock" => 0xff14,
        "PrintScreen" => 0xff61,
        "Pause" => 0xff13,
        "ContextMenu" => 0xff67,
        "AudioVolumeMute" => 0x1008_ff12,
        "AudioVolumeDown" => 0x1008_ff11,
        "AudioVolumeUp" => 0x1008_ff13,
        "MediaPlayPause" => 0x1008_ff14,
        "MediaStop" => 0x1008_ff15,
        "MediaTrackPrevious" => 0x1008_ff16,
        "MediaTrackNext" => 0x1008_ff17,
        _ => return function_key(key),
    })
}

/// "F1".."F35".
fn function_key(name: &str) -> Option<u32> {
    let n: u32 = name.strip_prefix('F')?.parse().ok()?;
    (1..=35).contains(&n).then(|| 0xffbe + n - 1)
}

/// The US-layout meaning of a physical key, unshifted.
pub fn code_keysym(code: &str) -> Option<u32> {
    if let Some(l) = code.strip_prefix("Key") {
        let mut cs = l.chars();
        if let (Some(c @ 'A'..='Z'), None) = (cs.next(), cs.next()) {
            return Some(c.to_ascii_lowercase() as u32);
        }
    }
    if let Some(d) = code.strip_prefix("Digit") {
        let mut cs = d.chars();
        if let (Some(c @ '0'..='9'), None) = (cs.next(), cs.next()) {
            return Some(c as u32);
        }
    }
    if let Some(d) = code.strip_prefix("Numpad") {
        let mut cs = d.chars();
        if let (Some(c @ '0'..='9'), None) = (cs.next(), cs.next()) {
            return Some(0xffb0 + (c as u32 - '0' as u32));
        }
    }
    let punct = match code {
        "Minus" => '-',
        "Equal" => '=',
        "BracketLeft" => '[',
        "BracketRight" => ']',
        "Backslash" => '\\',
        "Semicolon" => ';',
        "Quote" => '\'',
        "Backquote" => '`',
        "Comma" => ',',
        "Period" => '.',
        "Slash" => '/',
        "Space" => ' ',
        "IntlBackslash" => '<',
        _ => '\0',
    };
    if punct != '\0' {
        return Some(punct as u32);
    }
    let named = match code {
        "ShiftLeft" | "ShiftRight" => "Shift",
        "ControlLeft" | "ControlRight" => "Control",
        "AltLeft" | "AltRight" => "Alt",
        "MetaLeft" | "MetaRight" | "OSLeft" | "OSRight" => "Meta",
        "NumpadEnter" => "Enter",
        "NumpadMultiply" => return Some(0xffaa),
        "NumpadAdd" => return Some(0xffab),
        "NumpadSubtract" => return Some(0xffad),
        "NumpadDivide" => return Some(0xffaf),
        "NumpadDecimal" => return Some(0xffae),
        "NumpadEqual" => return Some(0xffbd),
        other => other,
    };
    named_keysym(code, named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(code: &str, key: &str) -> Option<KeyAction> {
        keysym_for(code, key, false)
    }

    #[test]
    fn characters_follow_the_page_layout() {
        assert_eq!(ks("KeyA", "a"), Some(KeyAction::Keysym(0x61)));
        assert_eq!(ks("KeyA", "A"), Some(KeyAction::Keysym(0x41)));
        // German layout: the US "Y" key types z, AltGr+Q types @.
        assert_eq!(ks("KeyY", "z"), Some(KeyAction::Keysym(0x7a)));
        assert_eq!(ks("KeyQ", "@"), Some(KeyAction::Keysym(0x40)));
        assert_eq!(ks("Semicolon", "ö"), Some(KeyAction::Keysym(0xf6)));
        assert_eq!(ks("KeyE", "€"), Some(KeyAction::Keysym(0x0100_20ac)));
        assert_eq!(ks("KeyF", "а"), Some(KeyAction::Keysym(0x0100_0430)));
        assert_eq!(ks("Space", " "), Some(KeyAction::Keysym(0x20)));
    }

    #[test]
    fn named_keys_and_sides() {
        assert_eq!(ks("Enter", "Enter"), Some(KeyAction::Keysym(0xff0d)));
        assert_eq!(ks("NumpadEnter", "Enter"), Some(KeyAction::Keysym(0xff8d)));
        assert_eq!(
            ks("ShiftRight", "Shift"),
            Some(KeyAction::Keysym(sym::SHIFT_R))
        );
        assert_eq!(
            ks("ControlLeft", "Control"),
            Some(KeyAction::Keysym(sym::CONTROL_L))
        );
        assert_eq!(
            ks("AltRight", "AltGraph"),
            Some(KeyAction::Keysym(sym::ISO_LEVEL3_SHIFT))
        );
        assert_eq!(ks("AltRight", "Alt"), Some(KeyAction::Keysym(sym::ALT_R)));
        assert_eq!(
            ks("MetaLeft", "Meta"),
            Some(KeyAction::Keysym(sym::SUPER_L))
        );
        assert_eq!(ks("F1", "F1"), Some(KeyAction::Keysym(0xffbe)));
        assert_eq!(ks("F12", "F12"), Some(KeyAction::Keysym(0xffc9)));
        assert_eq!(
            ks("ArrowLeft", "ArrowLeft"),
            Some(KeyAction::Keysym(0xff51))
        );
        assert_eq!(ks("Numpad4", "ArrowLeft"), Some(KeyAction::Keysym(0xff96)));
        assert_eq!(ks("Numpad7", "7"), Some(KeyAction::Keysym(0xffb7)));
        assert_eq!(ks("NumpadAdd", "+"), Some(KeyAction::Keysym(0xffab)));
    }

    #[test]
    fn dead_unknown_and_fallbacks() {
        assert_eq!(ks("BracketLeft", "Dead"), Some(KeyAction::Ignore));
        assert_eq!(ks("KeyQ", "Unidentified"), Some(KeyAction::Keysym(0x71)));
        assert_eq!(
            ks("ShiftLeft", "Unidentified"),
            Some(KeyAction::Keysym(sym::SHIFT_L))
        );
        assert_eq!(ks("Digit5", ""), Some(KeyAction::Keysym(0x35)));
        assert_eq!(ks("Foo", "Bar"), None);
        // Ctrl+C on a Russian layout is still Ctrl+C.
        assert_eq!(keysym_for("KeyC", "с", true), Some(KeyAction::Keysym(0x63)));
        assert_eq!(
            keysym_for("KeyC", "с", false),
            Some(KeyAction::Keysym(0x0100_0441))
        );
    }

    #[test]
    fn char_round_trip() {
        for c in ['a', 'Z', '~', 'é', 'ß', '€', 'ж', '✓', '😀'] {
            assert_eq!(keysym_char(char_keysym(c)), Some(c));
        }
        assert_eq!(keysym_char(0xff0d), None);
        assert!(is_modifier(sym::SHIFT_L) && is_modifier(sym::ISO_LEVEL3_SHIFT));
        assert!(!is_modifier(0x61));
    }
}
