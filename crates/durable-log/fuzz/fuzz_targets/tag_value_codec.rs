//! Any bytes as a tag value payload: decoding never panics, and what decodes re-encodes to
//! values that decode the same.
#![no_main]

use durable_log::{Codec, TagValueCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, payload)) = data.split_first() else {
        return;
    };
    let codec = TagValueCodec::new();
    let mut values = Vec::new();
    if codec.decode(payload, usize::from(count), &mut values).is_ok() {
        let mut again = Vec::new();
        codec.encode(&values, &mut again);
        let mut back = Vec::new();
        codec
            .decode(&again, values.len(), &mut back)
            .expect("re-encoded values decode");
        assert_eq!(back, values);
    }
});
