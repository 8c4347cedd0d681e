//! Generation with the real default model: the reference answer, sampling, sessions.

use lantern::{
    calibration::Criterion, Budget, Engine, Error, FfnThresholds, GenerateConfig, Message,
    SamplerConfig, SessionConfig, Sparsity, StopReason, StorageModel, StreamOptions,
};
use lantern_io::container::{write_container_with, WriteOptions};

use crate::testutil::model_path;

const PARIS_PROMPT: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

fn engine() -> Engine {
    Engine::load(model_path()).expect("load the default model")
}

fn session(engine: &Engine) -> lantern::Session {
    engine.session(SessionConfig::default().threads(2).ctx_len(512)).expect("open a session")
}

#[test]
fn greedy_answer_is_paris_and_stops_at_end_of_turn() {
    let engine = engine();
    let mut session = session(&engine);
    let done =
        session.generate(PARIS_PROMPT, &GenerateConfig::greedy(64)).unwrap().complete().unwrap();
    assert_eq!(done.text, "The capital of France is Paris.");
    // The ids llama.cpp's llama-simple produces on the same file.
    assert_eq!(done.tokens, [504, 3575, 282, 4649, 314, 7042, 30]);
    assert_eq!(done.stop_reason, StopReason::EndOfTurn);
    // The conversation holds the prompt, the answer and the end-of-turn token.
    assert_eq!(session.tokens().len(), 16 + 7 + 1);
    assert_eq!(session.tokens().last(), Some(&2));
}

/// The default model converted into a container in `dir`, and its weight bytes.
fn default_model_as_container(dir: &tempfile::TempDir) -> (std::path::PathBuf, u64) {
    let path = dir.path().join("model.lantern");
    let source = lantern_io::ModelSource::read(model_path()).unwrap();
    let gguf = lantern_io::GgufModel::open(source).unwrap();
    lantern_io::container::write_container(&gguf, &path, |_, _| {}).unwrap();
    (path, gguf.bytes_by_type().iter().map(|&(_, _, bytes)| bytes).sum())
}

/// 32 greedy tokens of each engine, continuing the same prompt.
fn greedy_ids(engines: [&Engine; 2]) -> [Vec<u32>; 2] {
    engines.map(|engine| {
        let mut session = session(engine);
        let prompt = "The history of the Roman Empire";
        session.generate(prompt, &GenerateConfig::greedy(32)).unwrap().complete().unwrap().tokens
    })
}

#[test]
fn a_lantern_container_gives_the_same_tokens_as_its_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = default_model_as_container(&dir);
    let container = Engine::load(&path).expect("load the container");
    let [resident, from_container] = greedy_ids([&engine(), &container]);
    assert_eq!(resident, from_container);
    assert_eq!(resident.len(), 32);
}

#[test]
fn streaming_within_a_quarter_of_the_weights_gives_the_resident_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (path, weight_bytes) = default_model_as_container(&dir);
    let options = StreamOptions { budget: Budget::OfWeights(0.25), ..StreamOptions::default() };
    let streamed = Engine::builder(&path)
        .stream(options, StorageModel::UNTHROTTLED)
        .build()
        .expect("stream the container");
    let [resident, from_stream] = greedy_ids([&engine(), &streamed]);
    assert_eq!(resident, from_stream);
    let stats = streamed.stream_stats().unwrap();
    assert!(stats.peak_resident_bytes <= weight_bytes / 4, "{stats:?} of {weight_bytes}");
    // Every pass reads every block and the head: nearly all of the weights.
    assert!(stats.bytes_read >= 32 * weight_bytes * 9 / 10, "{stats:?}");
}

#[test]
fn thresholds_stored_in_a_container_are_the_sessions_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.lantern");
    let gguf = lantern_io::GgufModel::open(lantern_io::ModelSource::read(model_path()).unwrap());
    let thresholds = FfnThresholds::per_layer(Criterion::GateUp, vec![0.01; 30]).unwrap();
    let options = WriteOptions { metadata: thresholds.to_metadata(), ..WriteOptions::default() };
    write_container_with(&gguf.unwrap(), &path, options, |_, _| {}).unwrap();
    let engine = Engine::load(&path).unwrap();
    let config = SessionConfig::default().threads(2).ctx_len(64);
    let mut from_model = engine.session(config.clone()).unwrap();
    from_model.eval(&[1, 504, 3458], 2).unwrap();
    let share = from_model.ffn_zeroed_share().expect("the stored thresholds apply");
    assert!(share > 0.0 && share < 1.0, "{share}");
    let mut dense = engine.session(config.sparsity(Sparsity::Dense)).unwrap();
    dense.eval(&[1, 504, 3458], 2).unwrap();
    assert_eq!(dense.ffn_zeroed_share(), None);
}

/// Greedy ids from llama.cpp on the same file (`benches/peer/top_logits.cpp`, the settings of
/// `llama-simple`, built by `benches/peer/build.sh`): lantern follows the peer's arithmetic,
/// so 64 tokens agree exactly where any rounding difference would flip a near-tie.
#[test]
fn greedy_completions_match_llama_cpp_token_for_token() {
    let expected: [(&str, [u32; 64]); 2] = [
        (
            "The history of the Roman Empire",
            [
                314, 253, 1977, 282, 1149, 28, 5993, 28, 284, 260, 29092, 13392, 282, 11022, 30,
                657, 2585, 351, 260, 4095, 282, 7268, 28, 253, 2240, 338, 761, 719, 7957, 411, 260,
                29092, 13392, 282, 1149, 284, 260, 29092, 13392, 282, 11022, 30, 378, 4469, 7057,
                436, 253, 1406, 282, 260, 29092, 13392, 282, 11022, 28, 284, 357, 4851, 288, 325,
                253, 1406, 282, 260,
            ],
        ),
        (
            "def fibonacci(n):",
            [
                472, 585, 304, 1758, 216, 32, 42, 448, 1003, 216, 33, 472, 1003, 2822, 24, 38572,
                46477, 24, 94, 731, 216, 33, 25, 1232, 216, 33, 28, 304, 25, 198, 198, 19, 4246,
                260, 1517, 198, 3272, 24, 38572, 46477, 24, 33, 32, 1292, 216, 907, 21367, 42, 216,
                35, 35, 35, 198, 3725, 198, 198, 788, 451, 2909, 28, 392, 722, 253, 35881,
            ],
        ),
    ];
    let engine = engine();
    for (prompt, ids) in expected {
        let mut session = session(&engine);
        let done =
            session.generate(prompt, &GenerateConfig::greedy(64)).unwrap().complete().unwrap();
        assert_eq!(done.tokens, ids, "{prompt:?}");
    }
}

#[test]
fn chat_renders_the_template_and_replies_as_llama_cpp_does() {
    let engine = engine();
    let mut session = session(&engine);
    let question = [Message::user("What is the capital of France?")];
    let done = session.chat(&question, &GenerateConfig::greedy(7)).unwrap().complete().unwrap();
    // The prompt llama.cpp tokenizes from the same rendered template (default system prompt).
    let prompt = [
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411,
        407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1,
        520, 9531, 198,
    ];
    assert_eq!(&session.tokens()[..prompt.len()], prompt);
    // With the system prompt this small model answers oddly; llama.cpp gives the same tokens.
    assert_eq!(done.tokens, [60, 23, 39614, 1141, 552, 28, 2618]);
    assert_eq!(done.text, "L'Étoile, la");
}

#[test]
fn a_second_chat_turn_reuses_the_cache_and_matches_a_fresh_session() {
    let engine = engine();
    let config = GenerateConfig::greedy(24);
    let mut messages = vec![Message::user("Name a color.")];
    let mut session = session(&engine);
    let first = session.chat(&messages, &config).unwrap().complete().unwrap();
    messages.push(Message::assistant(first.text));
    messages.push(Message::user("Name another one."));
    let second = session.chat(&messages, &config).unwrap().complete().unwrap();
    // Only the new turn was computed ...
    assert!(second.timings.prompt_tokens < 20, "{:?}", second.timings);
    // ... and the answer is what a fresh session computes from scratch.
    let fresh = session_fresh_reply(&engine, &messages, &config);
    assert_eq!(second.tokens, fresh);
}

#[test]
fn chat_with_gives_the_template_its_variables() {
    let template =
        "{% if enable_thinking is defined and not enable_thinking %}<|im_start|>system\n\
                    Answer at once.<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>\
                    {{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n";
    let engine = Engine::builder(model_path()).chat_template(template).build().unwrap();
    let question = [Message::user("What is the capital of France?")];
    let config = GenerateConfig::greedy(1);
    let paris = engine.tokenizer().encode(PARIS_PROMPT, true).unwrap();
    let mut session = session(&engine);
    session.chat(&question, &config).unwrap().complete().unwrap();
    assert_eq!(session.tokens()[..paris.len()], paris[..]);
    let no_think = [("enable_thinking", lantern::TemplateValue::from(false))];
    session.chat_with(&question, &no_think, &config).unwrap().complete().unwrap();
    let system = "<|im_start|>system\nAnswer at once.<|im_end|>\n";
    let system = engine.tokenizer().encode(system, true).unwrap();
    assert_eq!(session.tokens()[..system.len()], system[..]);
    assert_eq!(session.tokens()[system.len()..][..paris.len()], paris[..]);
}

fn session_fresh_reply(engine: &Engine, messages: &[Message], config: &GenerateConfig) -> Vec<u32> {
    let mut session = session(engine);
    session.chat(messages, config).unwrap().complete().unwrap().tokens
}

#[test]
fn sampling_is_deterministic_for_a_seed() {
    let engine = engine();
    let sample = |seed| {
        let sampler = SamplerConfig { temperature: 1.0, seed, ..SamplerConfig::default() };
        let config = GenerateConfig::default().max_tokens(32).sampler(sampler);
        let mut session = session(&engine);
        session.generate("Once upon a time", &config).unwrap().complete().unwrap().tokens
    };
    let a = sample(11);
    assert_eq!(a, sample(11));
    assert_ne!(a, sample(12));
}

#[test]
fn max_tokens_and_stop_strings_end_the_reply() {
    let engine = engine();
    let mut session = session(&engine);
    let done = session
        .generate("One, two, three,", &GenerateConfig::greedy(5))
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!((done.tokens.len(), done.stop_reason), (5, StopReason::MaxTokens));

    session.reset();
    let config = GenerateConfig::greedy(64).stop("Paris");
    let done = session.generate(PARIS_PROMPT, &config).unwrap().complete().unwrap();
    assert_eq!(done.text, "The capital of France is ");
    assert_eq!(done.stop_reason, StopReason::StopString);
}

#[test]
fn cancelling_stops_the_generation() {
    let engine = engine();
    let mut session = session(&engine);
    let cancel = session.cancel_handle();
    let mut generation =
        session.generate("Count to one hundred:", &GenerateConfig::greedy(100)).unwrap();
    assert!(generation.next().is_some());
    cancel.cancel();
    assert!(generation.by_ref().count() <= 1);
    assert_eq!(generation.stop_reason(), Some(StopReason::Cancelled));
}

#[test]
fn a_prompt_longer_than_the_context_is_an_error_not_a_panic() {
    let engine = engine();
    let mut session = engine.session(SessionConfig::default().threads(1).ctx_len(16)).unwrap();
    let long = "word ".repeat(40);
    match session.generate(&long, &GenerateConfig::greedy(4)) {
        Err(Error::PromptTooLong { tokens, ctx_len: 16 }) => assert!(tokens > 16),
        other => panic!("expected PromptTooLong, got {:?}", other.map(|_| ())),
    }
    // The session is still usable.
    assert!(session.generate("Hi", &GenerateConfig::greedy(2)).is_ok());
}

#[test]
fn a_full_context_ends_the_reply_without_an_error() {
    let engine = engine();
    let mut session = engine.session(SessionConfig::default().threads(1).ctx_len(24)).unwrap();
    let done = session.generate(PARIS_PROMPT, &GenerateConfig::greedy(64).stop("unused")).unwrap();
    let done = done.complete().unwrap();
    assert!(matches!(done.stop_reason, StopReason::ContextFull | StopReason::EndOfTurn));
    assert!(session.tokens().len() <= 24 + 1);
}

#[test]
fn one_engine_serves_sessions_on_several_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
    let engine = engine();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let engine = engine.clone();
                scope.spawn(move || {
                    let mut session = engine.session(SessionConfig::default().threads(1)).unwrap();
                    let config = GenerateConfig::greedy(16);
                    session.generate(PARIS_PROMPT, &config).unwrap().complete().unwrap().text
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers, ["The capital of France is Paris.", "The capital of France is Paris."]);
}

#[test]
fn an_engine_runs_a_model_file_with_tensors_replaced() {
    use std::sync::Arc;

    use lantern_core::GgmlType;
    use lantern_io::{open_model_file, ModelFile, ModelSource, Replaced};

    let source = ModelSource::read(model_path()).unwrap();
    let base: Arc<dyn ModelFile> = Arc::from(open_model_file(source).unwrap());
    let name = "blk.0.ffn_down.weight";
    let q8 = base.tensor(name).unwrap().requantize(GgmlType::Q8_0).unwrap();
    let replaced = Replaced::new(base.clone(), [(name.to_owned(), q8.clone())]).unwrap();
    let engine = Engine::builder_from_file(Box::new(replaced)).build().unwrap();
    // One Q4_1 matrix became Q8_0: every token reads the difference more.
    let grown = q8.bytes().len() - base.tensor(name).unwrap().bytes().len();
    assert_eq!(engine.info().bytes_per_token, self::engine().info().bytes_per_token + grown);
    let mut session = session(&engine);
    let done =
        session.generate(PARIS_PROMPT, &GenerateConfig::greedy(16)).unwrap().complete().unwrap();
    assert_eq!(done.text, "The capital of France is Paris.");

    // Smaller is allowed (a pruned matrix), larger is not.
    let wrong = base.tensor(name).unwrap();
    let err = Replaced::new(base.clone(), [("blk.0.attn_q.weight".to_owned(), wrong)]);
    let err = err.unwrap_err().to_string();
    assert!(err.contains("dimensions [1536, 576], not at most [576, 576]"), "{err}");
    let err = Replaced::new(base, [("blk.99.ffn_down.weight".to_owned(), q8)]).unwrap_err();
    assert!(err.to_string().contains("no tensor of that name"), "{err}");
}
