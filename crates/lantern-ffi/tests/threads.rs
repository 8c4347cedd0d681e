//! Threads: one engine shared by sessions on several threads, cancelling from another
//! thread, and a session used by two threads at once.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::mpsc;

use lantern_ffi::lantern_status::*;
use lantern_ffi::lantern_stop_reason::*;
use lantern_ffi::*;

use crate::testutil::*;

/// A handle that may cross threads, as the header allows for engines (any thread) and
/// sessions (one thread at a time, and `lantern_session_cancel` from any).
struct Shared<T>(*mut T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Shared<T> {}

// SAFETY: the C API makes these handles usable from other threads; see above.
unsafe impl<T> Send for Shared<T> {}

#[test]
fn four_threads_sharing_an_engine_give_the_tokens_of_one() {
    let engine = Shared(default_engine());
    let prompt = "The history of the Roman Empire";
    let one = {
        let session = session(engine.0, 256);
        let text = complete_text(session, prompt, &greedy(16));
        lantern_session_free(session);
        text
    };
    assert!(!one.is_empty());
    let texts: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(move || {
                    let engine = engine;
                    let options = lantern_session_options { threads: 1, ctx_len: 256 };
                    let mut session = ptr::null_mut();
                    let status = unsafe { lantern_session_new(engine.0, &options, &mut session) };
                    assert_eq!(status, LANTERN_OK, "{}", last_error());
                    let text = complete_text(session, prompt, &greedy(16));
                    lantern_session_free(session);
                    text
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(texts.iter().all(|t| *t == one), "{texts:?} vs {one:?}");
    lantern_engine_free(engine.0);
}

/// What the generating thread's callback shares with the test: it reports the first
/// piece, then waits for the test to say go on.
struct Rendezvous {
    started: mpsc::Sender<()>,
    go_on: mpsc::Receiver<()>,
    pieces: usize,
}

unsafe extern "C" fn wait_after_first_piece(
    _piece: *const c_char,
    _len: usize,
    user_data: *mut c_void,
) -> c_int {
    let rendezvous = unsafe { &mut *user_data.cast::<Rendezvous>() };
    rendezvous.pieces += 1;
    if rendezvous.pieces == 1 {
        rendezvous.started.send(()).unwrap();
        rendezvous.go_on.recv().unwrap();
    }
    0
}

#[test]
fn cancel_from_another_thread_stops_a_long_generation_and_a_second_caller_is_busy() {
    let engine = default_engine();
    let session = Shared(session(engine, 2048));
    let (started_tx, started) = mpsc::channel();
    let (go_on, go_on_rx) = mpsc::channel();
    let generating = std::thread::spawn(move || {
        let session = session;
        let mut rendezvous = Rendezvous { started: started_tx, go_on: go_on_rx, pieces: 0 };
        let prompt = c("<|im_start|>user\nWrite a very long story about the Roman Empire.<|im_end|>\n<|im_start|>assistant\n");
        let options = greedy(1500);
        let user_data = ptr::from_mut(&mut rendezvous).cast();
        let status = unsafe {
            lantern_complete(
                session.0,
                prompt.as_ptr(),
                &options,
                Some(wait_after_first_piece),
                user_data,
            )
        };
        (status, rendezvous.pieces)
    });
    if started.recv().is_err() {
        panic!("the generation ended before its first piece: {:?}", generating.join());
    }
    // The generation holds the session: another thread's call is refused, not queued.
    let mut pieces = Pieces::default();
    let busy = complete(session.0, "Hello", &greedy(4), &mut pieces);
    assert_fails(busy, LANTERN_BUSY, "session");
    assert_fails(lantern_session_reset(session.0), LANTERN_BUSY, "another thread");
    assert_eq!(lantern_session_cancel(session.0), LANTERN_OK);
    go_on.send(()).unwrap();
    let (status, pieces) = generating.join().unwrap();
    assert_eq!(status, LANTERN_OK);
    let cancelled = stats(session.0);
    assert_eq!(cancelled.stop_reason, LANTERN_STOP_CANCELLED);
    assert!(cancelled.generated_tokens <= 2 && pieces <= 2, "{cancelled:?}, {pieces} pieces");
    // A cancel with no generation running has no effect on the next one.
    assert_eq!(lantern_session_cancel(session.0), LANTERN_OK);
    assert_eq!(lantern_session_reset(session.0), LANTERN_OK);
    complete_text(session.0, PARIS_PROMPT, &greedy(64));
    assert_eq!(stats(session.0).stop_reason, LANTERN_STOP_END_OF_TEXT);
    lantern_session_free(session.0);
    lantern_engine_free(engine);
}
