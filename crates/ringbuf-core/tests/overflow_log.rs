//! The overflow warning: the spec's text, at most about one line a second.

use std::sync::Mutex;
use std::time::Duration;

use ringbuf_core::RingBuffer;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        LINES
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

#[test]
fn overflow_is_logged_at_warn_and_rate_limited() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let buffer = RingBuffer::new(10).unwrap();
    for i in 0..100_010u32 {
        buffer.push(i).unwrap();
    }
    assert_eq!(buffer.overflow_count(), 100_000);
    {
        let lines = LINES.lock().unwrap();
        assert_eq!(
            *lines,
            [(
                log::Level::Warn,
                "Buffer overflow: discarded oldest data (overflow_count=1)".to_string()
            )]
        );
    }

    std::thread::sleep(Duration::from_millis(1100));
    buffer.push_batch(0..5).unwrap();
    {
        let lines = LINES.lock().unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[1].1,
            "Buffer overflow: discarded oldest data (overflow_count=100005)"
        );
    }

    // Overflow that starts again after the buffer had room is logged at its first item.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(buffer.pop().is_some());
    assert_eq!(buffer.push(7).unwrap(), None);
    assert!(buffer.push(8).unwrap().is_some());
    {
        let lines = LINES.lock().unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2].1,
            "Buffer overflow: discarded oldest data (overflow_count=100006)"
        );
    }

    // Overflow that never stopped looks at the clock every 64 displacements: a second
    // later the next line comes within 64 more.
    std::thread::sleep(Duration::from_millis(1100));
    let mut pushes = 0;
    while LINES.lock().unwrap().len() == 3 {
        assert!(pushes < 64, "no line within 64 displacements");
        assert!(buffer.push(9).unwrap().is_some());
        pushes += 1;
    }
    let lines = LINES.lock().unwrap();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[3].1,
        format!(
            "Buffer overflow: discarded oldest data (overflow_count={})",
            100_006 + pushes
        )
    );
    drop(lines);

    // The owner can say what an overflow means where the buffer is used.
    let noted = RingBuffer::new(1).unwrap();
    assert!(noted.set_overflow_note("Check the backup disk."));
    assert!(
        !noted.set_overflow_note("a second note"),
        "the first note wins"
    );
    noted.push(1).unwrap();
    noted.push(2).unwrap();
    let lines = LINES.lock().unwrap();
    assert_eq!(
        lines[4].1,
        "Buffer overflow: discarded oldest data (overflow_count=1). Check the backup disk."
    );
}
