use super::*;

fn p(s: &str) -> Result<InputEvent, WireError> {
    parse(s.as_bytes())
}

#[test]
fn parses_every_type() {
    assert_eq!(p(r#"["v",1]"#), Ok(InputEvent::Version(1)));
    assert_eq!(p(r#"["v",2]"#), Ok(InputEvent::Version(2)));
    assert_eq!(p(r#"["v",3]"#), Ok(InputEvent::Version(3)));
    assert_eq!(
        p(r#"["tx","中文输入\n"]"#),
        Ok(InputEvent::TypeText("中文输入\n".into()))
    );
    assert_eq!(p(r#"["txc"]"#), Ok(InputEvent::CancelTyping));
    assert_eq!(
        p(r#"["ci","image/png","iVBORw=="]"#),
        Ok(InputEvent::ClipboardImage(vec![0x89, b'P', b'N', b'G']))
    );
    assert_eq!(
        encode_image(&[0x89, b'P', b'N', b'G']),
        r#"["ci","image/png","iVBORw=="]"#
    );
    for bad in [
        r#"["ci","image/gif","iVBORw=="]"#,
        r#"["ci","image/png","***"]"#,
        r#"["ci","image/png",""]"#,
        r#"["ci","image/png"]"#,
    ] {
        assert!(matches!(p(bad), Err(WireError::BadField { .. })), "{bad}");
    }
    assert_eq!(
        p(r#"["kd","KeyA","a"]"#),
        Ok(InputEvent::KeyDown {
            code: "KeyA".into(),
            key: "a".into()
        })
    );
    assert_eq!(
        p(r#"["ku","KeyA","a"]"#),
        Ok(InputEvent::KeyUp {
            code: "KeyA".into()
        })
    );
    assert_eq!(
        p(r#"["m",0.25,1]"#),
        Ok(InputEvent::Move { x: 0.25, y: 1.0 })
    );
    assert_eq!(
        p(r#"["mr",-0.01,0.5]"#),
        Ok(InputEvent::MoveBy { dx: -0.01, dy: 0.5 })
    );
    assert_eq!(p(r#"["bd",9]"#), Ok(InputEvent::ButtonDown(9)));
    assert_eq!(p(r#"["bu",1]"#), Ok(InputEvent::ButtonUp(1)));
    assert_eq!(
        p(r#"["w",0,-1.5]"#),
        Ok(InputEvent::Wheel { dx: 0.0, dy: -1.5 })
    );
    assert_eq!(p(r#"["ra"]"#), Ok(InputEvent::ReleaseAll));
    assert_eq!(
        p(r#"["cb","héllo ✓"]"#),
        Ok(InputEvent::Clipboard("héllo ✓".into()))
    );
}

#[test]
fn refuses_bad_messages() {
    assert_eq!(p(r#"["v",4]"#), Err(WireError::Version(4)));
    assert_eq!(p(r#"["v",0]"#), Err(WireError::Version(0)));
    assert!(matches!(p(r#"["tx",""]"#), Err(WireError::BadField { .. })));
    assert!(matches!(p(r#"["tx",5]"#), Err(WireError::BadField { .. })));
    let long = format!(r#"["tx","{}"]"#, "x".repeat(MAX_TYPE_BYTES + 1));
    assert!(matches!(p(&long), Err(WireError::BadField { .. })));
    assert!(matches!(p(r#"["zz"]"#), Err(WireError::UnknownType(_))));
    assert_eq!(p(r#"{"t":"m"}"#), Err(WireError::NotAnArray));
    assert_eq!(p(r#"[1,2]"#), Err(WireError::NotAnArray));
    assert_eq!(p(""), Err(WireError::NotAnArray));
    assert!(matches!(
        p(r#"["m",1.5,0]"#),
        Err(WireError::BadField { .. })
    ));
    assert!(matches!(
        p(r#"["m",-0.1,0]"#),
        Err(WireError::BadField { .. })
    ));
    assert!(matches!(
        p(r#"["m","1",0]"#),
        Err(WireError::BadField { .. })
    ));
    assert!(matches!(p(r#"["m",0.5]"#), Err(WireError::BadField { .. })));
    assert!(matches!(p(r#"["bd",0]"#), Err(WireError::BadField { .. })));
    assert!(matches!(p(r#"["bd",10]"#), Err(WireError::BadField { .. })));
    assert!(matches!(
        p(r#"["bd",1.5]"#),
        Err(WireError::BadField { .. })
    ));
    assert!(matches!(
        p(r#"["w",0,1e9]"#),
        Err(WireError::BadField { .. })
    ));
    let long = format!(r#"["kd","{}","a"]"#, "K".repeat(MAX_KEY_FIELD + 1));
    assert!(matches!(p(&long), Err(WireError::BadField { .. })));
    let clip = format!(r#"["cb","{}"]"#, "x".repeat(MAX_CLIPBOARD_BYTES + 1));
    assert_eq!(
        p(&clip),
        Err(WireError::ClipboardTooLarge(MAX_CLIPBOARD_BYTES + 1))
    );
    let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        parse(&huge),
        Err(WireError::TooLarge(MAX_MESSAGE_BYTES + 1))
    );
    let unknown = format!(r#"["{}"]"#, "q".repeat(100));
    match p(&unknown) {
        Err(WireError::UnknownType(name)) => assert!(name.chars().count() <= 17),
        other => panic!("expected UnknownType, got {other:?}"),
    }
}

/// Random bytes and random mutations of valid messages: the parser must return, never
/// panic, and anything it accepts must respect the limits.
#[test]
fn fuzz_never_panics() {
    let seeds: [&[u8]; 10] = [
        br#"["kd","KeyA","a"]"#,
        br#"["m",0.5,0.5]"#,
        br#"["mr",-0.1,0.2]"#,
        br#"["bd",3]"#,
        br#"["w",0.25,-3]"#,
        br#"["cb","x\u00e9y"]"#,
        br#"["v",1]"#,
        br#"[[[[["ra"]]]]]"#,
        br#"["tx","\u4e2d\u6587 ok"]"#,
        br#"["txc"]"#,
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"[]{},.:\"\\-+e0123456789 kdmrbuwvcaxyz\x00\xff\xc3\xa9";
    for round in 0..40_000 {
        let mut msg: Vec<u8> = if round % 4 == 0 {
            (0..(next() % 64)).map(|_| next() as u8).collect()
        } else {
            seeds[(next() % seeds.len() as u64) as usize].to_vec()
        };
        for _ in 0..(next() % 6) {
            let at = if msg.is_empty() {
                0
            } else {
                (next() % msg.len() as u64) as usize
            };
            let c = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 if !msg.is_empty() => msg[at] = c,
                1 if !msg.is_empty() => {
                    msg.remove(at);
                }
                _ => msg.insert(at, c),
            }
        }
        match parse(&msg) {
            Ok(InputEvent::Move { x, y }) => {
                assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
            }
            Ok(InputEvent::ButtonDown(b) | InputEvent::ButtonUp(b)) => {
                assert!((1..=9).contains(&b))
            }
            Ok(InputEvent::KeyDown { code, key }) => {
                assert!(code.len() <= MAX_KEY_FIELD && key.len() <= MAX_KEY_FIELD)
            }
            Ok(InputEvent::TypeText(text)) => {
                assert!(!text.is_empty() && text.len() <= MAX_TYPE_BYTES)
            }
            _ => {}
        }
    }
}

#[test]
fn encodes_server_messages() {
    assert_eq!(encode_pointer(0.5, 2.0), r#"["cp",0.50000,1.00000]"#);
    assert_eq!(encode_clipboard("a\"b"), r#"["cb","a\"b"]"#);
    assert_eq!(encode_error("no"), r#"["err","no"]"#);
    assert_eq!(encode_version(16 << 20), r#"["v",3,16777216]"#);
    let shape = CursorShape {
        serial: 7,
        width: 1,
        height: 1,
        hot_x: 0,
        hot_y: 0,
        // Half-transparent premultiplied white: 0x80 alpha, 0x80 colour.
        argb: vec![0x8080_8080],
    };
    // Straight RGBA ff ff ff 80 in base64 is "////gA==".
    assert_eq!(
        encode_cursor(&shape, 640, 480),
        r#"["cs",7,1,1,0,0,640,480,"////gA=="]"#
    );
}
