//! The committed seed corpus (`fuzz/corpus/amf0`) through the fuzz harness, so it runs in
//! every `cargo test`, with or without the nightly toolchain cargo-fuzz needs; and the seeds
//! generated here, which must be in that corpus as generated. After changing a generator:
//! `ONAIR_WRITE_CORPUS=1 cargo test -p onair-amf --test fuzz_corpus`.

use onair_amf::fuzzing::amf0;
use onair_amf::{Value, amf3, decode_all, encode_all};

#[path = "../../../fuzz/seed_corpus.rs"]
mod seed_corpus;
use seed_corpus::{check_seeds, run_corpus};

#[test]
fn amf0_corpus_keeps_the_invariants() {
    run_corpus("amf0", amf0);
}

#[test]
fn amf0_corpus_holds_the_generated_seeds() {
    check_seeds("amf0", seeds(), amf0);
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let amf0_seeds = [
        ("connect-obs.bin", encode_all(&connect()).to_vec(), 3),
        ("publish.bin", encode_all(&publish()).to_vec(), 5),
        (
            "set-data-frame.bin",
            encode_all(&set_data_frame()).to_vec(),
            3,
        ),
        ("result-and-status.bin", result_and_status(), 8),
        (
            "every-amf0-type.bin",
            encode_all(&every_type()).to_vec(),
            14,
        ),
        ("object-reference.bin", object_reference(), 2),
        // FFmpeg's FLV reader accepts a top-level ECMA array that ends with the input.
        ("ecma-array-without-end.bin", ecma_array_without_end(), 1),
        ("nested-63-deep.bin", nested(63), 1),
    ];
    let mut seeds = Vec::new();
    for (name, data, values) in amf0_seeds {
        let decoded = decode_all(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), values, "{name}");
        seeds.push((name, data));
    }
    // Types 15/17 payloads: the harness also decodes every input as one.
    for (name, data, values) in [
        ("amf3-connect.bin", amf3_connect(), 3),
        ("amf3-types.bin", amf3_types(), 12),
    ] {
        let decoded = amf3::decode_command_payload(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), values, "{name}");
        seeds.push((name, data));
    }
    // Inputs the decoder must refuse, close to ones it accepts.
    let mut cut = encode_all(&connect()).to_vec();
    cut.truncate(cut.len() - 20);
    let mut bad_utf8 = encode_all(&["connect".into()]).to_vec();
    bad_utf8[6] = 0xC3; // a lead byte followed by '(' is not UTF-8
    bad_utf8[7] = b'(';
    for (name, data) in [
        ("connect-cut-short.bin", cut),
        ("nested-65-deep.bin", nested(65)),
        ("invalid-utf8.bin", bad_utf8),
    ] {
        assert!(decode_all(&data).is_err(), "{name} decodes");
        seeds.push((name, data));
    }
    seeds
}

fn connect() -> Vec<Value> {
    vec![
        "connect".into(),
        1.0.into(),
        Value::object([
            ("app", Value::from("live")),
            ("type", "nonprivate".into()),
            ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)".into()),
            ("swfUrl", "rtmp://127.0.0.1:1935/live".into()),
            ("tcUrl", "rtmp://127.0.0.1:1935/live".into()),
            (
                "fourCcList",
                Value::StrictArray(vec!["av01".into(), "vp09".into(), "hvc1".into()]),
            ),
            ("capsEx", 1.0.into()),
        ]),
    ]
}

fn publish() -> Vec<Value> {
    vec![
        "publish".into(),
        5.0.into(),
        Value::Null,
        "key?token=abc".into(),
        "live".into(),
    ]
}

fn set_data_frame() -> Vec<Value> {
    vec![
        "@setDataFrame".into(),
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("duration".into(), 0.0.into()),
            ("width".into(), 1920.0.into()),
            ("height".into(), 1080.0.into()),
            ("videodatarate".into(), 6000.0.into()),
            ("framerate".into(), 60.0.into()),
            (
                "videocodecid".into(),
                f64::from(u32::from_be_bytes(*b"hvc1")).into(),
            ),
            ("audiocodecid".into(), 10.0.into()),
            ("stereo".into(), true.into()),
            ("encoder".into(), "onair corpus".into()),
        ]),
    ]
}

/// The connect `_result` and an `onStatus`, as a server sends them one after the other.
fn result_and_status() -> Vec<u8> {
    let mut out = encode_all(&[
        "_result".into(),
        1.0.into(),
        Value::object([
            ("fmsVer", Value::from("FMS/3,5,7,7009")),
            ("capabilities", 31.0.into()),
        ]),
        Value::object([
            ("level", Value::from("status")),
            ("code", "NetConnection.Connect.Success".into()),
            ("description", "Connection succeeded.".into()),
            ("objectEncoding", 0.0.into()),
        ]),
    ])
    .to_vec();
    out.extend_from_slice(&encode_all(&[
        "onStatus".into(),
        0.0.into(),
        Value::Null,
        Value::object([
            ("level", Value::from("status")),
            ("code", "NetStream.Publish.Start".into()),
        ]),
    ]));
    out
}

fn every_type() -> Vec<Value> {
    vec![
        Value::Number(-0.0),
        // A signalling NaN with a payload: the round trip must keep the bits.
        Value::Number(f64::from_bits(0x7FF4_0000_0000_0ABC)),
        Value::Boolean(false),
        Value::String("ünïcödé ✓".into()),
        Value::Object(vec![]),
        Value::Null,
        Value::Undefined,
        Value::EcmaArray(vec![("0".into(), 1.0.into()), ("".into(), Value::Null)]),
        Value::StrictArray(vec![Value::StrictArray(vec![]), true.into()]),
        Value::Date {
            millis: 1_700_000_000_000.0,
            timezone: -60,
        },
        Value::LongString("a long-string marker on a short string".into()),
        Value::Xml("<a b=\"c\"/>".into()),
        Value::TypedObject {
            class_name: "flash.geom.Point".into(),
            properties: vec![("x".into(), 1.0.into()), ("y".into(), 2.0.into())],
        },
        Value::String(String::new()),
    ]
}

/// An object, then a reference (0x07) to it: AMF0 §2.9.
fn object_reference() -> Vec<u8> {
    let mut out = encode_all(&[Value::object([("a", Value::Number(1.0))])]).to_vec();
    out.extend_from_slice(&[0x07, 0x00, 0x00]);
    out
}

fn ecma_array_without_end() -> Vec<u8> {
    let mut out = encode_all(&[Value::EcmaArray(vec![
        ("width".into(), 640.0.into()),
        ("height".into(), 360.0.into()),
    ])])
    .to_vec();
    out.truncate(out.len() - 3);
    out
}

/// Strict arrays nested `depth` deep around a null.
fn nested(depth: usize) -> Vec<u8> {
    let mut value = Value::Null;
    for _ in 0..depth {
        value = Value::StrictArray(vec![value]);
    }
    encode_all(&[value]).to_vec()
}

/// `connect(1, {app: "live", objectEncoding: 3})` with the object in AMF3 (0x11 switch).
fn amf3_connect() -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend_from_slice(&encode_all(&["connect".into(), 1.0.into()]));
    // An anonymous object with dynamic traits, then each member: a U29 name length (n << 1
    // | 1), the name, the value; an empty name ends the members.
    out.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01]);
    out.extend_from_slice(&[0x07, b'a', b'p', b'p', 0x06, 0x09, b'l', b'i', b'v', b'e']);
    out.extend_from_slice(&[0x1D]);
    out.extend_from_slice(b"objectEncoding");
    out.extend_from_slice(&[0x04, 0x03, 0x01]);
    out
}

/// Every AMF3 marker the decoder accepts, each switched in from AMF0 by 0x11.
fn amf3_types() -> Vec<u8> {
    let values: [&[u8]; 12] = [
        &[0x00],                               // undefined
        &[0x01],                               // null
        &[0x02],                               // false
        &[0x03],                               // true
        &[0x04, 0xFF, 0xFF, 0xFF, 0xFF],       // the 29-bit integer -1
        &[0x05, 0x40, 0x04, 0, 0, 0, 0, 0, 0], // the double 2.5
        // A dense array of a string and a reference back to it.
        &[0x09, 0x05, 0x01, 0x06, 0x07, b'a', b'b', b'c', 0x06, 0x00],
        &[0x0C, 0x07, 0x01, 0x02, 0x03], // a ByteArray of three bytes
        &[0x08, 0x01, 0x42, 0x78, 0xBC, 0xFE, 0x56, 0x80, 0, 0], // a Date
        &[0x0B, 0x09, b'<', b'a', b'/', b'>'], // XML
        // Two objects of one sealed class Pt {x}, the second by traits reference.
        &[
            0x09, 0x05, 0x01, 0x0A, 0x13, 0x05, b'P', b't', 0x03, b'x', 0x04, 0x05, 0x0A, 0x01,
            0x04, 0x06,
        ],
        // An associative part {k: 1} before a dense part of one string.
        &[0x09, 0x03, 0x03, b'k', 0x04, 0x01, 0x01, 0x06, 0x03, b'v'],
    ];
    let mut out = vec![0x00];
    for value in values {
        out.push(0x11);
        out.extend_from_slice(value);
    }
    out
}
