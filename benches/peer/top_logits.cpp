// Greedy decoding through llama.cpp's C API, printing each step's top logits in the same
// format as `lantern trace`, so the two can be compared step by step.
// Build: see benches/peer/build.sh (links the peer built by ../shared/peer/llama-ref.sh).
#include "llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL N_PREDICT PROMPT [TOP]\n", argv[0]);
        return 1;
    }
    const int n_predict = atoi(argv[2]);
    const std::string prompt = argv[3];
    const int top = argc > 4 ? atoi(argv[4]) : 3;
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    ggml_backend_load_all();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_prompt = -llama_tokenize(vocab, prompt.c_str(), prompt.size(), nullptr, 0, true, true);
    std::vector<llama_token> tokens(n_prompt);
    llama_tokenize(vocab, prompt.c_str(), prompt.size(), tokens.data(), tokens.size(), true, true);
    // The same context settings as llama-simple.
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_predict - 1;
    cp.n_batch = n_prompt;
    llama_context * ctx = llama_init_from_model(model, cp);
    printf("prompt [");
    for (int i = 0; i < n_prompt; i++) printf(i ? ", %d" : "%d", tokens[i]);
    printf("]\n");
    llama_batch batch = llama_batch_get_one(tokens.data(), tokens.size());
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_token next;
    for (int step = 0; step < n_predict; step++) {
        if (llama_decode(ctx, batch)) return 2;
        const float * logits = llama_get_logits_ith(ctx, -1);
        std::vector<int> ids(n_vocab);
        for (int i = 0; i < n_vocab; i++) ids[i] = i;
        std::partial_sort(ids.begin(), ids.begin() + top, ids.end(), [&](int a, int b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        next = ids[0];
        char piece[256];
        const int n = llama_token_to_piece(vocab, next, piece, sizeof(piece), 0, true);
        printf("%3d %6d %s |", step, next, std::string(piece, n > 0 ? n : 0).c_str());
        for (int i = 0; i < top; i++) printf(" %d:%.4f", ids[i], logits[ids[i]]);
        printf(" | margin %.4f\n", logits[ids[0]] - logits[ids[1]]);
        if (llama_vocab_is_eog(vocab, next)) break;
        batch = llama_batch_get_one(&next, 1);
    }
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
