//! Decoding a token allocates nothing once the state has run its first batch: the KV cache,
//! the scratch buffers and the worker pool are all sized up front or by the first call.
//!
//! The count is per thread (the test thread does all the work at one thread and the serial
//! part at two), so tests running beside this one in other threads do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lantern_core::GgmlType;

use lantern_test_support::models::{load, prompt, state, Tiny};

/// The system allocator, counting the calling thread's allocations while `COUNTING` is set.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are const-initialized
// thread-locals, so touching them neither allocates nor recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.get() {
            ALLOCATIONS.set(ALLOCATIONS.get() + 1);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.get() {
            ALLOCATIONS.set(ALLOCATIONS.get() + 1);
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.set(0);
    COUNTING.set(true);
    f();
    COUNTING.set(false);
    ALLOCATIONS.get()
}

#[test]
fn decoding_a_token_allocates_nothing() {
    // The counter sees allocations at all.
    assert_eq!(allocations(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(16)))), 1);
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0] {
        let model = load(&Tiny::of(ty));
        let tokens = prompt(24, model.config().vocab_size);
        for threads in [1, 2] {
            let mut s = state(&model, 64, 16, threads);
            model.forward(&mut s, &tokens[..8], 0).unwrap();
            model.forward(&mut s, &tokens[8..9], 0).unwrap();
            let n = allocations(|| {
                for &t in &tokens[9..] {
                    model.forward(&mut s, &[t], 0).unwrap();
                }
            });
            assert_eq!(n, 0, "{ty:?}, {threads} threads: {n} allocations in 15 decode steps");
        }
    }
}
