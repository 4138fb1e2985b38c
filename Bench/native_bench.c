// The native side of `llama-swift bench`: the same work as the Swift worker, in C, linked
// against the same libraries, timed with llama_time_us. Prints one JSON object.
//
//   native_bench gen LIB_DIR MODEL PROMPT_FILE N_GEN THREADS
//   native_bench tokenize LIB_DIR MODEL TEXT_FILE REPEAT
#include "llama.h"
#include "alloc_counter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void quiet(enum ggml_log_level level, const char * text, void * data) { (void) level; (void) text; (void) data; }

static char * read_file(const char * path) {
    FILE * f = fopen(path, "rb");
    if (f == NULL) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char * text = malloc((size_t) n + 1);
    if (fread(text, 1, (size_t) n, f) != (size_t) n) exit(1);
    text[n] = 0;
    fclose(f);
    return text;
}

static long peak_rss_kb(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

static struct llama_model * load(const char * lib_dir, const char * path, int64_t * load_us) {
    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(lib_dir);
    llama_backend_init();
    int64_t t0 = llama_time_us();
    struct llama_model * model = llama_model_load_from_file(path, llama_model_default_params());
    *load_us = llama_time_us() - t0;
    if (model == NULL) { fprintf(stderr, "cannot load %s\n", path); exit(1); }
    return model;
}

static int tokenize_all(const struct llama_vocab * vocab, const char * text, llama_token ** out) {
    int n = -llama_tokenize(vocab, text, (int32_t) strlen(text), NULL, 0, true, true);
    *out = malloc(sizeof(llama_token) * (size_t) n);
    llama_tokenize(vocab, text, (int32_t) strlen(text), *out, n, true, true);
    return n;
}

static int bench_gen(char ** argv) {
    int64_t load_us;
    struct llama_model * model = load(argv[2], argv[3], &load_us);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    char * prompt = read_file(argv[4]);
    const int n_gen = atoi(argv[5]);
    const int threads = atoi(argv[6]);
    llama_token * tokens;
    const int n_prompt = tokenize_all(vocab, prompt, &tokens);

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 2048;
    cparams.n_batch = 512;
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    struct llama_sampler * sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());

    int64_t t0 = llama_time_us();
    if (llama_decode(ctx, llama_batch_get_one(tokens, n_prompt)) != 0) return 1;
    llama_token token = llama_sampler_sample(sampler, ctx, -1);
    int64_t t1 = llama_time_us();
    long long allocs0 = alloc_counter_total();
    int n = 1;
    while (n < n_gen) {
        if (llama_decode(ctx, llama_batch_get_one(&token, 1)) != 0) return 1;
        token = llama_sampler_sample(sampler, ctx, -1);
        n++;
    }
    int64_t t2 = llama_time_us();
    long long allocs = alloc_counter_total() - allocs0;
    printf("{\"load_ms\": %.3f, \"prompt_tokens\": %d, \"prompt_ms\": %.3f, \"ttft_ms\": %.3f, "
           "\"gen_tokens\": %d, \"gen_ms\": %.3f, \"allocs_per_token\": %.3f, \"peak_rss_kb\": %ld, \"last_token\": %d}\n",
           load_us / 1e3, n_prompt, (t1 - t0) / 1e3, (t1 - t0) / 1e3, n - 1, (t2 - t1) / 1e3,
           (double) allocs / (n - 1), peak_rss_kb(), token);
    return 0;
}

static int bench_tokenize(char ** argv) {
    int64_t load_us;
    struct llama_model * model = load(argv[2], argv[3], &load_us);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    char * text = read_file(argv[4]);
    const int repeat = atoi(argv[5]);
    long long total = 0;
    int64_t t0 = llama_time_us();
    // As the Swift side does: one call into a buffer that is large enough.
    const int32_t length = (int32_t) strlen(text);
    for (int i = 0; i < repeat; i++) {
        llama_token * tokens = malloc(sizeof(llama_token) * (size_t) (length + 2));
        total += llama_tokenize(vocab, text, length, tokens, length + 2, true, true);
        free(tokens);
    }
    int64_t t1 = llama_time_us();
    printf("{\"tokens\": %lld, \"ms\": %.3f}\n", total, (t1 - t0) / 1e3);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc == 7 && strcmp(argv[1], "gen") == 0) return bench_gen(argv);
    if (argc == 6 && strcmp(argv[1], "tokenize") == 0) return bench_tokenize(argv);
    fprintf(stderr, "usage: native_bench gen LIB MODEL PROMPT_FILE N_GEN THREADS | tokenize LIB MODEL TEXT_FILE REPEAT\n");
    return 2;
}
