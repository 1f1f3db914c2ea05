use proptest::prelude::*;

use super::*;
use crate::input::wire::{parse, InputEvent};

/// The chunk message a wire text parses to.
fn msg(text: &str) -> ChunkMsg {
    assert!(text.len() <= MAX_MESSAGE_BYTES, "{} bytes", text.len());
    match parse(text.as_bytes()) {
        Ok(InputEvent::Chunk(m)) => m,
        other => panic!("{text:.60}: {other:?}"),
    }
}

/// Sends `data` through a chunker, the parser and a reassembler of limit `max`.
fn round_trip(data: ClipData, max: usize) -> Result<Option<ClipData>, ChunkError> {
    let mut r = Reassembler::new(max);
    let mut got = None;
    for text in Chunker::new(Arc::new(data), 7) {
        got = r.push(msg(&text))?;
    }
    Ok(got)
}

#[test]
fn a_large_text_and_image_arrive_whole() {
    let text: String = "héllo ✓ 中文 ".repeat(200_000);
    let data = ClipData::text(text.clone());
    assert_eq!(data.small_message(), None);
    assert_eq!(round_trip(data.clone(), 16 << 20), Ok(Some(data)));
    let png: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let data = ClipData::png(png);
    assert_eq!(round_trip(data.clone(), 16 << 20), Ok(Some(data)));
}

#[test]
fn the_limit_is_enforced_before_buffering() {
    let mut r = Reassembler::new(1 << 20);
    let begin = ChunkMsg::Begin {
        id: 1,
        kind: ClipKind::Text,
        size: (1 << 20) + 1,
    };
    assert_eq!(
        r.push(begin),
        Err(ChunkError::TooLarge {
            size: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    assert_eq!(r.buffered(), 0);
    // Later parts of the refused stream are ignored, nothing is published.
    let part = ChunkMsg::Part {
        id: 1,
        seq: 0,
        data: vec![b'x'; 10],
    };
    assert_eq!(r.push(part), Ok(None));
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.push(ChunkMsg::End { id: 1 }), Ok(None));
}

#[test]
fn bad_streams_are_refused_and_publish_nothing() {
    let begin = |id| ChunkMsg::Begin {
        id,
        kind: ClipKind::Text,
        size: 4,
    };
    let part = |id, seq, data: &[u8]| ChunkMsg::Part {
        id,
        seq,
        data: data.to_vec(),
    };
    let mut r = Reassembler::new(100);
    r.push(begin(1)).expect("begin");
    assert_eq!(
        r.push(part(1, 1, b"ab")),
        Err(ChunkError::OutOfOrder { id: 1, seq: 1 })
    );
    assert_eq!(r.push(ChunkMsg::End { id: 1 }), Ok(None));
    r.push(begin(2)).expect("begin");
    assert_eq!(
        r.push(part(2, 0, b"abcde")),
        Err(ChunkError::WrongSize { got: 5, size: 4 })
    );
    r.push(begin(3)).expect("begin");
    r.push(part(3, 0, b"ab")).expect("part");
    assert_eq!(
        r.push(ChunkMsg::End { id: 3 }),
        Err(ChunkError::WrongSize { got: 2, size: 4 })
    );
    r.push(begin(4)).expect("begin");
    r.push(part(4, 0, &[0xff, 0xfe, 0, 1])).expect("part");
    assert_eq!(r.push(ChunkMsg::End { id: 4 }), Err(ChunkError::NotUtf8));
    // A new stream cancels the one in flight.
    r.push(begin(5)).expect("begin");
    r.push(part(5, 0, b"ab")).expect("part");
    r.push(begin(6)).expect("begin");
    assert_eq!(r.buffered(), 0);
    r.push(part(5, 1, b"cd")).expect("ignored");
    r.push(part(6, 0, b"wxyz")).expect("part");
    assert_eq!(r.push(ChunkMsg::End { id: 5 }), Ok(None));
    assert_eq!(
        r.push(ChunkMsg::End { id: 6 }),
        Ok(Some(ClipData::text("wxyz".into())))
    );
}

#[test]
fn small_contents_keep_the_one_message_forms() {
    assert_eq!(
        ClipData::text("a\"b".into()).small_message().as_deref(),
        Some(r#"["cb","a\"b"]"#)
    );
    assert_eq!(
        ClipData::png(vec![0x89, b'P', b'N', b'G'])
            .small_message()
            .as_deref(),
        Some(r#"["ci","image/png","iVBORw=="]"#)
    );
    // Control characters escape to six bytes each: 20 000 of them do not fit in one message.
    assert_eq!(ClipData::text("\u{1}".repeat(20_000)).small_message(), None);
    let chunks: Vec<String> = Chunker::new(Arc::new(ClipData::text("x".into())), 3).collect();
    assert_eq!(
        chunks,
        [
            r#"["cbb",3,"text/plain",1]"#,
            r#"["cbp",3,0,"eA=="]"#,
            r#"["cbe",3]"#
        ]
    );
}

#[test]
fn chunk_messages_are_checked() {
    for bad in [
        r#"["cbb",1,"image/gif",4]"#,
        r#"["cbb",1,"text/plain",0]"#,
        r#"["cbb",1,"text/plain",-1]"#,
        r#"["cbb",-1,"text/plain",4]"#,
        r#"["cbb",1,"text/plain",999999999999]"#,
        r#"["cbp",1,0,""]"#,
        r#"["cbp",1,0,"***"]"#,
        r#"["cbp",1,"0","eA=="]"#,
        r#"["cbe"]"#,
    ] {
        assert!(
            matches!(
                parse(bad.as_bytes()),
                Err(crate::input::wire::WireError::BadField { .. })
            ),
            "{bad}"
        );
    }
    let long = format!(r#"["cbp",1,0,"{}"]"#, "A".repeat(60_004));
    assert!(parse(long.as_bytes()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any content within the limit arrives byte-identical; any over it is refused at once.
    #[test]
    fn any_content_round_trips_or_is_refused(
        len in 1usize..200_000,
        seed in any::<u8>(),
        max in 1usize..250_000,
        image in any::<bool>(),
    ) {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) % 128).collect();
        let data = if image {
            ClipData::png(bytes)
        } else {
            ClipData::text(String::from_utf8(bytes).expect("ASCII"))
        };
        let got = round_trip(data.clone(), max);
        if len <= max {
            prop_assert_eq!(got, Ok(Some(data)));
        } else {
            prop_assert_eq!(got, Err(ChunkError::TooLarge { size: len, max }));
        }
    }

    /// Parts dropped, repeated or swapped never publish anything but the exact content.
    #[test]
    fn damaged_streams_never_publish_wrong_content(
        len in 1usize..200_000,
        drop_at in any::<prop::sample::Index>(),
        action in 0u8..3,
    ) {
        let data = ClipData::png((0..len).map(|i| i as u8).collect());
        let mut msgs: Vec<String> = Chunker::new(Arc::new(data.clone()), 9).collect();
        // Damage one part (never the begin or the end).
        if msgs.len() > 2 {
            let i = 1 + drop_at.index(msgs.len() - 2);
            match action {
                0 => { msgs.remove(i); }
                1 => { let m = msgs[i].clone(); msgs.insert(i, m); }
                _ => { let last = msgs.len() - 2; msgs.swap(i, last); }
            }
        }
        let mut r = Reassembler::new(1 << 20);
        let mut published = Vec::new();
        for text in &msgs {
            if let Ok(Some(c)) = r.push(msg(text)) {
                published.push(c);
            }
        }
        for c in published {
            prop_assert_eq!(c, data.clone());
        }
    }
}
