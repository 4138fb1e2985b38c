// The native reference of LlamaProfiler's node counts: llama.cpp's C API, compiled by the tests
// against the pinned headers and the same libraries the Swift bindings load.
//
//   graph_nodes LIB_DIR MODEL PROMPT N_CTX N_THREADS
//       decodes PROMPT (tokenized with special tokens, the last token's logits only), then the
//       greedy next token alone, in a context of N_CTX tokens (batch N_CTX). For each of the two
//       decodes ("prompt", "generation") prints:
//         "print PHASE: OP=N ..."    nodes per operation in llama.cpp's own graph print
//                                    (GGML_SCHED_DEBUG=2: one "node #i (OP)" line per node that
//                                    is not a view; OP is ggml_op_desc cut to 10 characters)
//         "last PHASE: N"            the highest node index printed
//         "callback PHASE: OP=N ..." nodes per operation asked about by the scheduler's eval
//                                    callback (answering no, so the graph runs as one piece)
//         "nodes PHASE: N"           nodes asked about by the callback
#define _POSIX_C_SOURCE 200809L // setenv
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 128

struct counts {
    char names[MAX_OPS][32];
    int n[MAX_OPS];
    int used;
};

static void count(struct counts * c, const char * name) {
    for (int i = 0; i < c->used; i++) {
        if (strcmp(c->names[i], name) == 0) { c->n[i]++; return; }
    }
    if (c->used == MAX_OPS) { fprintf(stderr, "too many operations\n"); exit(1); }
    snprintf(c->names[c->used], sizeof c->names[0], "%s", name);
    c->n[c->used++] = 1;
}

static void print_counts(const char * label, const char * phase, const struct counts * c) {
    printf("%s %s:", label, phase);
    for (int i = 0; i < c->used; i++) printf(" %s=%d", c->names[i], c->n[i]);
    printf("\n");
}

// The scheduler's debug print while capturing (only during a decode).
static char * printed = NULL;
static size_t printed_len = 0, printed_cap = 0;
static int capturing = 0;

static void collect(enum ggml_log_level level, const char * text, void * user_data) {
    (void) level; (void) user_data;
    if (!capturing) return;
    const size_t n = strlen(text);
    if (printed_len + n + 1 > printed_cap) {
        printed_cap = (printed_len + n + 1) * 2;
        printed = realloc(printed, printed_cap);
        if (printed == NULL) exit(1);
    }
    memcpy(printed + printed_len, text, n + 1);
    printed_len += n;
}

static struct counts asked;

static bool eval_callback(struct ggml_tensor * t, bool ask, void * user_data) {
    (void) user_data;
    if (ask) count(&asked, ggml_op_desc(t));
    return false;
}

static int decode(struct llama_context * ctx, struct llama_batch batch, const char * phase) {
    memset(&asked, 0, sizeof asked);
    printed_len = 0;
    if (printed != NULL) printed[0] = 0;
    capturing = 1;
    const int status = llama_decode(ctx, batch);
    capturing = 0;
    if (status != 0) { fprintf(stderr, "decode failed\n"); return 1; }

    struct counts graph;
    memset(&graph, 0, sizeof graph);
    int last = -1, total = 0;
    for (const char * line = printed; line != NULL && *line != 0; ) {
        const char * end = strchr(line, '\n');
        int index;
        char op[16];
        // "node #%3d (%10.10s): ..."
        if (strncmp(line, "node #", 6) == 0 && sscanf(line + 6, "%d (%15[^)])", &index, op) == 2) {
            const char * name = op;
            while (*name == ' ') name++;
            count(&graph, name);
            if (index > last) last = index;
        }
        line = end == NULL ? NULL : end + 1;
    }
    for (int i = 0; i < asked.used; i++) total += asked.n[i];
    print_counts("print", phase, &graph);
    printf("last %s: %d\n", phase, last);
    print_counts("callback", phase, &asked);
    printf("nodes %s: %d\n", phase, total);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: graph_nodes LIB_DIR MODEL PROMPT N_CTX N_THREADS\n");
        return 2;
    }
    const char * prompt = argv[3];
    const int n_ctx = atoi(argv[4]), n_threads = atoi(argv[5]);
    setenv("GGML_SCHED_DEBUG", "2", 1);
    llama_log_set(collect, NULL);
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    struct llama_model * model = llama_model_load_from_file(argv[2], llama_model_default_params());
    if (model == NULL) { fprintf(stderr, "cannot load %s\n", argv[2]); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), NULL, 0, true, true);
    llama_token * tokens = malloc(sizeof(llama_token) * (size_t) n_prompt);
    if (llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), tokens, n_prompt, true, true) != n_prompt) {
        fprintf(stderr, "tokenization failed\n");
        return 1;
    }

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = (uint32_t) n_ctx;
    cparams.n_batch = (uint32_t) n_ctx;
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    cparams.cb_eval = eval_callback;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) { fprintf(stderr, "cannot create a context\n"); return 1; }

    if (decode(ctx, llama_batch_get_one(tokens, n_prompt), "prompt") != 0) return 1;
    struct llama_sampler * sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
    llama_token token = llama_sampler_sample(sampler, ctx, -1);
    if (decode(ctx, llama_batch_get_one(&token, 1), "generation") != 0) return 1;
    printf("tokens: %d %d\n", n_prompt, token);

    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
    free(tokens);
    free(printed);
    return 0;
}
