//! `Sampler` over real logits of the tiny model: greedy is argmax, seeded draws repeat.

use lantern_core::GgmlType;
use lantern_runtime::{Model, Sampler, SamplerConfig};

use lantern_test_support::models::{argmax, load, prompt, state, Tiny};

/// Generates `n` tokens after a fixed prompt, sampling each from the last logits.
fn generate(model: &Model, config: SamplerConfig, n: usize) -> Vec<u32> {
    let mut sampler = Sampler::new(config).unwrap();
    let mut s = state(model, 64, 8, 1);
    let mut history = prompt(6, model.config().vocab_size);
    let mut logits = model.forward(&mut s, &history, history.len() - 1).unwrap().to_vec();
    for _ in 0..n {
        let next = sampler.sample(&logits, &history);
        history.push(next);
        logits = model.forward(&mut s, &[next], 0).unwrap().to_vec();
    }
    history.split_off(6)
}

/// Greedy sampling picks the first largest logit at every position of a prompt.
#[test]
fn greedy_is_the_argmax_of_model_logits() {
    let model = load(&Tiny::of(GgmlType::Q8_0));
    let vocab = model.config().vocab_size;
    let logits =
        model.forward(&mut state(&model, 32, 8, 1), &prompt(20, vocab), 0).unwrap().to_vec();
    let mut greedy = Sampler::new(SamplerConfig::greedy()).unwrap();
    let picks: Vec<usize> =
        logits.chunks(vocab).map(|row| greedy.sample(row, &[]) as usize).collect();
    let expected: Vec<usize> = logits.chunks(vocab).map(argmax).collect();
    assert_eq!(picks, expected);
    assert!(expected.iter().any(|&t| t != expected[0]), "the fixture's argmax should vary");
}

/// The same seed gives the same generated sequence; another seed gives another one.
#[test]
fn seeded_sampling_is_reproducible() {
    let model = load(&Tiny::default());
    let config = |seed| SamplerConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..Default::default()
    };
    let a = generate(&model, config(7), 24);
    assert_eq!(a, generate(&model, config(7), 24));
    assert_ne!(a, generate(&model, config(8), 24));
    // The default chain (top-k, top-p, min-p) is seeded too.
    let d = SamplerConfig { seed: 3, ..Default::default() };
    assert_eq!(generate(&model, d.clone(), 16), generate(&model, d, 16));
}

/// With `top_k = 3` every draw is one of the three largest logits.
#[test]
fn top_k_draws_stay_among_the_largest_logits() {
    let model = load(&Tiny::default());
    let vocab = model.config().vocab_size;
    let logits =
        model.forward(&mut state(&model, 16, 8, 1), &prompt(4, vocab), 3).unwrap().to_vec();
    let mut order: Vec<usize> = (0..vocab).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: 5.0,
        top_k: 3,
        top_p: 1.0,
        min_p: 0.0,
        ..Default::default()
    })
    .unwrap();
    let mut seen = [false; 3];
    for _ in 0..300 {
        let id = sampler.sample(&logits, &[]) as usize;
        let rank = order.iter().position(|&t| t == id).unwrap();
        assert!(rank < 3, "token {id} has rank {rank}");
        seen[rank] = true;
    }
    assert_eq!(seen, [true; 3], "a hot temperature reaches all three");
}
