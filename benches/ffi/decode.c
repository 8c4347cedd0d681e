/* Decode speed through the C ABI, for benches/ffi_overhead.sh: the work `lantern run` does
 * for the same flags (a raw prompt, greedy, N tokens, the text written to stdout as it
 * comes), measured the same way (the library's own timings, lantern_session_stats).
 *   decode MODEL PROMPT N THREADS
 * Prints one line on stderr: "generated G tokens, X tok/s | wall Y tok/s", where wall is the
 * rate between the first and the last piece as this program sees them. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lantern.h"

struct clock {
    struct timespec first, last;
    int seen;
};

static int on_piece(const char *piece, size_t len, void *user_data) {
    struct clock *c = user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, c->seen++ ? &c->last : &c->first);
    return 0;
}

static int check(lantern_status s, const char *what) {
    if (s == LANTERN_OK) return 1;
    fprintf(stderr, "decode: %s: %s: %s\n", what, lantern_status_name(s), lantern_last_error());
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: decode MODEL PROMPT N THREADS\n");
        return 2;
    }
    int ok = 0;
    lantern_engine *engine = NULL;
    lantern_session *session = NULL;
    lantern_session_options so;
    lantern_session_options_default(&so);
    so.threads = (uint32_t)atoi(argv[4]);
    lantern_generate_options gen;
    lantern_generate_options_default(&gen);
    gen.max_tokens = (uint32_t)atoi(argv[3]);
    gen.temperature = 0;
    struct clock c = {0};
    lantern_stats st;
    if (check(lantern_engine_load(argv[1], NULL, &engine), "load") &&
        check(lantern_session_new(engine, &so, &session), "session") &&
        check(lantern_complete(session, argv[2], &gen, on_piece, &c), "complete") &&
        check(lantern_session_stats(session, &st), "stats")) {
        double span = (c.last.tv_sec - c.first.tv_sec) + (c.last.tv_nsec - c.first.tv_nsec) / 1e9;
        putchar('\n');
        fprintf(stderr, "generated %u tokens, %.2f tok/s | wall %.2f tok/s\n", st.generated_tokens,
                st.generate_tokens_per_second, c.seen > 1 && span > 0 ? (c.seen - 1) / span : 0.0);
        ok = 1;
    }
    lantern_session_free(session);
    lantern_engine_free(engine);
    return ok ? 0 : 1;
}
