//! The JSON-lines reader: any bytes, framed into lines and parsed, never panic; a
//! line that parses is printed compactly, and that output parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcplab::proto::lines::{LineFramer, json_line};

fuzz_target!(|data: &[u8]| {
    let mut framer = LineFramer::new(1 << 16);
    let mut check = |line: &[u8]| {
        if let Ok(Some(compact)) = json_line(line) {
            let again: serde_json::Value = serde_json::from_str(&compact).expect("compact output parses");
            let original: serde_json::Value = serde_json::from_slice(line).expect("it parsed before");
            assert_eq!(again, original, "compact printing changed the value");
            assert!(!compact.contains('\n'), "compact output spans lines");
        }
    };
    if framer.push(data, &mut check).is_ok() {
        let _ = framer.finish(&mut check);
    }
});
