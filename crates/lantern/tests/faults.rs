//! Faults injected through the storage layer of a streamed model ([`ReadAt`]): reads that
//! fail, stop at a false end, return garbage, come back short or come slowly. A failing read
//! is an error of the session whose pass needed it, and only of that pass: no hang, no
//! wrong token, and the next generation gives the right tokens. Short and slow reads change
//! nothing but time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lantern::{Budget, Engine, Error, GenerateConfig, Pin, ReadAt, SessionConfig, StreamOptions};
use lantern_io::container::write_container;
use lantern_io::{GgufModel, ModelSource};
use lantern_test_support::models::{tiny_model, Tiny};

/// What the storage does to reads, from the `after`-th read on (counted since armed).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// An I/O error.
    Fail,
    /// No bytes: the storage seems to end there.
    End,
    /// The bytes with one bit flipped.
    Flip,
    /// At most 100 bytes per read.
    Short,
    /// Each read waits this long first.
    Slow(Duration),
}

/// A container in memory, read through a fault.
#[derive(Debug)]
struct Storage {
    bytes: Vec<u8>,
    fault: Mutex<(Fault, u64)>,
    reads: AtomicU64,
}

impl Storage {
    /// Applies `fault` from the `after`-th read from now on.
    fn arm(&self, fault: Fault, after: u64) {
        *self.fault.lock().unwrap() = (fault, self.reads.load(Ordering::SeqCst) + after);
    }
}

impl ReadAt for Storage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let read = self.reads.fetch_add(1, Ordering::SeqCst);
        let (fault, from) = *self.fault.lock().unwrap();
        let fault = if read >= from { fault } else { Fault::None };
        let rest = self.bytes.get(offset as usize..).unwrap_or_default();
        let mut n = buf.len().min(rest.len());
        match fault {
            Fault::Fail => return Err(io::Error::other("injected read failure")),
            Fault::End => return Ok(0),
            Fault::Short => n = n.min(100),
            Fault::Slow(wait) => std::thread::sleep(wait),
            Fault::None | Fault::Flip => {}
        }
        buf[..n].copy_from_slice(&rest[..n]);
        if fault == Fault::Flip && n > 0 {
            buf[n / 2] ^= 0x10;
        }
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
}

/// The tiny chat model as a container in memory, and an engine streaming it through
/// `Storage` at `depth`, within a budget a little over the least it can run in (101,594
/// bytes), so that every pass reads the weights.
fn streamed_engine(depth: usize) -> (Engine, Arc<Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.lantern");
    let gguf = GgufModel::open(ModelSource::from_vec(tiny_model(&Tiny::with_tokenizer()))).unwrap();
    write_container(&gguf, &path, |_, _| {}).unwrap();
    let storage = Arc::new(Storage {
        bytes: std::fs::read(&path).unwrap(),
        fault: Mutex::new((Fault::None, 0)),
        reads: AtomicU64::new(0),
    });
    let options = StreamOptions { budget: Budget::Bytes(150_000), depth, pin: Pin::default() };
    let engine = Engine::builder_from_reader(Arc::clone(&storage), "tiny.lantern")
        .stream(options, lantern::StorageModel::UNTHROTTLED)
        .build()
        .unwrap();
    (engine, storage)
}

/// 12 greedy tokens of a fresh session, or the error that stopped them; within a minute.
fn generate(engine: &Engine) -> Result<Vec<u32>, Error> {
    let engine = engine.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tokens = || {
            let mut session = engine.session(SessionConfig::default().threads(1).ctx_len(64))?;
            let generation = session.generate("hello there", &GenerateConfig::greedy(12))?;
            Ok(generation.complete()?.tokens)
        };
        let _ = tx.send(tokens());
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("an answer within a minute, not a hang")
}

#[test]
fn failed_reads_fail_that_generation_and_the_next_one_is_right() {
    for depth in [0, 2] {
        let (engine, storage) = streamed_engine(depth);
        let expected = generate(&engine).unwrap();
        assert_eq!(expected.len(), 12);
        // Early, in the middle of the first pass, and a few passes in.
        for after in [0, 3, 40] {
            for fault in [Fault::Fail, Fault::End, Fault::Flip] {
                storage.arm(fault, after);
                let err = generate(&engine).expect_err("a failed read is an error");
                let text = err.to_string();
                assert!(matches!(err, Error::Io(_) | Error::Runtime(_)), "{fault:?}: {err:?}");
                assert!(text.contains("tiny.lantern") || text.contains("checksum"), "{text}");
                storage.arm(Fault::None, 0);
                let again = generate(&engine);
                assert_eq!(
                    again.as_ref().ok(),
                    Some(&expected),
                    "{fault:?} {after} depth {depth}: {again:?}"
                );
            }
        }
    }
}

#[test]
fn short_and_slow_reads_change_nothing_but_time() {
    for depth in [0, 2] {
        let (engine, storage) = streamed_engine(depth);
        let expected = generate(&engine).unwrap();
        for fault in [Fault::Short, Fault::Slow(Duration::from_millis(2))] {
            storage.arm(fault, 0);
            assert_eq!(generate(&engine).unwrap(), expected, "{fault:?} depth {depth}");
        }
    }
}

#[test]
fn a_generation_waiting_on_slow_reads_stops_when_cancelled() {
    let (engine, storage) = streamed_engine(2);
    storage.arm(Fault::Slow(Duration::from_millis(20)), 0);
    let mut session = engine.session(SessionConfig::default().threads(1).ctx_len(64)).unwrap();
    let cancel = session.cancel_handle();
    let start = Instant::now();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        cancel.cancel();
    });
    let done = session.generate("hello", &GenerateConfig::greedy(60)).unwrap().complete();
    stopper.join().unwrap();
    let elapsed = start.elapsed();
    let done = done.unwrap();
    assert!(done.tokens.len() < 60, "{} tokens: not cancelled", done.tokens.len());
    assert!(elapsed < Duration::from_secs(30), "stopped after {elapsed:?}");
}
