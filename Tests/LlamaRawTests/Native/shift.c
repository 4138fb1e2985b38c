// The native reference of model parameters and context shifting: llama.cpp's C API, compiled by
// the tests against the pinned headers and the same libraries the Swift bindings load.
//
//   shift shift LIB_DIR MODEL PROMPT N_CTX N_PREDICT N_KEEP N_THREADS
//       greedy generation of N_PREDICT tokens (end-of-generation tokens do not stop it) in a
//       context of N_CTX tokens; when the sequence fills, the first N_KEEP tokens stay, half of
//       the rest (n_discard = (n_past - n_keep) / 2) is removed and the rest shifted down, as
//       llama.cpp's tools/completion does. Prints "generated: ids", "shifts: N",
//       "n_past: N" and "pos_max: N" (llama_memory_seq_pos_max of sequence 0 at the end).
//   shift greedy EXTRA_BUFTS LIB_DIR MODEL PROMPT N_PREDICT N_THREADS
//       greedy generation with llama_model_params.use_extra_bufts = EXTRA_BUFTS (0 or 1):
//       prints "generated: ids" and one "buffer: NAME" per model buffer llama.cpp reports.
//   shift quantize LIB_DIR IN OUT FTYPE
//       llama_model_quantize IN to OUT (FTYPE: a llama_ftype value), requantizing allowed.
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The model buffers llama.cpp reports while loading ("load_tensors:   CPU_REPACK model buffer size = ...").
static char buffers[16][64];
static int n_buffers = 0;

static void collect(enum ggml_log_level level, const char * text, void * user_data) {
    (void) level; (void) user_data;
    const char * mark = strstr(text, " model buffer size");
    if (mark == NULL || n_buffers == 16) return;
    const char * start = strchr(text, ':');
    if (start == NULL || start > mark) return;
    start++;
    while (*start == ' ') start++;
    size_t n = (size_t) (mark - start);
    if (n >= sizeof buffers[0]) n = sizeof buffers[0] - 1;
    memcpy(buffers[n_buffers], start, n);
    buffers[n_buffers][n] = 0;
    n_buffers++;
}

static void print_tokens(const char * label, const llama_token * tokens, int n) {
    printf("%s:", label);
    for (int i = 0; i < n; i++) printf(" %d", tokens[i]);
    printf("\n");
}

static llama_token * tokenize(const struct llama_vocab * vocab, const char * prompt, int extra, int * n_prompt) {
    *n_prompt = -llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), NULL, 0, true, true);
    llama_token * tokens = malloc(sizeof(llama_token) * (size_t) (*n_prompt + extra));
    if (llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), tokens, *n_prompt, true, true) != *n_prompt) {
        fprintf(stderr, "tokenization failed\n");
        exit(1);
    }
    return tokens;
}

static struct llama_context * context(struct llama_model * model, int n_ctx, int n_threads) {
    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = (uint32_t) n_ctx;
    cparams.n_batch = (uint32_t) n_ctx;
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) { fprintf(stderr, "cannot create a context\n"); exit(1); }
    return ctx;
}

static int shift(char ** argv) {
    const char * prompt = argv[4];
    const int n_ctx = atoi(argv[5]), n_predict = atoi(argv[6]), n_keep = atoi(argv[7]), n_threads = atoi(argv[8]);
    ggml_backend_load_all_from_path(argv[2]);
    llama_backend_init();
    struct llama_model * model = llama_model_load_from_file(argv[3], llama_model_default_params());
    if (model == NULL) { fprintf(stderr, "cannot load %s\n", argv[3]); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    int n_prompt = 0;
    llama_token * tokens = tokenize(vocab, prompt, 0, &n_prompt);
    struct llama_context * ctx = context(model, n_ctx, n_threads);
    llama_memory_t mem = llama_get_memory(ctx);
    if (!llama_memory_can_shift(mem)) { fprintf(stderr, "the memory cannot shift\n"); return 1; }

    struct llama_sampler * sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());

    llama_token * generated = malloc(sizeof(llama_token) * (size_t) n_predict);
    int n_generated = 0, n_past = 0, shifts = 0;
    if (llama_decode(ctx, llama_batch_get_one(tokens, n_prompt)) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    n_past = n_prompt;
    for (;;) {
        llama_token token = llama_sampler_sample(sampler, ctx, -1);
        generated[n_generated++] = token;
        if (n_generated == n_predict) break;
        if (n_past + 1 >= n_ctx) {
            const int n_left = n_past - n_keep;
            const int n_discard = n_left / 2;
            llama_memory_seq_rm(mem, 0, n_keep, n_keep + n_discard);
            llama_memory_seq_add(mem, 0, n_keep + n_discard, n_past, -n_discard);
            n_past -= n_discard;
            shifts++;
        }
        struct llama_batch batch = llama_batch_init(1, 0, 1);
        batch.token[0] = token;
        batch.pos[0] = n_past;
        batch.n_seq_id[0] = 1;
        batch.seq_id[0][0] = 0;
        batch.logits[0] = 1;
        batch.n_tokens = 1;
        const int status = llama_decode(ctx, batch);
        llama_batch_free(batch);
        if (status != 0) { fprintf(stderr, "decode failed at n_past %d\n", n_past); return 1; }
        n_past++;
    }
    print_tokens("generated", generated, n_generated);
    printf("shifts: %d\n", shifts);
    printf("n_past: %d\n", n_past);
    printf("pos_max: %d\n", (int) llama_memory_seq_pos_max(mem, 0));
    printf("pos_min: %d\n", (int) llama_memory_seq_pos_min(mem, 0));

    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(generated);
    free(tokens);
    return 0;
}

static int greedy(char ** argv) {
    const int extra_bufts = atoi(argv[2]);
    const char * prompt = argv[5];
    const int n_predict = atoi(argv[6]), n_threads = atoi(argv[7]);
    ggml_backend_load_all_from_path(argv[3]);
    llama_backend_init();
    struct llama_model_params params = llama_model_default_params();
    params.use_extra_bufts = extra_bufts != 0;
    struct llama_model * model = llama_model_load_from_file(argv[4], params);
    if (model == NULL) { fprintf(stderr, "cannot load %s\n", argv[4]); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    int n_prompt = 0;
    llama_token * tokens = tokenize(vocab, prompt, n_predict, &n_prompt);
    struct llama_context * ctx = context(model, 512, n_threads);
    struct llama_sampler * sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());

    llama_token * generated = tokens + n_prompt;
    int n_generated = 0;
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    while (n_generated < n_predict) {
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        llama_token token = llama_sampler_sample(sampler, ctx, -1);
        if (llama_vocab_is_eog(vocab, token)) break;
        generated[n_generated++] = token;
        batch = llama_batch_get_one(&generated[n_generated - 1], 1);
    }
    print_tokens("generated", generated, n_generated);
    for (int i = 0; i < n_buffers; i++) printf("buffer: %s\n", buffers[i]);

    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(tokens);
    return 0;
}

static int quantize(char ** argv) {
    ggml_backend_load_all_from_path(argv[2]);
    llama_backend_init();
    struct llama_model_quantize_params params = llama_model_quantize_default_params();
    params.ftype = (enum llama_ftype) atoi(argv[5]);
    params.allow_requantize = true;
    params.nthread = 2;
    const uint32_t status = llama_model_quantize(argv[3], argv[4], &params);
    llama_backend_free();
    if (status != 0) { fprintf(stderr, "llama_model_quantize failed: %u\n", status); return 1; }
    return 0;
}

int main(int argc, char ** argv) {
    llama_log_set(collect, NULL);
    if (argc == 9 && strcmp(argv[1], "shift") == 0) return shift(argv);
    if (argc == 8 && strcmp(argv[1], "greedy") == 0) return greedy(argv);
    if (argc == 6 && strcmp(argv[1], "quantize") == 0) return quantize(argv);
    fprintf(stderr, "usage: %s shift LIB_DIR MODEL PROMPT N_CTX N_PREDICT N_KEEP N_THREADS\n"
                    "       %s greedy EXTRA_BUFTS LIB_DIR MODEL PROMPT N_PREDICT N_THREADS\n"
                    "       %s quantize LIB_DIR IN OUT FTYPE\n", argv[0], argv[0], argv[0]);
    return 2;
}
