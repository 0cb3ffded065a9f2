//! Memory per buffered value: fills a 1,000,000-item RingBuffer<TagValue> with values of
//! 1,000 tags (shared strings, as the polling engine makes them) and reports the growth of
//! the resident set and the peak, per value.
//!
//! cargo run --release -p benches --bin buffer_memory

use ringbuf_core::RingBuffer;

fn main() {
    const ITEMS: usize = 1_000_000;
    let before = benches::rss_bytes("VmRSS:").unwrap_or(0);
    let buffer = RingBuffer::new(ITEMS).expect("capacity");
    // Push in chunks so the generator's own vector stays small.
    for chunk in 0..ITEMS / 10_000 {
        for value in benches::values(chunk * 10, 10_000) {
            let _ = buffer.push(value);
        }
    }
    assert_eq!(buffer.len(), ITEMS);
    let after = benches::rss_bytes("VmRSS:").unwrap_or(0);
    let peak = benches::rss_bytes("VmHWM:").unwrap_or(0);
    println!("values buffered:        {}", buffer.len());
    println!(
        "size_of::<TagValue>():  {} bytes",
        std::mem::size_of::<tag_model::TagValue>()
    );
    println!(
        "bytes per slot:         {} (RingBuffer::bytes_per_slot: the item and its stamp)",
        RingBuffer::<tag_model::TagValue>::bytes_per_slot()
    );
    println!(
        "RSS before:             {:.1} MiB",
        before as f64 / 1048576.0
    );
    println!(
        "RSS full:               {:.1} MiB (peak {:.1} MiB)",
        after as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    println!(
        "bytes per value:        {:.1}",
        (after.saturating_sub(before)) as f64 / ITEMS as f64
    );
}
