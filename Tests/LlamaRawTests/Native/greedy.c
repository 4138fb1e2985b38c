// The native reference: greedy generation through llama.cpp's C API, compiled by the tests
// against the pinned headers and the same libraries the Swift bindings load.
//
//   greedy LIB_DIR MODEL PROMPT N_PREDICT N_THREADS   prints "prompt: ids" and "generated: ids"
//   greedy --constants                                prints API constants as NAME=VALUE
//   greedy --chat LIB_DIR MODEL ROLE TEXT [ROLE TEXT...] prints the model's chat template applied
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char * text, void * user_data) {
    (void) level; (void) text; (void) user_data;
}

static int print_constants(void) {
    printf("LLAMA_DEFAULT_SEED=%u\n", (unsigned) LLAMA_DEFAULT_SEED);
    printf("LLAMA_TOKEN_NULL=%d\n", (int) LLAMA_TOKEN_NULL);
    printf("LLAMA_SESSION_MAGIC=%u\n", (unsigned) LLAMA_SESSION_MAGIC);
    printf("LLAMA_STATE_SEQ_VERSION=%d\n", (int) LLAMA_STATE_SEQ_VERSION);
    printf("GGML_MAX_DIMS=%d\n", (int) GGML_MAX_DIMS);
    printf("GGML_MAX_NAME=%d\n", (int) GGML_MAX_NAME);
    printf("GGML_ROPE_TYPE_NEOX=%d\n", (int) GGML_ROPE_TYPE_NEOX);
    printf("GGUF_MAGIC=%s\n", GGUF_MAGIC);
    printf("GGUF_KEY_GENERAL_ALIGNMENT=%s\n", GGUF_KEY_GENERAL_ALIGNMENT);
    printf("LLAMA_VOCAB_TYPE_BPE=%d\n", (int) LLAMA_VOCAB_TYPE_BPE);
    printf("GGML_TYPE_Q4_1=%d\n", (int) GGML_TYPE_Q4_1);
    return 0;
}

static void print_tokens(const char * label, const llama_token * tokens, int n) {
    printf("%s:", label);
    for (int i = 0; i < n; i++) printf(" %d", tokens[i]);
    printf("\n");
}

static int print_chat(int argc, char ** argv) {
    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[2]);
    struct llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    struct llama_model * model = llama_model_load_from_file(argv[3], params);
    if (model == NULL) return 1;
    const int n = (argc - 4) / 2;
    struct llama_chat_message * chat = malloc(sizeof(struct llama_chat_message) * (size_t) n);
    for (int i = 0; i < n; i++) {
        chat[i].role = argv[4 + 2 * i];
        chat[i].content = argv[5 + 2 * i];
    }
    const char * tmpl = llama_model_chat_template(model, NULL);
    int length = llama_chat_apply_template(tmpl, chat, (size_t) n, true, NULL, 0);
    if (length < 0) return 1;
    char * buffer = malloc((size_t) length + 1);
    llama_chat_apply_template(tmpl, chat, (size_t) n, true, buffer, length + 1);
    fwrite(buffer, 1, (size_t) length, stdout);
    free(buffer);
    free(chat);
    llama_model_free(model);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc == 2 && strcmp(argv[1], "--constants") == 0) return print_constants();
    if (argc >= 6 && strcmp(argv[1], "--chat") == 0) return print_chat(argc, argv);
    if (argc != 6) {
        fprintf(stderr, "usage: %s LIB_DIR MODEL PROMPT N_PREDICT N_THREADS | --constants\n", argv[0]);
        return 2;
    }
    const char * prompt = argv[3];
    const int n_predict = atoi(argv[4]);
    const int n_threads = atoi(argv[5]);

    llama_log_set(quiet, NULL);
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();

    struct llama_model * model = llama_model_load_from_file(argv[2], llama_model_default_params());
    if (model == NULL) { fprintf(stderr, "cannot load %s\n", argv[2]); return 1; }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);

    const int n_prompt = -llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), NULL, 0, true, true);
    llama_token * tokens = malloc(sizeof(llama_token) * (size_t) (n_prompt + n_predict));
    if (llama_tokenize(vocab, prompt, (int32_t) strlen(prompt), tokens, n_prompt, true, true) != n_prompt) {
        fprintf(stderr, "tokenization failed\n");
        return 1;
    }
    print_tokens("prompt", tokens, n_prompt);

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 512;
    cparams.n_batch = 512;
    cparams.n_threads = n_threads;
    cparams.n_threads_batch = n_threads;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) { fprintf(stderr, "cannot create a context\n"); return 1; }

    struct llama_sampler * sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(sampler, llama_sampler_init_greedy());

    llama_token * generated = tokens + n_prompt;
    int n_generated = 0;
    struct llama_batch batch = llama_batch_get_one(tokens, n_prompt);
    while (n_generated < n_predict) {
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        llama_token token = llama_sampler_sample(sampler, ctx, -1);
        generated[n_generated++] = token;
        if (llama_vocab_is_eog(vocab, token)) break;
        batch = llama_batch_get_one(&generated[n_generated - 1], 1);
    }
    print_tokens("generated", generated, n_generated);

    llama_sampler_free(sampler);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    free(tokens);
    return 0;
}
