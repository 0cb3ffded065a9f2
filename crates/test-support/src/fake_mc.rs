//! A fake MELSEC CPU speaking MC protocol 3E binary frames on `127.0.0.1:0`: batch read and
//! write (0401/1401, words and bits) and random read (0403), over memory the test controls,
//! with scripted faults. Written from the MC protocol reference manual, not from our driver.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the server does with the next request instead of answering normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this end code and the error information.
    EndCode(u16),
    /// Close the connection without answering.
    Close,
    /// Answer nothing (the connection stays open).
    Silence,
    /// Answer normally, in two pieces: the first `at` bytes, a pause, the rest.
    Split {
        /// Bytes in the first piece.
        at: usize,
        /// Pause between the pieces.
        pause: Duration,
    },
}

#[derive(Default)]
struct Memory {
    words: HashMap<(u8, u32), u16>,
    bits: HashMap<(u8, u32), bool>,
    faults: VecDeque<Fault>,
    requests: Vec<(u16, u16)>,
    connections: usize,
}

/// The running fake; stops when dropped.
pub struct FakeMc {
    address: SocketAddr,
    memory: Arc<Mutex<Memory>>,
    stop: Arc<AtomicBool>,
}

/// Device codes used by tests (Q/L series binary codes).
pub mod code {
    /// D (data register).
    pub const D: u8 = 0xA8;
    /// W (link register).
    pub const W: u8 = 0xB4;
    /// R (file register).
    pub const R: u8 = 0xAF;
    /// ZR (file register, serial).
    pub const ZR: u8 = 0xB0;
    /// M (internal relay).
    pub const M: u8 = 0x90;
    /// X (input).
    pub const X: u8 = 0x9C;
    /// Y (output).
    pub const Y: u8 = 0x9D;
}

impl FakeMc {
    /// Starts the server on a free loopback port.
    pub fn start() -> FakeMc {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake MC server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("address");
        let memory = Arc::new(Mutex::new(Memory::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (memory.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        lock(&m).connections += 1;
                        let (m, s) = (m.clone(), s.clone());
                        std::thread::spawn(move || serve(stream, &m, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeMc {
            address,
            memory,
            stop,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sets words from `number` on.
    pub fn set_words(&self, device: u8, number: u32, values: &[u16]) {
        let mut memory = lock(&self.memory);
        for (i, &v) in values.iter().enumerate() {
            memory.words.insert((device, number + i as u32), v);
        }
    }

    /// Sets bits from `number` on.
    pub fn set_bits(&self, device: u8, number: u32, values: &[bool]) {
        let mut memory = lock(&self.memory);
        for (i, &v) in values.iter().enumerate() {
            memory.bits.insert((device, number + i as u32), v);
        }
    }

    /// One word.
    pub fn word(&self, device: u8, number: u32) -> u16 {
        lock(&self.memory)
            .words
            .get(&(device, number))
            .copied()
            .unwrap_or(0)
    }

    /// One bit.
    pub fn bit(&self, device: u8, number: u32) -> bool {
        lock(&self.memory)
            .bits
            .get(&(device, number))
            .copied()
            .unwrap_or(false)
    }

    /// Makes the next request meet `fault`.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.memory).faults.push_back(fault);
    }

    /// (command, subcommand) of every request received so far.
    pub fn requests(&self) -> Vec<(u16, u16)> {
        lock(&self.memory).requests.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.memory).connections
    }
}

impl Drop for FakeMc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn lock(memory: &Mutex<Memory>) -> MutexGuard<'_, Memory> {
    memory.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_exact(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return false,
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

fn serve(mut stream: TcpStream, memory: &Mutex<Memory>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut silent = false;
    loop {
        let mut header = [0u8; 9];
        if !read_exact(&mut stream, &mut header, stop) {
            return;
        }
        let length = usize::from(u16::from_le_bytes([header[7], header[8]]));
        let mut body = vec![0u8; length];
        if !read_exact(&mut stream, &mut body, stop) || length < 6 {
            return;
        }
        let command = u16::from_le_bytes([body[2], body[3]]);
        let subcommand = u16::from_le_bytes([body[4], body[5]]);
        let fault = {
            let mut m = lock(memory);
            m.requests.push((command, subcommand));
            m.faults.pop_front()
        };
        if silent {
            continue;
        }
        let (end_code, data) = match &fault {
            Some(Fault::EndCode(code)) => (*code, Vec::new()),
            _ => execute(command, subcommand, &body[6..], &mut lock(memory)),
        };
        let mut reply = vec![
            0xD0, 0x00, header[2], header[3], header[4], header[5], header[6],
        ];
        let payload: Vec<u8> = if end_code == 0 {
            data
        } else {
            let mut info = header[2..7].to_vec();
            info.extend_from_slice(&body[2..6]);
            info
        };
        reply.extend_from_slice(&((payload.len() + 2) as u16).to_le_bytes());
        reply.extend_from_slice(&end_code.to_le_bytes());
        reply.extend_from_slice(&payload);
        match fault {
            Some(Fault::Close) => return,
            Some(Fault::Silence) => silent = true,
            Some(Fault::Split { at, pause }) => {
                let at = at.min(reply.len());
                let _ = stream.write_all(&reply[..at]);
                let _ = stream.flush();
                std::thread::sleep(pause);
                let _ = stream.write_all(&reply[at..]);
            }
            _ => {
                let _ = stream.write_all(&reply);
            }
        }
    }
}

fn device(bytes: &[u8]) -> (u8, u32) {
    (
        bytes[3],
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0]),
    )
}

/// Runs a request: (end code, data).
fn execute(command: u16, subcommand: u16, data: &[u8], m: &mut Memory) -> (u16, Vec<u8>) {
    const WRONG: (u16, Vec<u8>) = (0xC061, Vec::new());
    match (command, subcommand) {
        (0x0401, unit @ (0 | 1)) => {
            if data.len() != 6 {
                return WRONG;
            }
            let (code, head) = device(data);
            let points = u32::from(u16::from_le_bytes([data[4], data[5]]));
            if unit == 0 {
                let mut out = Vec::new();
                for n in head..head + points {
                    let w = m.words.get(&(code, n)).copied().unwrap_or(0);
                    out.extend_from_slice(&w.to_le_bytes());
                }
                (0, out)
            } else {
                let bits: Vec<bool> = (head..head + points)
                    .map(|n| m.bits.get(&(code, n)).copied().unwrap_or(false))
                    .collect();
                let out = bits
                    .chunks(2)
                    .map(|p| (u8::from(p[0]) << 4) | p.get(1).map_or(0, |&b| u8::from(b)))
                    .collect();
                (0, out)
            }
        }
        (0x0403, 0) => {
            if data.len() < 2 {
                return WRONG;
            }
            let (words, dwords) = (usize::from(data[0]), usize::from(data[1]));
            if data.len() != 2 + 4 * (words + dwords) {
                return WRONG;
            }
            let mut out = Vec::new();
            for (i, entry) in data[2..].chunks(4).enumerate() {
                let (code, n) = device(entry);
                let width = if i < words { 1 } else { 2 };
                for k in 0..width {
                    let w = m.words.get(&(code, n + k)).copied().unwrap_or(0);
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            (0, out)
        }
        (0x1401, unit @ (0 | 1)) => {
            if data.len() < 6 {
                return WRONG;
            }
            let (code, head) = device(data);
            let points = u32::from(u16::from_le_bytes([data[4], data[5]]));
            let values = &data[6..];
            if unit == 0 {
                if values.len() != 2 * points as usize {
                    return WRONG;
                }
                for (i, pair) in values.chunks(2).enumerate() {
                    m.words.insert(
                        (code, head + i as u32),
                        u16::from_le_bytes([pair[0], pair[1]]),
                    );
                }
            } else {
                if values.len() != (points as usize).div_ceil(2) {
                    return WRONG;
                }
                for i in 0..points {
                    let byte = values[(i / 2) as usize];
                    let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0F };
                    m.bits.insert((code, head + i), nibble != 0);
                }
            }
            (0, Vec::new())
        }
        _ => (0xC059, Vec::new()),
    }
}
