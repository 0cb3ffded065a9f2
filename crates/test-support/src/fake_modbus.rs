//! A fake Modbus TCP server on `127.0.0.1:0`: functions 1-6 and 16 over four tables the test
//! controls, with scripted exceptions, dropped connections and silence. Written from the
//! Modbus Application Protocol specification, not from tokio-modbus.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the server does with the next request instead of answering normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An exception response with this code.
    Exception(u8),
    /// Close the connection without answering.
    Close,
    /// Answer nothing.
    Silence,
}

#[derive(Default)]
struct Tables {
    coils: HashMap<u16, bool>,
    discrete: HashMap<u16, bool>,
    input: HashMap<u16, u16>,
    holding: HashMap<u16, u16>,
    faults: VecDeque<Fault>,
    requests: Vec<u8>,
    connections: usize,
}

/// The running fake; stops when dropped.
pub struct FakeModbus {
    address: SocketAddr,
    tables: Arc<Mutex<Tables>>,
    stop: Arc<AtomicBool>,
}

fn lock(tables: &Mutex<Tables>) -> MutexGuard<'_, Tables> {
    tables.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeModbus {
    /// Starts the server on a free loopback port.
    pub fn start() -> FakeModbus {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Modbus server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("address");
        let tables = Arc::new(Mutex::new(Tables::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tables.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        lock(&t).connections += 1;
                        let (t, s) = (t.clone(), s.clone());
                        std::thread::spawn(move || serve(stream, &t, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeModbus {
            address,
            tables,
            stop,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sets holding registers from `start` on.
    pub fn set_holding(&self, start: u16, values: &[u16]) {
        let mut t = lock(&self.tables);
        for (i, &v) in values.iter().enumerate() {
            t.holding.insert(start + i as u16, v);
        }
    }

    /// Sets input registers from `start` on.
    pub fn set_input(&self, start: u16, values: &[u16]) {
        let mut t = lock(&self.tables);
        for (i, &v) in values.iter().enumerate() {
            t.input.insert(start + i as u16, v);
        }
    }

    /// Sets coils from `start` on.
    pub fn set_coils(&self, start: u16, values: &[bool]) {
        let mut t = lock(&self.tables);
        for (i, &v) in values.iter().enumerate() {
            t.coils.insert(start + i as u16, v);
        }
    }

    /// Sets discrete inputs from `start` on.
    pub fn set_discrete(&self, start: u16, values: &[bool]) {
        let mut t = lock(&self.tables);
        for (i, &v) in values.iter().enumerate() {
            t.discrete.insert(start + i as u16, v);
        }
    }

    /// One holding register.
    pub fn holding(&self, number: u16) -> u16 {
        lock(&self.tables)
            .holding
            .get(&number)
            .copied()
            .unwrap_or(0)
    }

    /// One coil.
    pub fn coil(&self, number: u16) -> bool {
        lock(&self.tables)
            .coils
            .get(&number)
            .copied()
            .unwrap_or(false)
    }

    /// Makes the next request meet `fault`.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.tables).faults.push_back(fault);
    }

    /// Function codes of every request so far.
    pub fn requests(&self) -> Vec<u8> {
        lock(&self.tables).requests.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.tables).connections
    }
}

impl Drop for FakeModbus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
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

fn serve(mut stream: TcpStream, tables: &Mutex<Tables>, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut silent = false;
    loop {
        // MBAP: transaction (2), protocol 0 (2), length (2), unit (1).
        let mut header = [0u8; 7];
        if !read_exact(&mut stream, &mut header, stop) {
            return;
        }
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        if length < 2 {
            return;
        }
        let mut pdu = vec![0u8; length - 1];
        if !read_exact(&mut stream, &mut pdu, stop) {
            return;
        }
        let function = pdu[0];
        let fault = {
            let mut t = lock(tables);
            t.requests.push(function);
            t.faults.pop_front()
        };
        if silent {
            continue;
        }
        let answer = match fault {
            Some(Fault::Close) => return,
            Some(Fault::Silence) => {
                silent = true;
                continue;
            }
            Some(Fault::Exception(code)) => vec![function | 0x80, code],
            None => execute(&pdu, &mut lock(tables)),
        };
        let mut reply = header[..4].to_vec();
        reply.extend_from_slice(&((answer.len() + 1) as u16).to_be_bytes());
        reply.push(header[6]);
        reply.extend_from_slice(&answer);
        let _ = stream.write_all(&reply);
    }
}

fn be(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn execute(pdu: &[u8], t: &mut Tables) -> Vec<u8> {
    let function = pdu[0];
    let exception = |code: u8| vec![function | 0x80, code];
    if pdu.len() < 5 {
        return exception(3);
    }
    let (start, count) = (be(pdu, 1), be(pdu, 3));
    match function {
        1 | 2 => {
            let table = if function == 1 { &t.coils } else { &t.discrete };
            let bits: Vec<bool> = (0..count)
                .map(|i| {
                    table
                        .get(&(start.wrapping_add(i)))
                        .copied()
                        .unwrap_or(false)
                })
                .collect();
            let mut out = vec![function, bits.len().div_ceil(8) as u8];
            for chunk in bits.chunks(8) {
                out.push(
                    chunk
                        .iter()
                        .enumerate()
                        .fold(0u8, |byte, (i, &b)| byte | (u8::from(b) << i)),
                );
            }
            out
        }
        3 | 4 => {
            let table = if function == 3 { &t.holding } else { &t.input };
            let mut out = vec![function, (2 * count) as u8];
            for i in 0..count {
                let w = table.get(&(start.wrapping_add(i))).copied().unwrap_or(0);
                out.extend_from_slice(&w.to_be_bytes());
            }
            out
        }
        5 => {
            t.coils.insert(start, count == 0xFF00);
            pdu.to_vec()
        }
        6 => {
            t.holding.insert(start, count);
            pdu.to_vec()
        }
        16 => {
            for i in 0..count {
                let at = 6 + 2 * usize::from(i);
                if at + 1 >= pdu.len() {
                    return exception(3);
                }
                t.holding.insert(start + i, be(pdu, at));
            }
            pdu[..5].to_vec()
        }
        _ => exception(1),
    }
}
