//! Soak: one engine shared by 8 threads, each with a session of its own, 200 generations in
//! all with pseudo-random sampling settings, lengths, cancellations and resets. Every
//! generation gives the tokens a single thread gives for the same session history, and the
//! process's resident memory stays flat once warm. Its own test binary, so that no other test
//! moves the RSS it reads.
//!
//! `LANTERN_SOAK_PER_THREAD` sets the generations per thread (25), for a shorter run under
//! valgrind (docs/RELIABILITY.md).

use lantern::{Engine, GenerateConfig, SamplerConfig, Session, SessionConfig};

#[allow(dead_code)] // the soak uses `model_path` only
#[path = "testutil.rs"]
mod testutil;

const THREADS: usize = 8;

/// Generations per thread in a round.
fn per_thread() -> usize {
    let set = std::env::var("LANTERN_SOAK_PER_THREAD").ok();
    set.map_or(25, |n| n.parse().expect("LANTERN_SOAK_PER_THREAD is a count"))
}
const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Write a haiku about the sea.",
    "List three prime numbers:",
    "Once upon a time",
];

/// One generation's settings.
#[derive(Clone, Debug)]
struct Job {
    prompt: &'static str,
    sampler: SamplerConfig,
    max_tokens: usize,
    /// Cancel from the session's handle after this many tokens.
    cancel_after: Option<usize>,
    /// Reset the session first.
    reset: bool,
}

/// Thread `t`'s jobs, from a fixed linear congruential sequence.
fn jobs(t: usize) -> Vec<Job> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ t as u64;
    let mut next = move |n: u64| {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    (0..per_thread())
        .map(|_| Job {
            prompt: PROMPTS[next(PROMPTS.len() as u64) as usize],
            sampler: SamplerConfig {
                temperature: [0.0, 0.7, 1.2][next(3) as usize],
                top_k: next(50) as usize,
                seed: next(1000),
                ..SamplerConfig::default()
            },
            max_tokens: 1 + next(12) as usize,
            cancel_after: (next(4) == 0).then(|| 1 + next(4) as usize),
            reset: next(5) == 0,
        })
        .collect()
}

/// The tokens of `job` in `session`.
fn run(session: &mut Session, job: &Job) -> Vec<u32> {
    if job.reset {
        session.reset();
    }
    let cancel = session.cancel_handle();
    let config = GenerateConfig::default().max_tokens(job.max_tokens).sampler(job.sampler.clone());
    let mut tokens = Vec::new();
    for token in session.generate(job.prompt, &config).expect("generate") {
        tokens.extend(token.expect("token").id);
        if Some(tokens.len()) == job.cancel_after {
            cancel.cancel();
        }
    }
    tokens
}

/// Each thread's jobs run in a session of its own, on `threads` threads at once.
fn run_all(engine: &Engine, threads: usize) -> Vec<Vec<Vec<u32>>> {
    let open = || engine.session(SessionConfig::default().threads(1).ctx_len(256)).unwrap();
    let lists: Vec<Vec<Job>> = (0..THREADS).map(jobs).collect();
    let run_list = |list: &Vec<Job>| {
        let mut session = open();
        list.iter().map(|j| run(&mut session, j)).collect::<Vec<_>>()
    };
    if threads == 1 {
        return lists.iter().map(run_list).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = lists.iter().map(|list| scope.spawn(|| run_list(list))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Resident memory of this process, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    Some(kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

#[test]
fn eight_threads_of_sessions_give_the_single_thread_tokens_in_flat_memory() {
    let engine = Engine::load(testutil::model_path()).unwrap();
    let expected = run_all(&engine, 1);
    // Warm-up: one concurrent round brings every session's buffers and the allocator's
    // arenas to their size.
    assert_eq!(run_all(&engine, THREADS), expected);
    let warm = rss_bytes();
    let got = run_all(&engine, THREADS);
    let end = rss_bytes();
    for (t, (got, want)) in got.iter().zip(&expected).enumerate() {
        for (j, (got, want)) in got.iter().zip(want).enumerate() {
            assert_eq!(got, want, "thread {t}, job {j}: {:?}", jobs(t)[j]);
        }
    }
    let cancelled = (0..THREADS).flat_map(jobs).filter(|j| j.cancel_after.is_some()).count();
    assert!(cancelled > THREADS * per_thread() / 10, "{cancelled} cancellations");
    if let (Some(warm), Some(end)) = (warm, end) {
        // Flat: a 200-generation round adds at most 5% (allocator noise), not a leak.
        assert!(end <= warm + warm / 20, "RSS grew from {warm} to {end} bytes");
        let round = THREADS * per_thread();
        eprintln!("RSS after warm-up {warm} bytes, after {round} more generations {end}");
    }
}
