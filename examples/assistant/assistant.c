/* assistant: a small on-device chat assistant over lantern's C ABI (include/lantern.h).
 *
 *   assistant -m MODEL [--system TEXT] [--budget SIZE] [--storage S] [--depth N]
 *             [--threads N] [--ctx N] [--temp T] [--seed N] [--max-tokens N] [--greedy]
 *             [--stats] [-p PROMPT]
 *
 * Reads user lines from stdin until end of input; `/reset` forgets the conversation.
 * Ctrl-C stops the reply being written; at the prompt, a second Ctrl-C in a row leaves.
 * With -p it answers one question, prints only the reply on stdout and exits.
 * When the conversation no longer fits the context, the oldest turns are left out (the
 * system prompt is kept) and the reply is asked for again. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lantern.h"

/* ---- Ctrl-C ------------------------------------------------------------------------------
 * The handler only does what is async-signal-safe: it sets a flag and writes a byte to a
 * pipe. A watcher thread wakes on that byte and calls lantern_session_cancel (documented
 * thread-safe, not signal-safe); the piece callback also checks the flag, so a reply stops
 * even if the interrupt lands just before the generation starts. */
static volatile sig_atomic_t g_interrupted;
static int g_wake[2] = {-1, -1};

static void on_sigint(int sig) {
    (void)sig;
    int saved = errno;
    g_interrupted = 1;
    char byte = 'i';
    ssize_t ignored = write(g_wake[1], &byte, 1);
    (void)ignored;
    errno = saved;
}

/* During a reply the handler restarts interrupted system calls, so that a read inside the
 * library on this thread is not cut short by EINTR; at the prompt it does not, so that
 * Ctrl-C interrupts the blocking read of stdin. (Linux delivers a process-directed signal
 * to the main thread when it does not block it, as here; the watcher and the library's
 * threads would only ever see the flag.) */
static int install_sigint(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL);
}

struct watcher {
    lantern_session *session;
    atomic_int replying; /* 1 while a generation runs on the main thread */
};

static void *watch_interrupts(void *arg) {
    struct watcher *w = arg;
    char byte;
    for (;;) {
        ssize_t n = read(g_wake[0], &byte, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || byte == 'q') return NULL; /* 'q': the main thread is leaving */
        if (atomic_load(&w->replying)) {
            lantern_status s = lantern_session_cancel(w->session);
            if (s != LANTERN_OK)
                fprintf(stderr, "assistant: cancel: %s: %s\n", lantern_status_name(s),
                        lantern_last_error());
        }
    }
}

/* ---- small helpers ------------------------------------------------------------------------ */
static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "assistant: out of memory\n");
        exit(1);
    }
    return q;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static void report(const char *what, lantern_status s) {
    fprintf(stderr, "assistant: %s: %s: %s\n", what, lantern_status_name(s), lantern_last_error());
}

/* The conversation: role/content pairs this program owns (strdup'd). */
struct history {
    lantern_message *msgs;
    size_t len, cap;
    size_t keep; /* leading messages never left out (the system prompt) */
};

static void history_push(struct history *h, const char *role, const char *content) {
    if (h->len == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 8;
        h->msgs = xrealloc(h->msgs, h->cap * sizeof *h->msgs);
    }
    h->msgs[h->len].role = xstrdup(role);
    h->msgs[h->len].content = xstrdup(content);
    h->len++;
}

static void history_drop(struct history *h, size_t from, size_t count) {
    for (size_t i = from; i < from + count; i++) {
        free((char *)h->msgs[i].role);
        free((char *)h->msgs[i].content);
    }
    memmove(h->msgs + from, h->msgs + from + count, (h->len - from - count) * sizeof *h->msgs);
    h->len -= count;
}

/* Leaves out the oldest turn (a user message and its reply) after the kept messages, as long
 * as the newest message keeps company; returns 0 when nothing can go. */
static int history_drop_oldest_turn(struct history *h) {
    if (h->len <= h->keep + 1) return 0;
    size_t turn = h->len - h->keep - 1;
    history_drop(h, h->keep, turn < 2 ? turn : 2);
    return 1;
}

/* The reply being streamed: echoed to stdout and kept for the history. */
struct reply {
    char *text;
    size_t len, cap;
};

static int on_piece(const char *piece, size_t len, void *user_data) {
    struct reply *r = user_data;
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + len + 1) cap *= 2;
        char *text = realloc(r->text, cap);
        if (!text) return 1; /* stop the reply rather than lose its text */
        r->text = text;
        r->cap = cap;
    }
    memcpy(r->text + r->len, piece, len);
    r->len += len;
    r->text[r->len] = '\0';
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return g_interrupted ? 1 : 0;
}

static const char *stop_reason_name(lantern_stop_reason r) {
    switch (r) {
    case LANTERN_STOP_NONE: return "none";
    case LANTERN_STOP_END_OF_TEXT: return "end of text";
    case LANTERN_STOP_MAX_TOKENS: return "max tokens";
    case LANTERN_STOP_STOP_STRING: return "stop string";
    case LANTERN_STOP_CANCELLED: return "cancelled";
    case LANTERN_STOP_CONTEXT_FULL: return "context full";
    }
    return "?";
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: assistant -m MODEL [--system TEXT] [--budget SIZE] [--storage S] [--depth N]\n"
            "                 [--threads N] [--ctx N] [--temp T] [--seed N] [--max-tokens N]\n"
            "                 [--greedy] [--stats] [-p PROMPT]\n"
            "Chats on stdin (one message a line; /reset starts over). Ctrl-C stops a reply;\n"
            "twice at the prompt, it leaves. -p answers one prompt and prints only the reply.\n");
}

static int parse_u32(const char *flag, const char *text, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end || v > UINT32_MAX || text[0] == '-') {
        fprintf(stderr, "assistant: %s wants a whole number, not '%s'\n", flag, text);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

struct args {
    const char *model, *system, *budget, *storage, *prompt;
    uint32_t depth, threads, ctx, max_tokens;
    float temp;
    uint64_t seed;
    int stats;
};

static int parse_args(int argc, char **argv, struct args *a) {
    a->temp = 0.8f; /* as `lantern chat`; --greedy or --temp 0 for greedy */
    a->max_tokens = 512;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(f, "--greedy")) { a->temp = 0; continue; }
        if (!strcmp(f, "--stats")) { a->stats = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "assistant: unknown option or missing value: %s\n", f);
            return 0;
        }
        const char *v = argv[++i];
        uint32_t n;
        if (!strcmp(f, "-m") || !strcmp(f, "--model")) a->model = v;
        else if (!strcmp(f, "--system")) a->system = v;
        else if (!strcmp(f, "--budget")) a->budget = v;
        else if (!strcmp(f, "--storage")) a->storage = v;
        else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) a->prompt = v;
        else if (!strcmp(f, "--depth")) { if (!parse_u32(f, v, &a->depth)) return 0; }
        else if (!strcmp(f, "-t") || !strcmp(f, "--threads")) { if (!parse_u32(f, v, &a->threads)) return 0; }
        else if (!strcmp(f, "-c") || !strcmp(f, "--ctx")) { if (!parse_u32(f, v, &a->ctx)) return 0; }
        else if (!strcmp(f, "-n") || !strcmp(f, "--max-tokens")) { if (!parse_u32(f, v, &a->max_tokens)) return 0; }
        else if (!strcmp(f, "--seed")) {
            if (!parse_u32(f, v, &n)) return 0;
            a->seed = n;
        } else if (!strcmp(f, "--temp")) {
            char *end;
            a->temp = strtof(v, &end);
            if (end == v || *end || !(a->temp >= 0)) {
                fprintf(stderr, "assistant: --temp wants a number >= 0, not '%s'\n", v);
                return 0;
            }
        } else {
            fprintf(stderr, "assistant: unknown option: %s\n", f);
            return 0;
        }
    }
    if (!a->model) {
        fprintf(stderr, "assistant: -m MODEL is required\n");
        return 0;
    }
    return 1;
}

static void print_stats(const lantern_session *session) {
    lantern_stats st;
    lantern_status s = lantern_session_stats(session, &st);
    if (s != LANTERN_OK) {
        report("stats", s);
        return;
    }
    fprintf(stderr,
            "[load %.0f ms | prompt %u tok, %.1f tok/s | reply %u tok, %.1f tok/s | stop: %s | "
            "context %u/%u | streamed %.1f MiB | peak RSS %.1f MiB]\n",
            st.load_seconds * 1e3, st.prompt_tokens, st.prompt_tokens_per_second,
            st.generated_tokens, st.generate_tokens_per_second, stop_reason_name(st.stop_reason),
            st.context_used, st.context_size, st.bytes_streamed / 1048576.0,
            st.peak_resident_bytes / 1048576.0);
}

/* One reply to the conversation in `h` (whose last message is the user's). The reply is
 * appended to the history on success; on failure the user's message is taken back.
 * Returns 1 on success, 0 on failure. */
static int answer(lantern_session *session, struct watcher *w, struct history *h,
                  const lantern_generate_options *gen, int quiet, int stats) {
    struct reply r = {0};
    int ok = 0, left_out = 0;
    g_interrupted = 0;
    atomic_store(&w->replying, 1);
    if (install_sigint(1) != 0) perror("assistant: sigaction");
    for (;;) {
        r.len = 0;
        if (r.text) r.text[0] = '\0';
        lantern_status s = lantern_chat(session, h->msgs, h->len, gen, on_piece, &r);
        if (s == LANTERN_PROMPT_TOO_LONG && history_drop_oldest_turn(h)) {
            left_out++;
            continue;
        }
        if (s != LANTERN_OK) {
            if (r.len) putchar('\n');
            report("reply", s);
            history_drop(h, h->len - 1, 1);
            break;
        }
        lantern_stats st;
        s = lantern_session_stats(session, &st);
        if (s != LANTERN_OK) {
            putchar('\n');
            report("stats", s);
            history_drop(h, h->len - 1, 1);
            break;
        }
        /* The reply ran into the end of the context: ask again with less history. */
        if (st.stop_reason == LANTERN_STOP_CONTEXT_FULL && history_drop_oldest_turn(h)) {
            left_out++;
            if (r.len) putchar('\n'); /* the abandoned attempt keeps its own line */
            fflush(stdout);
            if (!quiet) fprintf(stderr, "(the context filled up; asking again with less history)\n");
            continue;
        }
        putchar('\n');
        fflush(stdout);
        if (st.stop_reason == LANTERN_STOP_CANCELLED && !quiet) fprintf(stderr, "(reply stopped)\n");
        if (st.stop_reason == LANTERN_STOP_CONTEXT_FULL && !quiet)
            fprintf(stderr, "(the reply was cut short: the context is full)\n");
        if (stats) print_stats(session);
        history_push(h, "assistant", r.text ? r.text : "");
        ok = 1;
        break;
    }
    atomic_store(&w->replying, 0);
    if (install_sigint(0) != 0) perror("assistant: sigaction");
    if (left_out == 1 && !quiet) fprintf(stderr, "(the context was full: the oldest turn left out)\n");
    if (left_out > 1 && !quiet)
        fprintf(stderr, "(the context was full: the oldest %d turns left out)\n", left_out);
    free(r.text);
    return ok;
}

int main(int argc, char **argv) {
    struct args a = {0};
    if (!parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    if (lantern_abi_version() != LANTERN_ABI_VERSION) {
        fprintf(stderr, "assistant: built for lantern ABI %d, the library has %u\n",
                LANTERN_ABI_VERSION, lantern_abi_version());
        return 1;
    }

    int status = 1;
    lantern_engine *engine = NULL;
    lantern_session *session = NULL;
    struct history h = {0};
    struct watcher w = {0};
    pthread_t watcher_thread;
    int watching = 0;
    char *line = NULL;
    size_t line_cap = 0;

    lantern_engine_options eo;
    lantern_engine_options_default(&eo);
    eo.budget = a.budget;
    eo.storage = a.storage;
    eo.depth = a.depth;
    lantern_status s = lantern_engine_load(a.model, &eo, &engine);
    if (s != LANTERN_OK) {
        report("loading the model", s);
        goto done;
    }
    lantern_session_options so;
    lantern_session_options_default(&so);
    so.threads = a.threads;
    so.ctx_len = a.ctx;
    s = lantern_session_new(engine, &so, &session);
    if (s != LANTERN_OK) {
        report("opening a session", s);
        goto done;
    }
    lantern_generate_options gen;
    lantern_generate_options_default(&gen);
    gen.max_tokens = a.max_tokens;
    gen.temperature = a.temp;
    gen.seed = a.seed;
    if (a.temp > 0) { /* the CLI's sampling defaults; greedy ignores them */
        gen.top_k = 40;
        gen.top_p = 0.95f;
        gen.min_p = 0.05f;
    }

    if (a.system) {
        history_push(&h, "system", a.system);
        h.keep = 1;
    }

    /* The handler must never block on a full pipe. */
    if (pipe(g_wake) != 0 || fcntl(g_wake[1], F_SETFL, O_NONBLOCK) != 0) {
        perror("assistant: pipe");
        goto done;
    }
    w.session = session;
    if (pthread_create(&watcher_thread, NULL, watch_interrupts, &w) != 0) {
        fprintf(stderr, "assistant: cannot start the interrupt watcher\n");
        goto done;
    }
    watching = 1;
    if (install_sigint(0) != 0) {
        perror("assistant: sigaction");
        goto done;
    }

    if (a.prompt) {
        history_push(&h, "user", a.prompt);
        status = answer(session, &w, &h, &gen, 1, a.stats) ? 0 : 1;
        goto done;
    }

    int tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "assistant: lantern %s. /reset starts over; Ctrl-C stops a reply, "
                             "twice at the prompt leaves.\n", lantern_version());
    int interrupts = 0; /* Ctrl-Cs in a row at the prompt */
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        g_interrupted = 0;
        errno = 0;
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) {
            if (g_interrupted) {
                clearerr(stdin);
                if (++interrupts >= 2) {
                    fputc('\n', stderr);
                    status = 130;
                    goto done;
                }
                fprintf(stderr, "\n(Ctrl-C again to leave)\n");
                continue;
            }
            if (ferror(stdin)) {
                perror("assistant: reading stdin");
                goto done;
            }
            break; /* end of input */
        }
        interrupts = 0;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (!strcmp(line, "/reset")) {
            s = lantern_session_reset(session);
            if (s != LANTERN_OK) {
                report("reset", s);
                goto done;
            }
            history_drop(&h, h.keep, h.len - h.keep);
            fprintf(stderr, "(conversation reset)\n");
            continue;
        }
        history_push(&h, "user", line);
        answer(session, &w, &h, &gen, 0, a.stats);
    }
    status = 0;

done:
    if (watching) {
        char q = 'q';
        signal(SIGINT, SIG_DFL);
        if (write(g_wake[1], &q, 1) != 1) perror("assistant: waking the watcher");
        pthread_join(watcher_thread, NULL);
    }
    if (g_wake[0] >= 0) close(g_wake[0]);
    if (g_wake[1] >= 0) close(g_wake[1]);
    free(line);
    history_drop(&h, 0, h.len);
    free(h.msgs);
    lantern_session_free(session);
    lantern_engine_free(engine);
    return status;
}
