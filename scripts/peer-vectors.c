// Reference vectors from the peer's own ggml libraries, which
// crates/lantern-core/tests/peer_vectors.rs checks lantern against. Built and run by
// scripts/peer-vectors.sh; see there for the usage.
//
// For each ggml type named on the command line, with a seed fixed per type (so adding a type
// leaves the others' files unchanged):
// - BLOCKS weight blocks: the first half quantized by the peer's reference quantizer
//   (from_float_ref) from random values of varying scale and offset, the second half random
//   bytes, each redrawn until the peer dequantizes it to finite values of moderate size
//   (largest magnitude in [1/64, 64]): that keeps every f16 scale finite and moderate
//   without knowing where a type keeps them, and reaches codes and scales a quantizer would
//   rarely write. A type without a reference quantizer gets random blocks only.
// - their values, from the peer's to_float (ggml_get_type_traits);
// - a random activation of the same length, quantized by the from_float of the type's
//   vec_dot_type (ggml_get_type_traits_cpu);
// - the peer's vec_dot of the weights with that activation.
//
// OUT_DIR/<TYPE>.bin, all little-endian (as this program writes on x86-64 and aarch64):
//   "LPV1", u32 ggml type id, u32 block count n, the n weight blocks, n·block_size f32
//   values, the activation blocks (vec_dot_type, as many values), f32 dot.
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

#define BLOCKS 16
#define MAX_DRAWS 100000

// splitmix64: small, and the same on every platform.
static uint64_t next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [-1, 1).
static float uniform(uint64_t *state) {
    return (float)(next(state) >> 40) / (float)(1u << 23) - 1.0f;
}

// Roughly normal with unit scale (sum of four uniforms), one outlier in 64 as activations have.
static float normal(uint64_t *state) {
    float v = 0.866f * (uniform(state) + uniform(state) + uniform(state) + uniform(state));
    return next(state) % 64 == 0 ? 8.0f * v : v;
}

static int same_name(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return 0;
        }
    }
    return *a == *b;
}

static int find_type(const char *name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *tn = ggml_type_name((enum ggml_type)t);
        if (tn != NULL && same_name(tn, name) && ggml_blck_size((enum ggml_type)t) > 0) {
            return t;
        }
    }
    return -1;
}

// Whether every value is finite and the largest magnitude lies in [1/64, 64].
static int moderate(const float *v, int64_t n) {
    float max = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            return 0;
        }
        max = fabsf(v[i]) > max ? fabsf(v[i]) : max;
    }
    return max >= 1.0f / 64 && max <= 64.0f;
}

static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24};
    fwrite(b, 1, 4, f);
}

static int write_type(const char *dir, const char *name) {
    int t = find_type(name);
    if (t < 0) {
        fprintf(stderr, "unknown ggml type %s\n", name);
        return 1;
    }
    enum ggml_type type = (enum ggml_type)t;
    const struct ggml_type_traits *traits = ggml_get_type_traits(type);
    const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(type);
    if (!ggml_is_quantized(type) || traits->to_float == NULL || cpu->vec_dot == NULL) {
        fprintf(stderr, "%s: the peer has no dequantization or dot product for it\n", name);
        return 1;
    }
    enum ggml_type act_type = cpu->vec_dot_type;
    const struct ggml_type_traits_cpu *act_cpu = ggml_get_type_traits_cpu(act_type);
    const int64_t bs = ggml_blck_size(type), n = BLOCKS * bs;
    const size_t ts = ggml_type_size(type);
    const size_t act_bytes = ggml_row_size(act_type, n);
    if (act_cpu->from_float == NULL || n % ggml_blck_size(act_type) != 0) {
        fprintf(stderr, "%s: cannot quantize its activation to %s\n", name, ggml_type_name(act_type));
        return 1;
    }

    unsigned char *w = calloc(BLOCKS, ts), *act = calloc(1, act_bytes);
    float *values = calloc(n, sizeof(float)), *x = calloc(n, sizeof(float));
    uint64_t state = 0x6C616E7465726E00ull ^ (uint64_t)t;
    for (int b = 0; b < BLOCKS; b++) {
        unsigned char *block = w + b * ts;
        float *v = values + b * bs;
        if (b < BLOCKS / 2 && traits->from_float_ref != NULL) {
            // A scale between 2^-4 and 2^2 and an offset of up to that scale.
            float scale = exp2f(3.0f * uniform(&state) - 1.0f), offset = scale * uniform(&state);
            for (int64_t i = 0; i < bs; i++) {
                x[i] = offset + scale * normal(&state);
            }
            traits->from_float_ref(x, block, bs);
            traits->to_float(block, v, bs);
            continue;
        }
        int draws = 0;
        do {
            if (++draws > MAX_DRAWS) {
                fprintf(stderr, "%s: no random block of moderate values in %d draws\n", name, MAX_DRAWS);
                return 1;
            }
            for (size_t i = 0; i < ts; i++) {
                block[i] = (unsigned char)next(&state);
            }
            traits->to_float(block, v, bs);
        } while (!moderate(v, bs));
    }
    for (int64_t i = 0; i < n; i++) {
        x[i] = normal(&state);
    }
    act_cpu->from_float(x, act, n);
    float dot = 0.0f;
    cpu->vec_dot((int)n, &dot, 0, w, 0, act, 0, 1);

    char upper[64], path[4096];
    snprintf(upper, sizeof upper, "%s", ggml_type_name(type));
    for (char *c = upper; *c; c++) {
        *c = (char)toupper((unsigned char)*c);
    }
    snprintf(path, sizeof path, "%s/%s.bin", dir, upper);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fwrite("LPV1", 1, 4, f);
    put_u32(f, (uint32_t)t);
    put_u32(f, BLOCKS);
    fwrite(w, ts, BLOCKS, f);
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], 4);
        put_u32(f, bits);
    }
    fwrite(act, 1, act_bytes, f);
    uint32_t bits;
    memcpy(&bits, &dot, 4);
    put_u32(f, bits);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    printf("%s: %d blocks of %s, activation %s, dot %.9g\n", path, BLOCKS, ggml_type_name(type),
           ggml_type_name(act_type), dot);
    free(w);
    free(act);
    free(values);
    free(x);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s OUT_DIR TYPE...\n", argv[0]);
        return 2;
    }
    ggml_cpu_init();
    int status = 0;
    for (int i = 2; i < argc; i++) {
        status |= write_type(argv[1], argv[i]);
    }
    return status;
}
